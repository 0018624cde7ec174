//! ed25519 keys. A node's key is also its libp2p identity, so a certificate's subject and the
//! node's PeerId always name the same key.
//!
//! Signatures are domain-separated (every message is prefixed with a context string) and checked
//! under one rule everywhere, ZIP-215 (ed25519-zebra): the cofactored equation, whose single and
//! batch forms accept exactly the same signatures, so a block verified as a batch on one peer and
//! one by one on another gets the same verdict (a consensus rule: docs/consensus.md). Keys of
//! small order are refused when parsed: anyone can forge a signature for them.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey};
use ed25519_zebra::batch;
use libp2p_identity::PeerId;
use rand_core::OsRng;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A public key that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Not 32 bytes, not a valid curve point, or not a PeerId/hex string.
    #[error(
        "invalid ed25519 public key `{0}`: expected a libp2p PeerId (12D3KooW...) or 64 hex digits"
    )]
    InvalidPublicKey(String),
}

/// An ed25519 public key: a node's identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; 32]);

/// Keys recently checked to be curve points of more than small order, decompressed.
/// Decompression (a field exponentiation, ~15 µs) would otherwise run for every key of every
/// certificate of every decoded transaction, and again for every signature check. Bounded:
/// emptied when full.
mod points {
    use std::collections::HashMap;
    use std::sync::{LazyLock, RwLock};

    use ed25519_dalek::VerifyingKey;
    use ed25519_zebra::VerificationKey;

    /// At most this many keys (~200 bytes each) are remembered.
    const CAPACITY: usize = 16_384;

    static KNOWN: LazyLock<RwLock<HashMap<[u8; 32], VerificationKey>>> =
        LazyLock::new(|| RwLock::new(HashMap::with_capacity(1024)));

    /// The decompressed point of `bytes`, or `None` if they are not a valid point or one of
    /// small order.
    pub(super) fn decompress(bytes: &[u8; 32]) -> Option<VerificationKey> {
        if let Some(key) = KNOWN.read().ok().and_then(|k| k.get(bytes).copied()) {
            return Some(key);
        }
        if VerifyingKey::from_bytes(bytes).ok()?.is_weak() {
            return None;
        }
        let key = VerificationKey::try_from(*bytes).ok()?;
        if let Ok(mut known) = KNOWN.write() {
            if known.len() >= CAPACITY {
                known.clear();
            }
            known.insert(*bytes, key);
        }
        Some(key)
    }
}

impl PublicKey {
    /// Parses 32 raw bytes, checking they are a valid curve point of more than small order.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|_| KeyError::InvalidPublicKey(hex::encode(bytes)))?;
        points::decompress(&array).ok_or_else(|| KeyError::InvalidPublicKey(hex::encode(bytes)))?;
        Ok(Self(array))
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The libp2p PeerId of this key (identity multihash of its protobuf encoding).
    pub fn peer_id(&self) -> PeerId {
        #[allow(clippy::expect_used)] // invariant: checked to be a valid point at construction
        let key = libp2p_identity::ed25519::PublicKey::try_from_bytes(&self.0)
            .expect("PublicKey holds a valid ed25519 point");
        libp2p_identity::PublicKey::from(key).to_peer_id()
    }

    /// The key of a libp2p PeerId, if the PeerId inlines an ed25519 key.
    pub fn from_peer_id(peer: &PeerId) -> Option<Self> {
        let multihash = peer.as_ref();
        // Identity multihash (code 0) of the protobuf-encoded public key.
        if multihash.code() != 0 {
            return None;
        }
        let key = libp2p_identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
        let ed = key.try_into_ed25519().ok()?;
        Self::from_bytes(&ed.to_bytes()).ok()
    }

    /// Verifies a domain-separated signature (ZIP-215 rules, as [`verify_batch`]).
    pub fn verify(&self, context: &[u8], message: &[u8], signature: &[u8; 64]) -> bool {
        let Some(key) = points::decompress(&self.0) else {
            return false;
        };
        key.verify(
            &ed25519_zebra::Signature::from_bytes(signature),
            &domain_message(context, message),
        )
        .is_ok()
    }
}

/// One signature to check in a batch: `signature` by `key` over `message` under `context`.
#[derive(Debug, Clone, Copy)]
pub struct SignatureCheck<'a> {
    /// The signer.
    pub key: PublicKey,
    /// The domain-separation context.
    pub context: &'a [u8],
    /// The signed message (without the context).
    pub message: &'a [u8],
    /// The signature.
    pub signature: &'a [u8; 64],
}

