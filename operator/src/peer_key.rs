//! Keys born in the peer's pod (`spec.trust.keyCustody: Pod`), certified as kubelet client
//! certificates are: the pod makes its key on its own volume and publishes only a signed
//! request (its PeerId and a signature binding it to the pod), the operator verifies the request
//! and issues the Level-1 certificate into a public ConfigMap.
//!
//! Two init containers of the peer's pod run this binary (`mediachain-operator peer-key`, then
//! `mediachain-operator await-chain`, see [`crate::reconcile::pod_identity`]):
//! - `peer-key` loads the key at `MEDIACHAIN_KEY` or makes it (mode 0600), replaces it if a
//!   mounted revocation list names it, and writes the [`KeyRequest`] as its termination message,
//!   which the kubelet of the pod's node publishes in the pod's status: no API access, no token.
//! - `await-chain` waits, bounded, until the chain file `MEDIACHAIN_CHAIN` (the pod's entry of
//!   the mounted chains ConfigMap) certifies that key and is valid; then the peer starts.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use mediachain::trust::{keyfile, Chain, PublicKey, RevocationList, SecretKey};
use serde::{Deserialize, Serialize};

/// Signature context of key requests.
pub const CONTEXT: &[u8] = b"mediachain-operator/key-request/v1";
/// Where the peer keeps its key: a directory of its data volume (the datastore is a sibling).
pub const KEY_PATH: &str = "/var/lib/mediachain/identity/peer.key";
/// Where the chains ConfigMap is mounted; the pod's chain is `<dir>/<pod>.chain`.
pub const CHAINS_DIR: &str = "/etc/mediachain/chains";
/// Name of the init container that makes the key and publishes the request.
pub const KEY_CONTAINER: &str = "peer-key";
/// Name of the init container that waits for the certificate.
pub const AWAIT_CONTAINER: &str = "await-chain";
/// Longest request accepted (a real one is about 200 bytes; the kubelet caps messages at 4 KiB).
pub const MAX_REQUEST_BYTES: usize = 1024;
/// How long `await-chain` waits by default before failing (the kubelet then restarts the init
/// sequence with back-off).
pub const AWAIT_TIMEOUT: Duration = Duration::from_secs(600);

/// What a pod publishes: its key's PeerId, signed with that key over the pod's identity
/// (namespace, name, uid), so a request is valid for one pod instance only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyRequest {
    /// The key's PeerId.
    pub peer_id: String,
    /// Hex ed25519 signature over [`binding`] under [`CONTEXT`].
    pub signature: String,
}

/// Why a request is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// Longer than [`MAX_REQUEST_BYTES`].
    #[error("the key request is {0} bytes, more than {MAX_REQUEST_BYTES}")]
    TooLong(usize),
    /// Not the JSON of a [`KeyRequest`].
    #[error("the key request is not a request: {0}")]
    Malformed(String),
    /// The PeerId does not parse.
    #[error("the key request names no valid PeerId: {0}")]
    PeerId(String),
    /// The signature does not verify for this pod and key.
    #[error("the key request's signature does not verify for pod {0} and key {1}")]
    Signature(String, String),
}

/// The text a request signs: the pod's namespace, name and uid, and the PeerId.
pub fn binding(namespace: &str, pod: &str, uid: &str, peer_id: &str) -> String {
    format!("{namespace}/{pod}/{uid}/{peer_id}")
}

impl KeyRequest {
    /// The request of `key` for pod `namespace/pod` with `uid`.
    pub fn new(key: &SecretKey, namespace: &str, pod: &str, uid: &str) -> Self {
        let peer_id = key.public().to_string();
        let signature = key.sign(CONTEXT, binding(namespace, pod, uid, &peer_id).as_bytes());
        Self {
            peer_id,
            signature: hex::encode(signature),
        }
    }

