//! Client registration: a signed challenge, a proof of work bound to the client key and the
//! challenge, and a Level-2 certificate signed by the peer that takes the registration.
//!
//! A challenge is `timestamp (8 bytes, big-endian) || issuer key (32) || random nonce (16) ||
//! the issuer's signature over those (64)`, so any peer of the network can check it without
//! having issued it: a client behind a load balancer may fetch the challenge from one peer and
//! register at another.
//! Challenges expire after [`CHALLENGE_TTL`]. A challenge is spent by its first successful use at
//! this peer: the registrar remembers the challenges it accepted until they expire (at most
//! [`MAX_SPENT`]; past it registrations are refused as busy until some expire). Another peer of
//! the network does not know what this one accepted, so a challenge yields at most one certificate
//! per peer.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::time::UnixSeconds;
use crate::trust::{pow, Certificate, Chain, Level, PowError, PowStamp, PublicKey, SecretKey};

/// How long a registration challenge stays valid, in seconds.
pub const CHALLENGE_TTL: UnixSeconds = 600;

/// Signature context of registration challenges.
const CHALLENGE_CONTEXT: &[u8] = b"mediachain/registration-challenge/v2";

/// Bytes of a challenge: timestamp, issuer key, nonce, signature.
const CHALLENGE_LEN: usize = SIGNED_LEN + 64;
/// Bytes of a challenge the issuer signs: timestamp, issuer key, nonce.
const SIGNED_LEN: usize = 8 + 32 + 16;

/// Most spent challenges remembered (each cost its client a proof of work).
pub const MAX_SPENT: usize = 100_000;

/// Why a registration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// The challenge was not issued by a peer of this network, or was altered.
    #[error("the challenge was not issued by a peer of this network")]
    ForeignChallenge,
    /// The challenge is too old.
    #[error(
        "the challenge expired (challenges are valid for {CHALLENGE_TTL} s); ask for a new one"
    )]
    StaleChallenge,
    /// The proof of work is missing or insufficient.
    #[error("proof of work: {0}")]
    ProofOfWork(#[from] PowError),
    /// The challenge was already used for a registration here.
    #[error("the challenge was already used for a registration; ask for a new one")]
    SpentChallenge,
    /// Too many challenges are in use to remember another.
    #[error("too many registrations in the last {CHALLENGE_TTL} s; retry later")]
    Busy,
}

/// Issues challenges and registers clients for one peer.
pub struct Registrar {
    key: SecretKey,
    chain: Chain,
    bits: u8,
    validity: UnixSeconds,
    /// Challenges accepted here (by their signature), with the time they were issued.
    spent: Mutex<HashMap<[u8; 64], UnixSeconds>>,
}

impl Registrar {
    /// A registrar signing with the peer's `key` and Level-1 `chain`, requiring `bits` of work
    /// and issuing certificates valid for `validity` seconds.
    pub fn new(key: SecretKey, chain: Chain, bits: u8, validity: UnixSeconds) -> Self {
        Self {
            key,
            chain,
            bits,
            validity,
            spent: Mutex::new(HashMap::new()),
        }
    }

    /// Marks the challenge issued at `issued` with `signature` spent; false if it was already.
    fn spend(
        &self,
        signature: [u8; 64],
        issued: UnixSeconds,
        now: UnixSeconds,
    ) -> Result<(), RegistrationError> {
        let mut spent = self.spent.lock().unwrap_or_else(|p| p.into_inner());
        if spent.contains_key(&signature) {
            return Err(RegistrationError::SpentChallenge);
        }
        if spent.len() >= MAX_SPENT {
            // Expired challenges are refused anyway: forgetting them is safe.
            spent.retain(|_, at| now.saturating_sub(*at) <= CHALLENGE_TTL);
            if spent.len() >= MAX_SPENT {
                return Err(RegistrationError::Busy);
            }
        }
        spent.insert(signature, issued);
        Ok(())
    }

