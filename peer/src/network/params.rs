//! [`NetworkParams`]: the type, its YAML form, its validation and its canonical digest.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::serde_text;
use crate::journal::timing::CommitTiming;
use crate::journal::{Block, Rules};
use crate::trust::{Chain, Level, PublicKey, RevocationSet};

/// The version of the parameters format this code reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// What every member of one network must agree on. Its [`NetworkParams::digest`] is part of the
/// genesis block ([`NetworkParams::genesis`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NetworkParams {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// Network name (letters, digits, `-`, `_`).
    pub network: String,
    /// The pinned root public key (PeerId form; hex accepted).
    #[serde(with = "serde_text::key")]
    pub root: PublicKey,
    /// The initial members: Level-1 certificate chains (leaf first) of the peers that may
    /// commit from the first block on. Others join later through records on the chain.
    #[serde(with = "serde_text::chains")]
    pub members: Vec<Chain>,
    /// The consensus settings.
    #[serde(default)]
    pub consensus: ConsensusParams,
}

/// The consensus settings of a network (docs/consensus.md explains each rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ConsensusParams {
    /// Wait that collects transactions into a block (the in-turn committer's delay).
    #[serde(with = "serde_text::duration")]
    pub block_interval: Duration,
    /// After this, out-of-turn committers may commit.
    #[serde(with = "serde_text::duration")]
    pub commit_timeout: Duration,
    /// Added to the commit timeout per rank an out-of-turn committer is from the in-turn slot.
    #[serde(with = "serde_text::duration")]
    pub commit_backoff: Duration,
    /// How far a block's timestamp may run ahead of its receiver's clock.
    #[serde(with = "serde_text::duration")]
    pub max_clock_skew: Duration,
    /// How far a transaction's timestamp may lie from its block's.
    #[serde(with = "serde_text::duration")]
    pub transaction_window: Duration,
    /// Proof-of-work bits every transaction carries.
    pub transaction_pow_bits: u8,
    /// Most weight (seats in the rotation and in finality votes) the peers of one Level-0
    /// principal hold together: its members beyond this many, in joining order, wait without
    /// weight until a weighted one leaves.
    pub max_weight_per_principal: u32,
    /// Blocks per finality epoch: checkpoints are the blocks at multiples of it, and members
    /// vote once per epoch (docs/consensus.md, "Finality").
    pub epoch_length: u64,
}

impl Default for ConsensusParams {
    fn default() -> Self {
        Self {
            block_interval: Duration::from_secs(1),
            commit_timeout: Duration::from_secs(5),
            commit_backoff: Duration::from_secs(1),
            max_clock_skew: Duration::from_secs(15),
            transaction_window: Duration::from_secs(600),
            transaction_pow_bits: 12,
            max_weight_per_principal: 3,
            epoch_length: 4,
        }
    }
}

/// Digests of each section of the parameters, exchanged when peers meet so that a refusal can
/// name what differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionDigests {
    /// Of the format version and network name.
    #[serde(with = "serde_bytes")]
    pub network: [u8; 32],
    /// Of the root key.
    #[serde(with = "serde_bytes")]
    pub root: [u8; 32],
    /// Of the initial members (in canonical order).
    #[serde(with = "serde_bytes")]
    pub members: [u8; 32],
    /// Of the consensus settings.
    #[serde(with = "serde_bytes")]
    pub consensus: [u8; 32],
}