    /// Parses `text` and verifies it for pod `namespace/pod` with `uid`: the key it certifies.
    pub fn verify(
        text: &str,
        namespace: &str,
        pod: &str,
        uid: &str,
    ) -> Result<PublicKey, RequestError> {
        if text.len() > MAX_REQUEST_BYTES {
            return Err(RequestError::TooLong(text.len()));
        }
        let request: KeyRequest = serde_json::from_str(text.trim())
            .map_err(|e| RequestError::Malformed(e.to_string()))?;
        let key: PublicKey = request
            .peer_id
            .parse()
            .map_err(|e| RequestError::PeerId(format!("{e}")))?;
        let refused = || RequestError::Signature(format!("{namespace}/{pod}"), key.to_string());
        let signature: [u8; 64] = hex::decode(&request.signature)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(refused)?;
        let message = binding(namespace, pod, uid, &request.peer_id);
        if key.verify(CONTEXT, message.as_bytes(), &signature) {
            Ok(key)
        } else {
            Err(refused())
        }
    }
}

/// The subcommands of the operator binary that run in peer pods; `None` for other arguments.
pub fn run_subcommand(args: &[String]) -> Option<ExitCode> {
    let outcome = match args.get(1).map(String::as_str) {
        Some("peer-key") => peer_key(&PeerKeyEnv::from_env()),
        Some("await-chain") => await_chain(&AwaitEnv::from_env()),
        _ => return None,
    };
    Some(match outcome {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}");
            ExitCode::FAILURE
        }
    })
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Inputs of `peer-key` (environment of its init container).
#[derive(Debug, Clone)]
pub struct PeerKeyEnv {
    /// `MEDIACHAIN_KEY`: the key file.
    pub key: PathBuf,
    /// `POD_NAMESPACE`, `POD_NAME`, `POD_UID` (downward API).
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The pod's uid.
    pub uid: String,
    /// `MEDIACHAIN_REVOCATIONS`: the mounted revocation lists, if any.
    pub revocations: Option<PathBuf>,
    /// `KEY_REQUEST_FILE`: where the request goes (default `/dev/termination-log`).
    pub report: PathBuf,
}

impl PeerKeyEnv {
    fn from_env() -> Self {
        Self {
            key: var("MEDIACHAIN_KEY")
                .unwrap_or_else(|| KEY_PATH.into())
                .into(),
            namespace: var("POD_NAMESPACE").unwrap_or_default(),
            pod: var("POD_NAME").unwrap_or_default(),
            uid: var("POD_UID").unwrap_or_default(),
            revocations: var("MEDIACHAIN_REVOCATIONS").map(PathBuf::from),
            report: var("KEY_REQUEST_FILE")
                .unwrap_or_else(|| "/dev/termination-log".into())
                .into(),
        }
    }
}

/// `peer-key`: loads or makes the key, writes the request; returns the line to print.
pub fn peer_key(env: &PeerKeyEnv) -> Result<String, String> {
    if env.namespace.is_empty() || env.pod.is_empty() || env.uid.is_empty() {
        return Err("POD_NAMESPACE, POD_NAME and POD_UID must be set (downward API)".into());
    }
    let now = mediachain::time::now();
    let mut key = match std::fs::read_to_string(&env.key) {
        Ok(text) => Some(keyfile::parse(&env.key, &text, None).map_err(|e| {
            format!(
                "{} holds no usable key ({e}); it is never replaced automatically: move it away to make a new one",
                env.key.display()
            )
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("reading {}: {e}", env.key.display())),
    };
    let mut replaced = false;
    if let (Some(current), Some(path)) = (&key, &env.revocations) {
        if revoked(path, &current.public(), now)? {
            let aside = env.key.with_extension(format!("revoked-{now}"));
            std::fs::rename(&env.key, &aside)
                .map_err(|e| format!("moving the revoked key to {}: {e}", aside.display()))?;
            key = None;
            replaced = true;
        }
    }
    let (key, note) = match key {
        Some(key) => (key, "kept its key"),
        None if replaced => (make_key(&env.key)?, "replaced its revoked key"),
        None => (make_key(&env.key)?, "made a new key"),
    };
    let request = KeyRequest::new(&key, &env.namespace, &env.pod, &env.uid);
    let text = serde_json::to_string(&request).map_err(|e| e.to_string())?;
    std::fs::write(&env.report, &text)
        .map_err(|e| format!("writing the request to {}: {e}", env.report.display()))?;
    Ok(format!("{}: {note}, PeerId {}", env.pod, request.peer_id))
}

/// Whether a list in `path` revokes `key` at `now`. The lists come from the operator's trust
/// ConfigMap, which holds only lists the operator verified against the root.
fn revoked(path: &Path, key: &PublicKey, now: u64) -> Result<bool, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(format!("reading {}: {e}", path.display())),
    };
    let lists = RevocationList::many_from_pem(&text)
        .map_err(|e| format!("{} holds no revocation lists: {e}", path.display()))?;
    Ok(lists.iter().any(|list| {
        list.body
            .revoked
            .iter()
            .any(|r| r.subject == *key && r.revoked_at <= now)
    }))
}