    /// Spent challenges remembered.
    pub fn spent(&self) -> usize {
        self.spent.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The required difficulty.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// A fresh challenge, signed by this peer, unique by its random nonce.
    pub fn challenge(&self, now: UnixSeconds) -> Vec<u8> {
        let mut nonce = [0u8; 16];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        self.challenge_with(now, nonce)
    }

    /// The challenge issued at `now` with `nonce`.
    pub fn challenge_with(&self, now: UnixSeconds, nonce: [u8; 16]) -> Vec<u8> {
        let mut c = now.to_be_bytes().to_vec();
        c.extend_from_slice(self.key.public().as_bytes());
        c.extend_from_slice(&nonce);
        let signature = self.key.sign(CHALLENGE_CONTEXT, &c);
        c.extend_from_slice(&signature);
        c
    }

    /// The resource a client's proof of work must cover.
    pub fn resource(client: &PublicKey, challenge: &[u8]) -> Vec<u8> {
        let mut r = client.as_bytes().to_vec();
        r.extend_from_slice(challenge);
        r
    }

    /// Checks the challenge (issued by this peer or by a key `is_peer` accepts) and the work,
    /// then certifies `client` at Level 2.
    pub fn register(
        &self,
        client: PublicKey,
        challenge: &[u8],
        stamp: &PowStamp,
        now: UnixSeconds,
        is_peer: impl Fn(&PublicKey) -> bool,
    ) -> Result<Chain, RegistrationError> {
        if challenge.len() != CHALLENGE_LEN {
            return Err(RegistrationError::ForeignChallenge);
        }
        let (signed, signature) = challenge.split_at(SIGNED_LEN);
        let (ts, rest) = signed.split_at(8);
        let issuer = &rest[..32];
        let ts = UnixSeconds::from_be_bytes(
            ts.try_into()
                .map_err(|_| RegistrationError::ForeignChallenge)?,
        );
        let issuer =
            PublicKey::from_bytes(issuer).map_err(|_| RegistrationError::ForeignChallenge)?;
        let signature: [u8; 64] = signature
            .try_into()
            .map_err(|_| RegistrationError::ForeignChallenge)?;
        if issuer != self.key.public() && !is_peer(&issuer) {
            return Err(RegistrationError::ForeignChallenge);
        }
        if !issuer.verify(CHALLENGE_CONTEXT, signed, &signature) {
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
        self.spend(signature, ts, now)?;
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

    /// The proof of work (8 bits) of `client` for `challenge`.
    fn work(client: &PublicKey, challenge: &[u8]) -> PowStamp {
        pow::solve(
            pow::Purpose::Registration,
            &Registrar::resource(client, challenge),
            8,
        )
        .unwrap()
    }

    #[test]
    fn a_client_with_work_on_a_fresh_challenge_gets_a_level_2_chain() {
        let (r, root) = registrar();
        let client = SecretKey::generate().public();
        let now = 1_700_000_000;
        let challenge = r.challenge(now);
        let stamp = work(&client, &challenge);
        let chain = r
            .register(client, &challenge, &stamp, now + 5, |_| false)
            .unwrap();
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
        let stamp = work(&client, &challenge);
        let mut forged = challenge.clone();
        forged[0] ^= 1;
        assert_eq!(
            r.register(client, &forged, &stamp, now, |_| true),
            Err(RegistrationError::ForeignChallenge)
        );
        assert_eq!(
            r.register(client, &challenge, &stamp, now + CHALLENGE_TTL + 1, |_| {
                false
            }),
            Err(RegistrationError::StaleChallenge)
        );
        let other = SecretKey::from_seed(&[5; 32]).public();
        assert!(matches!(
            r.register(other, &challenge, &stamp, now, |_| false),
            Err(RegistrationError::ProofOfWork(_))
        ));
    }

    #[test]
    fn a_challenge_is_spent_by_its_first_successful_use_only() {
        let (r, _) = registrar();
        let client = SecretKey::from_seed(&[4; 32]).public();
        let other = SecretKey::from_seed(&[5; 32]).public();
        let now = 1_700_000_000;
        let challenge = r.challenge(now);
        // A failed attempt spends nothing.
        let wrong = work(&other, &challenge);
        assert!(matches!(
            r.register(client, &challenge, &wrong, now, |_| false),
            Err(RegistrationError::ProofOfWork(_))
        ));
        let stamp = work(&client, &challenge);
        assert!(r
            .register(client, &challenge, &stamp, now, |_| false)
            .is_ok());
        assert_eq!(
            r.register(client, &challenge, &stamp, now + 1, |_| false),
            Err(RegistrationError::SpentChallenge)
        );
        // The same challenge with another client's work is spent too.
        let theirs = work(&other, &challenge);
        assert_eq!(
            r.register(other, &challenge, &theirs, now + 1, |_| false),
            Err(RegistrationError::SpentChallenge)
        );
        assert_eq!(r.spent(), 1);
    }

    #[test]
    fn spent_challenges_are_bounded_and_forgotten_once_expired() {
        let (r, _) = registrar();
        let now = 1_700_000_000;
        for i in 0..MAX_SPENT {
            let mut signature = [0u8; 64];
            signature[..8].copy_from_slice(&(i as u64).to_be_bytes());
            r.spend(signature, now, now).unwrap();
        }
        assert_eq!(r.spend([0xff; 64], now, now), Err(RegistrationError::Busy));
        // Once those expired, they are forgotten and registrations go on.
        let later = now + CHALLENGE_TTL + 1;
        assert_eq!(r.spend([0xff; 64], later, later), Ok(()));
        assert_eq!(r.spent(), 1);
    }

    #[test]
    fn a_challenge_of_another_peer_counts_only_if_that_peer_is_known() {
        let (here, _) = registrar();
        let there = Registrar::new(SecretKey::from_seed(&[6; 32]), Chain(vec![]), 8, 3600);
        let issuer = SecretKey::from_seed(&[6; 32]).public();
        let client = SecretKey::from_seed(&[4; 32]).public();
        let now = 1_700_000_000;
        let challenge = there.challenge(now);
        let stamp = work(&client, &challenge);
        assert_eq!(
            here.register(client, &challenge, &stamp, now, |_| false),
            Err(RegistrationError::ForeignChallenge)
        );
        let chain = here
            .register(client, &challenge, &stamp, now, |k| *k == issuer)
            .unwrap();
        assert_eq!(chain.leaf().map(|c| c.body.subject), Some(client));
        // A challenge whose issuer is swapped for another key does not verify.
        let mut swapped = challenge.clone();
        swapped[8..40].copy_from_slice(SecretKey::from_seed(&[7; 32]).public().as_bytes());
        assert_eq!(
            here.register(client, &swapped, &stamp, now, |_| true),
            Err(RegistrationError::ForeignChallenge)
        );
    }
}