/// Which of `checks` hold, in order: the verdicts of [`PublicKey::verify`] for each. All are
/// checked with one batch equation (about half the work of checking them one by one, less when
/// signers repeat); when it fails, each is checked alone to find the culprits. Same rule as
/// single verification (ZIP-215), so the verdicts never depend on the batch.
pub fn verify_batch(checks: &[SignatureCheck<'_>]) -> Vec<bool> {
    if checks.len() < 2 {
        return checks
            .iter()
            .map(|c| c.key.verify(c.context, c.message, c.signature))
            .collect();
    }
    let items: Vec<batch::Item> = checks
        .iter()
        .map(|c| {
            let key = ed25519_zebra::VerificationKeyBytes::from(c.key.0);
            let signature = ed25519_zebra::Signature::from_bytes(c.signature);
            batch::Item::from((key, signature, &domain_message(c.context, c.message)))
        })
        .collect();
    let mut verifier = batch::Verifier::new();
    for item in &items {
        verifier.queue(item.clone());
    }
    if verifier.verify(OsRng).is_ok() {
        return vec![true; checks.len()];
    }
    items
        .into_iter()
        .map(|item| item.verify_single().is_ok())
        .collect()
}

fn domain_message(context: &[u8], message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(context.len() + 1 + message.len());
    out.extend_from_slice(context);
    out.push(0);
    out.extend_from_slice(message);
    out
}

impl fmt::Display for PublicKey {
    /// Keys are shown as their PeerId, the same string libp2p logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.peer_id())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.peer_id())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;

    /// Accepts a PeerId string or 64 hex digits.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(bytes) = hex::decode(s) {
            return Self::from_bytes(&bytes);
        }
        let peer = PeerId::from_str(s).map_err(|_| KeyError::InvalidPublicKey(s.to_string()))?;
        Self::from_peer_id(&peer).ok_or_else(|| KeyError::InvalidPublicKey(s.to_string()))
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_bytes::Bytes::new(&self.0).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(deserializer)?;
        Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

/// An ed25519 secret key (zeroized on drop).
#[derive(Clone)]
pub struct SecretKey(SigningKey);

impl SecretKey {
    /// A fresh key from the operating system's randomness.
    pub fn generate() -> Self {
        Self(SigningKey::generate(&mut OsRng))
    }

    /// A key from its 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The 32-byte seed (secret!).
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `message` under `context` (domain separation).
    pub fn sign(&self, context: &[u8], message: &[u8]) -> [u8; 64] {
        self.0.sign(&domain_message(context, message)).to_bytes()
    }

    /// The same key as a libp2p identity keypair.
    pub fn to_libp2p(&self) -> libp2p_identity::Keypair {
        let mut seed = self.seed();
        #[allow(clippy::expect_used)] // invariant: any 32 bytes are a valid ed25519 seed
        let secret = libp2p_identity::ed25519::SecretKey::try_from_bytes(&mut seed)
            .expect("a 32-byte seed is a valid ed25519 secret key");
        libp2p_identity::Keypair::from(libp2p_identity::ed25519::Keypair::from(secret))
    }

    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.public())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoding of the identity point (y = 1).
    const IDENTITY: [u8; 32] = {
        let mut bytes = [0; 32];
        bytes[0] = 1;
        bytes
    };

    #[test]
    fn peer_id_and_public_key_name_the_same_key() {
        let key = SecretKey::generate();
        let libp2p = key.to_libp2p();
        assert_eq!(libp2p.public().to_peer_id(), key.public().peer_id());
        let parsed: PublicKey = key.public().to_string().parse().unwrap();
        assert_eq!(parsed, key.public());
        let from_hex: PublicKey = hex::encode(key.public().as_bytes()).parse().unwrap();
        assert_eq!(from_hex, key.public());
    }

    #[test]
    fn signatures_are_bound_to_their_context() {
        let key = SecretKey::generate();
        let sig = key.sign(b"a", b"message");
        assert!(key.public().verify(b"a", b"message", &sig));
        assert!(!key.public().verify(b"b", b"message", &sig));
        assert!(!key.public().verify(b"a", b"messagf", &sig));
    }

    #[test]
    fn a_batch_with_one_bad_signature_rejects_exactly_that_one() {
        let keys: Vec<SecretKey> = (0..3).map(|_| SecretKey::generate()).collect();
        let messages: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 1 + usize::from(i)]).collect();
        let mut signatures: Vec<[u8; 64]> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| keys[i % 3].sign(b"ctx", m))
            .collect();
        let checks = |signatures: &[[u8; 64]]| -> Vec<bool> {
            let checks: Vec<SignatureCheck> = messages
                .iter()
                .zip(signatures)
                .enumerate()
                .map(|(i, (message, signature))| SignatureCheck {
                    key: keys[i % 3].public(),
                    context: b"ctx",
                    message,
                    signature,
                })
                .collect();
            verify_batch(&checks)
        };
        assert_eq!(checks(&signatures), vec![true; 40]);
        signatures[17][5] ^= 1;
        let verdicts = checks(&signatures);
        let refused: Vec<usize> = (0..40).filter(|&i| !verdicts[i]).collect();
        assert_eq!(refused, vec![17]);
    }

    #[test]
    fn batch_and_single_verification_agree_on_edge_case_signatures() {
        // A signature whose R is of small order over a key of full order, and one with a
        // non-canonical s (s + l): the cofactored rule is the same alone and in a batch.
        let key = SecretKey::generate();
        let good = key.sign(b"ctx", b"m");
        let mut identity_r = good;
        identity_r[..32].copy_from_slice(&IDENTITY);
        let mut high_s = good;
        high_s[63] |= 0xf0;
        for bad in [identity_r, high_s] {
            let single = key.public().verify(b"ctx", b"m", &bad);
            let check = |signature| SignatureCheck {
                key: key.public(),
                context: b"ctx",
                message: b"m",
                signature,
            };
            let batch = verify_batch(&[check(&good), check(&bad)]);
            assert_eq!(batch, vec![true, single]);
        }
    }

    #[test]
    fn keys_of_small_order_are_refused() {
        // The identity point (y = 1) and a point of order 4 (y = 0): anyone can sign for them.
        assert!(PublicKey::from_bytes(&IDENTITY).is_err());
        assert!(PublicKey::from_bytes(&[0u8; 32]).is_err());
    }

    #[test]
    fn garbage_public_keys_are_refused_with_a_message() {
        let err = "not-a-key".parse::<PublicKey>().unwrap_err().to_string();
        assert!(err.contains("not-a-key"), "{err}");
        assert!(PublicKey::from_bytes(&[1, 2, 3]).is_err());
    }
}