impl SectionDigests {
    /// The sections in which `self` and `other` differ (`network`, `root`, `members`,
    /// `consensus`), in that order.
    pub fn differences(&self, other: &SectionDigests) -> Vec<&'static str> {
        [
            ("network", self.network == other.network),
            ("root", self.root == other.root),
            ("members", self.members == other.members),
            ("consensus", self.consensus == other.consensus),
        ]
        .into_iter()
        .filter(|(_, same)| !same)
        .map(|(name, _)| name)
        .collect()
    }
    /// Why a peer's genesis block differs from ours, naming the sections of the parameters that
    /// differ when both sides run with parameters.
    pub fn genesis_mismatch(ours: Option<&Self>, theirs: Option<&Self>) -> String {
        match (ours, theirs) {
            (Some(ours), Some(theirs)) => match ours.differences(theirs).as_slice() {
                [] => "peer has another genesis block (same network parameters)".into(),
                sections => format!(
                    "peer has another genesis block: its network parameters differ in {}",
                    sections.join(", ")
                ),
            },
            (Some(_), None) => {
                "peer has another genesis block: it runs without network parameters".into()
            }
            (None, Some(_)) => "peer has another genesis block: it runs with network \
                                parameters, this peer without"
                .into(),
            (None, None) => "peer has another genesis block".into(),
        }
    }
}

/// Why parameters are not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// Not YAML of the expected shape.
    #[error("network parameters: {0}")]
    Format(String),
    /// A field's value is not acceptable.
    #[error("network parameters: {field}: {detail}")]
    Invalid {
        /// The field at fault.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
}

fn invalid(field: &'static str, detail: impl std::fmt::Display) -> ParamsError {
    ParamsError::Invalid {
        field,
        detail: detail.to_string(),
    }
}

fn sha256<T: Serialize>(value: &T) -> [u8; 32] {
    let bytes = serde_ipld_dagcbor::to_vec(value).unwrap_or_default();
    Sha256::digest(bytes).into()
}

impl NetworkParams {
    /// Parameters of `network` under `root` with `members` and the default consensus settings.
    pub fn new(network: &str, root: PublicKey, members: Vec<Chain>) -> Self {
        Self {
            version: FORMAT_VERSION,
            network: network.into(),
            root,
            members,
            consensus: ConsensusParams::default(),
        }
    }

    /// Reads and validates the YAML form.
    pub fn from_yaml(text: &str) -> Result<Self, ParamsError> {
        let params: Self =
            serde_yaml::from_str(text).map_err(|e| ParamsError::Format(e.to_string()))?;
        params.validate()?;
        Ok(params)
    }

    /// The YAML form.
    pub fn to_yaml(&self) -> Result<String, ParamsError> {
        serde_yaml::to_string(self).map_err(|e| ParamsError::Format(e.to_string()))
    }

