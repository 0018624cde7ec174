//! Client registration: a stateless challenge, a proof of work bound to the client key and the
//! challenge, and a Level-2 certificate signed by this peer.
//!
//! A challenge is `timestamp (8 bytes, big-endian) || tag (16 bytes)` where the tag is a keyed
//! hash of the timestamp under a secret derived from the peer's key, so the peer can check a
//! challenge it issued without remembering it; challenges expire after [`CHALLENGE_TTL`].

use sha2::{Digest, Sha256};

use crate::time::UnixSeconds;
use crate::trust::{pow, Certificate, Chain, Level, PowError, PowStamp, PublicKey, SecretKey};

/// How long a registration challenge stays valid, in seconds.
pub const CHALLENGE_TTL: UnixSeconds = 600;

/// Why a registration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The challenge was not issued by this peer or was altered.
    #[error("the challenge was not issued by this peer")]
    ForeignChallenge,
    /// The challenge is too old.
    #[error(
        "the challenge expired (challenges are valid for {CHALLENGE_TTL} s); ask for a new one"
    )]
    StaleChallenge,
    /// The proof of work is missing or insufficient.
    #[error("proof of work: {0}")]
    ProofOfWork(#[from] PowError),
}

fn tag(secret: &[u8; 32], timestamp: UnixSeconds) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(b"mediachain/registration-challenge/v1")
        .chain_update(secret)
        .chain_update(timestamp.to_be_bytes())
        .finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// Issues challenges and registers clients for one peer.
pub struct Registrar {
    secret: [u8; 32],
    key: SecretKey,
    chain: Chain,
    bits: u8,
    validity: UnixSeconds,
}

impl Registrar {
    /// A registrar signing with the peer's `key` and Level-1 `chain`, requiring `bits` of work
    /// and issuing certificates valid for `validity` seconds.
    pub fn new(key: SecretKey, chain: Chain, bits: u8, validity: UnixSeconds) -> Self {
        let secret = Sha256::new()
            .chain_update(b"mediachain/registrar-secret/v1")
            .chain_update(key.seed())
            .finalize()
            .into();
        Self {
            secret,
            key,
            chain,
            bits,
            validity,
        }
    }

    /// The required difficulty.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// A fresh challenge.
    pub fn challenge(&self, now: UnixSeconds) -> Vec<u8> {
        let mut c = now.to_be_bytes().to_vec();
        c.extend_from_slice(&tag(&self.secret, now));
        c
    }

    /// The resource a client's proof of work must cover.
    pub fn resource(client: &PublicKey, challenge: &[u8]) -> Vec<u8> {
        let mut r = client.as_bytes().to_vec();
        r.extend_from_slice(challenge);
        r
    }

    /// Checks the challenge and the work, then certifies `client` at Level 2.
    pub fn register(
        &self,
        client: PublicKey,
        challenge: &[u8],
        stamp: &PowStamp,
        now: UnixSeconds,
    ) -> Result<Chain, RegistrationError> {
        let (ts, given) = challenge
            .split_at_checked(8)
            .ok_or(RegistrationError::ForeignChallenge)?;
        let ts = UnixSeconds::from_be_bytes(
            ts.try_into()
                .map_err(|_| RegistrationError::ForeignChallenge)?,
        );
        if given != tag(&self.secret, ts) {
            return Err(RegistrationError::ForeignChallenge);
        }
        if now.saturating_sub(ts) > CHALLENGE_TTL || ts > now + 60 {
            return Err(RegistrationError::StaleChallenge);
        }
        pow::verify(
            stamp,
            pow::Purpose::Registration,
            &Self::resource(&client, challenge),
            self.bits,
        )?;
        let cert = Certificate::issue(
            &self.key,
            client,
            Level::Client,
            now.saturating_sub(60),
            now + self.validity,
        );
        Ok(Chain::extend(cert, &self.chain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registrar() -> (Registrar, SecretKey) {
        // Fixed keys: every challenge and proof of work below is deterministic.
        let root = SecretKey::from_seed(&[1; 32]);
        let principal = SecretKey::from_seed(&[2; 32]);
        let peer = SecretKey::from_seed(&[3; 32]);
        let l0 = Chain(vec![Certificate::issue(
            &root,
            principal.public(),
            Level::Principal,
            0,
            u64::MAX,
        )]);
        let l1 = Chain::extend(
            Certificate::issue(&principal, peer.public(), Level::Peer, 0, u64::MAX),
            &l0,
        );
        (Registrar::new(peer, l1, 8, 3600), root)
    }

    #[test]
    fn a_client_with_work_on_a_fresh_challenge_gets_a_level_2_chain() {
        let (r, root) = registrar();
        let client = SecretKey::generate().public();
        let now = 1_700_000_000;
        let challenge = r.challenge(now);
        let stamp = pow::solve(
            pow::Purpose::Registration,
            &Registrar::resource(&client, &challenge),
            8,
        )
        .unwrap();
        let chain = r.register(client, &challenge, &stamp, now + 5).unwrap();
        let set = crate::trust::RevocationSet::new(root.public());
        assert_eq!(
            chain.verify(&root.public(), &set, now + 5, Level::Client),
            Ok(client)
        );
    }

    #[test]
    fn forged_stale_and_workless_registrations_are_refused() {
        let (r, _) = registrar();
        let client = SecretKey::from_seed(&[4; 32]).public();
        let now = 1_700_000_000;
        let challenge = r.challenge(now);
        let stamp = pow::solve(
            pow::Purpose::Registration,
            &Registrar::resource(&client, &challenge),
            8,
        )
        .unwrap();
        let mut forged = challenge.clone();
        forged[0] ^= 1;
        assert_eq!(
            r.register(client, &forged, &stamp, now),
            Err(RegistrationError::ForeignChallenge)
        );
        assert_eq!(
            r.register(client, &challenge, &stamp, now + CHALLENGE_TTL + 1),
            Err(RegistrationError::StaleChallenge)
        );
        let other = SecretKey::from_seed(&[5; 32]).public();
        assert!(matches!(
            r.register(other, &challenge, &stamp, now),
            Err(RegistrationError::ProofOfWork(_))
        ));
    }
}
