//! Admission: whether a peer's hello lets it in. A hello must name this network and genesis
//! block and carry a Level-1 chain that verifies, at the receiver's time and under its
//! revocation list, for the connecting PeerId. Pure: the certificate checks are computations
//! over values; the engine passes the rules and the time.

use libp2p::PeerId;

use super::super::protocol::Hello;
use crate::journal::verify::ChainCache;
use crate::journal::Rules;
use crate::model::Cid;
use crate::network::SectionDigests;
use crate::time::UnixSeconds;
use crate::trust::{Chain, Level, PublicKey};

/// What a verified hello says about its peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    /// Its certified key.
    pub key: PublicKey,
    /// Its Level-1 chain.
    pub chain: Chain,
    /// Its claimed tip.
    pub tip: Cid,
    /// Its claimed height.
    pub height: u64,
}

/// Verifies `peer`'s Level-1 chain (PEM) under `rules` at `now`; returns its key and the chain. Signature
/// checks already made are taken from `cache` (every peer's record repeats its chain every few
/// seconds, to every member); the validity window and revocations are checked every time.
pub fn verify_chain(
    peer: &PeerId,
    chain_pem: &str,
    rules: &Rules,
    cache: &ChainCache,
    now: UnixSeconds,
) -> Result<(PublicKey, Chain), String> {
    let chain = Chain::from_pem(chain_pem).map_err(|e| format!("unreadable certificate: {e}"))?;
    let key = cache
        .verify(rules, &chain.0, Level::Peer, now)
        .map_err(|e| e.to_string())?;
    if key.peer_id() != *peer {
        return Err(format!(
            "certificate is for {key}, not for the connecting peer {peer}"
        ));
    }
    Ok((key, chain))
}

/// This peer's side of admission: its genesis block, the digests of its network parameters
/// (if a file defines them) and its verification rules.
#[derive(Debug, Clone, Copy)]
pub struct Ours<'a> {
    /// The genesis block.
    pub genesis: &'a Cid,
    /// The sections of the network parameters, digested.
    pub params: Option<&'a SectionDigests>,
    /// The rules (network name, root, revocations).
    pub rules: &'a Rules,
    /// Certificate chains verified before.
    pub cache: &'a ChainCache,
}

/// Checks `peer`'s hello against `ours` at `now`: its admission, or why it is refused (for
/// another genesis, the sections of the network parameters that differ).
pub fn check_hello(
    peer: &PeerId,
    hello: &Hello,
    ours: Ours,
    now: UnixSeconds,
) -> Result<Admission, String> {
    let Ours {
        genesis,
        params,
        rules,
        cache,
    } = ours;
    if hello.network != rules.network {
        return Err(format!("peer is on network `{}`", hello.network));
    }
    if hello.genesis.as_ref() != genesis.to_bytes().as_slice() {
        return Err(SectionDigests::genesis_mismatch(
            params,
            hello.params.as_deref(),
        ));
    }
    let (key, chain) = verify_chain(peer, &hello.chain, rules, cache, now)?;
    let tip = Cid::try_from(hello.tip.as_ref()).map_err(|_| "unreadable tip".to_string())?;
    Ok(Admission {
        key,
        chain,
        tip,
        height: hello.height,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::{Certificate, SecretKey};
    use serde_bytes::ByteBuf;

    /// A tower root -> principal -> peer valid from 100 to 200; the rules pin `root`.
    fn tower(root: &SecretKey, peer: &SecretKey) -> Chain {
        let principal = SecretKey::generate();
        let l0 = Chain(vec![Certificate::issue(
            root,
            principal.public(),
            Level::Principal,
            0,
            1000,
        )]);
        Chain::extend(
            Certificate::issue(&principal, peer.public(), Level::Peer, 100, 200),
            &l0,
        )
    }

    fn hello(chain: &Chain, genesis: &Cid, network: &str) -> Hello {
        Hello {
            network: network.into(),
            genesis: ByteBuf::from(genesis.to_bytes()),
            chain: chain.to_pem(),
            height: 7,
            tip: ByteBuf::from(genesis.to_bytes()),
            params: None,
        }
    }

    fn ours<'a>(genesis: &'a Cid, rules: &'a Rules, cache: &'a ChainCache) -> Ours<'a> {
        Ours {
            genesis,
            params: None,
            rules,
            cache,
        }
    }

    #[test]
    fn a_hello_is_admitted_only_with_this_network_genesis_and_a_chain_for_its_peer() {
        let (root, key) = (SecretKey::generate(), SecretKey::generate());
        let rules = Rules::new("net", root.public(), 0);
        let cache = ChainCache::default();
        let genesis = crate::model::codec::dag_cbor_cid(b"genesis");
        let peer = key.public().peer_id();
        let chain = tower(&root, &key);
        let admitted = check_hello(
            &peer,
            &hello(&chain, &genesis, "net"),
            ours(&genesis, &rules, &cache),
            150,
        );
        assert_eq!(
            admitted,
            Ok(Admission {
                key: key.public(),
                chain: chain.clone(),
                tip: genesis,
                height: 7
            })
        );
        let other = crate::model::codec::dag_cbor_cid(b"other");
        let refusals = [
            check_hello(
                &peer,
                &hello(&chain, &genesis, "x"),
                ours(&genesis, &rules, &cache),
                150,
            ),
            check_hello(
                &peer,
                &hello(&chain, &other, "net"),
                ours(&genesis, &rules, &cache),
                150,
            ),
            check_hello(
                &peer,
                &hello(&chain, &genesis, "net"),
                ours(&genesis, &rules, &cache),
                250,
            ),
            check_hello(
                &PeerId::random(),
                &hello(&chain, &genesis, "net"),
                ours(&genesis, &rules, &cache),
                150,
            ),
            check_hello(
                &peer,
                &hello(&tower(&SecretKey::generate(), &key), &genesis, "net"),
                ours(&genesis, &rules, &cache),
                150,
            ),
        ];
        for (n, refusal) in refusals.iter().enumerate() {
            assert!(refusal.is_err(), "case {n} was admitted");
        }
    }
}