    /// Checks every field: the version, the name, each member a Level-1 chain up to the root
    /// (signatures and structure; validity windows are checked when a member commits), no
    /// member twice, and consensus settings that can work.
    pub fn validate(&self) -> Result<(), ParamsError> {
        if self.version != FORMAT_VERSION {
            return Err(invalid(
                "version",
                format!(
                    "{} is not supported (this peer reads {FORMAT_VERSION})",
                    self.version
                ),
            ));
        }
        if self.network.is_empty()
            || !self
                .network
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "network",
                format!(
                    "`{}` must be non-empty letters, digits, `-` or `_`",
                    self.network
                ),
            ));
        }
        if self.members.is_empty() {
            return Err(invalid("members", "at least one initial member is needed"));
        }
        let mut keys = Vec::with_capacity(self.members.len());
        let revocations = RevocationSet::new(self.root);
        for (i, chain) in self.members.iter().enumerate() {
            // Checked where every certificate of the chain is valid, if such a time exists.
            let at = chain.0.iter().map(|c| c.body.not_before).max().unwrap_or(0);
            let key = chain
                .verify(&self.root, &revocations, at, Level::Peer)
                .map_err(|e| invalid("members", format!("member {i}: {e}")))?;
            if keys.contains(&key) {
                return Err(invalid("members", format!("{key} is listed twice")));
            }
            keys.push(key);
        }
        let c = &self.consensus;
        if c.block_interval.is_zero() || c.commit_timeout < c.block_interval {
            return Err(invalid(
                "consensus.commit-timeout",
                "must be at least the block interval, which must be above zero",
            ));
        }
        if c.commit_backoff.is_zero() {
            return Err(invalid("consensus.commit-backoff", "must be above zero"));
        }
        if c.max_clock_skew < Duration::from_secs(1) || c.max_clock_skew > Duration::from_secs(600)
        {
            return Err(invalid(
                "consensus.max-clock-skew",
                "must lie between 1s and 10m",
            ));
        }
        if c.transaction_window < c.max_clock_skew {
            return Err(invalid(
                "consensus.transaction-window",
                "must be at least the maximum clock skew",
            ));
        }
        if c.transaction_pow_bits > 40 {
            return Err(invalid(
                "consensus.transaction-pow-bits",
                format!(
                    "{} bits would take clients days; use 40 or less",
                    c.transaction_pow_bits
                ),
            ));
        }
        if c.max_weight_per_principal == 0 {
            return Err(invalid(
                "consensus.max-weight-per-principal",
                "must be at least 1",
            ));
        }
        if c.epoch_length == 0 || c.epoch_length > 1024 {
            return Err(invalid(
                "consensus.epoch-length",
                "must lie between 1 and 1024 blocks",
            ));
        }
        Ok(())
    }

    /// The keys of the initial members, sorted.
    pub fn member_keys(&self) -> Vec<PublicKey> {
        let mut keys: Vec<PublicKey> = self
            .members
            .iter()
            .filter_map(|chain| chain.leaf().map(|c| c.body.subject))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The members in canonical order (by key), so the order they are listed in never changes
    /// a digest.
    fn sorted_members(&self) -> Vec<String> {
        let mut members: Vec<(Option<PublicKey>, String)> = self
            .members
            .iter()
            .map(|chain| (chain.leaf().map(|c| c.body.subject), chain.to_pem()))
            .collect();
        members.sort();
        members.into_iter().map(|(_, pem)| pem).collect()
    }

    /// Digests of each section.
    pub fn section_digests(&self) -> SectionDigests {
        SectionDigests {
            network: sha256(&(self.version, &self.network)),
            root: sha256(&self.root.to_string()),
            members: sha256(&self.sorted_members()),
            consensus: sha256(&self.consensus),
        }
    }

    /// The canonical digest: SHA-256 over the section digests in canonical DAG-CBOR. Equal for
    /// parameters that mean the same (member order and duration spelling do not count).
    pub fn digest(&self) -> [u8; 32] {
        sha256(&self.section_digests())
    }

    /// The genesis block of the network these parameters define: the network's name and the
    /// parameters' digest, no bootstrap entries.
    pub fn genesis(&self) -> Block {
        let mut genesis = Block::genesis(&self.network, vec![]);
        genesis.parameters = Some(serde_bytes::ByteBuf::from(self.digest().to_vec()));
        genesis
    }

    /// The initial members that hold a seat (sorted): each principal's first
    /// `max-weight-per-principal` members by key (docs/consensus.md, "Members and seats").
    pub fn seated_members(&self) -> Vec<PublicKey> {
        let mut by_principal: BTreeMap<Option<PublicKey>, Vec<PublicKey>> = BTreeMap::new();
        for chain in &self.members {
            let Some(leaf) = chain.leaf() else { continue };
            let principal = chain.0.get(1).map(|c| c.body.subject);
            by_principal
                .entry(principal)
                .or_default()
                .push(leaf.body.subject);
        }
        let cap = self.consensus.max_weight_per_principal as usize;
        let mut seats: Vec<PublicKey> = by_principal
            .into_values()
            .flat_map(|mut keys| {
                keys.sort();
                keys.dedup();
                keys.truncate(cap);
                keys
            })
            .collect();
        seats.sort();
        seats
    }

    /// The verification rules these parameters set (no revocations yet): the network, root and
    /// difficulty, the clock skew and transaction window, and the commit timing every receiver
    /// enforces.
    pub fn rules(&self) -> Rules {
        let c = &self.consensus;
        let mut rules = Rules::new(&self.network, self.root, c.transaction_pow_bits);
        rules.max_clock_skew = c.max_clock_skew.as_secs();
        rules.transaction_window = c.transaction_window.as_secs();
        rules.timing = Some(CommitTiming {
            commit_timeout: c.commit_timeout,
            commit_backoff: c.commit_backoff,
        });
        rules
    }
}