fn make_key(path: &Path) -> Result<SecretKey, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let key = SecretKey::generate();
    let pem = keyfile::to_plain_pem(&key)?;
    keyfile::write_secret(path, &pem, false)
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(key)
}

/// Inputs of `await-chain`.
#[derive(Debug, Clone)]
pub struct AwaitEnv {
    /// `MEDIACHAIN_KEY`: the key the chain must certify.
    pub key: PathBuf,
    /// `MEDIACHAIN_CHAIN`: the chain file (appears when the operator certifies the key).
    pub chain: PathBuf,
    /// `AWAIT_CHAIN_SECONDS`: how long to wait.
    pub timeout: Duration,
    /// Pause between two looks.
    pub poll: Duration,
}

impl AwaitEnv {
    fn from_env() -> Self {
        Self {
            key: var("MEDIACHAIN_KEY")
                .unwrap_or_else(|| KEY_PATH.into())
                .into(),
            chain: var("MEDIACHAIN_CHAIN").unwrap_or_default().into(),
            timeout: var("AWAIT_CHAIN_SECONDS")
                .and_then(|s| s.parse().ok())
                .map_or(AWAIT_TIMEOUT, Duration::from_secs),
            poll: Duration::from_secs(2),
        }
    }
}

/// `await-chain`: waits until the chain certifies the key and is valid now.
pub fn await_chain(env: &AwaitEnv) -> Result<String, String> {
    let text = std::fs::read_to_string(&env.key)
        .map_err(|e| format!("reading {}: {e}", env.key.display()))?;
    let key = keyfile::parse(&env.key, &text, None).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    loop {
        let why = match certifies(&env.chain, &key.public(), mediachain::time::now()) {
            Ok(not_after) => {
                return Ok(format!(
                    "{} certifies {} until {not_after}",
                    env.chain.display(),
                    key.public()
                ))
            }
            Err(why) => why,
        };
        if started.elapsed() >= env.timeout {
            return Err(format!(
                "no certificate for {} in {} after {} s: {why}",
                key.public(),
                env.chain.display(),
                env.timeout.as_secs()
            ));
        }
        std::thread::sleep(env.poll);
    }
}

/// The end of validity of the chain in `path` if its leaf certifies `key` now.
fn certifies(path: &Path, key: &PublicKey, now: u64) -> Result<u64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let chain = Chain::from_pem(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let leaf = chain.leaf().ok_or("an empty chain")?;
    if leaf.body.subject != *key {
        return Err(format!("the chain certifies {}", leaf.body.subject));
    }
    if leaf.body.not_after <= now || leaf.body.not_before > now {
        return Err("the chain is not valid now".into());
    }
    Ok(leaf.body.not_after)
}

#[cfg(test)]
#[path = "peer_key_tests.rs"]
mod tests;
