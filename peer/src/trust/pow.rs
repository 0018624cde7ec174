//! Hashcash-style proof of work, bound to what it authorises.
//!
//! The challenge is `sha256("mediachain/pow/v1" || purpose || resource)`, where the resource is
//! the client's public key plus the peer's registration challenge (registration) or the
//! transaction hash (submission). A stamp is a nonce such that `sha256(challenge || nonce)` has at
//! least `bits` leading zero bits. Verifying costs two hashes whatever the difficulty.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a proof of work authorises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Purpose {
    /// A Level-2 registration of a client key.
    Registration,
    /// The submission of one transaction.
    Transaction,
}

impl Purpose {
    fn tag(self) -> u8 {
        match self {
            Purpose::Registration => 1,
            Purpose::Transaction => 2,
        }
    }
}

/// Highest difficulty accepted (keeps a hostile `bits` from meaning anything odd).
pub const MAX_BITS: u8 = 64;

/// A solved proof of work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PowStamp {
    /// Difficulty the stamp was solved for.
    pub bits: u8,
    /// The solution.
    pub nonce: u64,
}

/// Why a stamp is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PowError {
    /// The stamp claims less work than required.
    #[error("proof of work has {found} bits, {required} are required")]
    Insufficient {
        /// Required difficulty.
        required: u8,
        /// Claimed difficulty.
        found: u8,
    },
    /// The hash does not have the claimed leading zero bits (or belongs to another resource).
    #[error("proof of work does not solve the challenge for this {0:?}")]
    Invalid(Purpose),
    /// Difficulty above [`MAX_BITS`].
    #[error("proof-of-work difficulty {0} is above the maximum of {MAX_BITS} bits")]
    TooHard(u8),
}

/// The challenge a stamp must solve for `purpose` over `resource`.
pub fn challenge(purpose: Purpose, resource: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(b"mediachain/pow/v1");
    hasher.update([purpose.tag()]);
    hasher.update(resource);
    hasher.finalize().into()
}

fn leading_zero_bits(hash: &[u8; 32]) -> u32 {
    let mut bits = 0;
    for byte in hash {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

fn work(prefix: &Sha256, nonce: u64) -> [u8; 32] {
    let mut hasher = prefix.clone();
    hasher.update(nonce.to_le_bytes());
    hasher.finalize().into()
}

fn prefix(challenge: &[u8; 32]) -> Sha256 {
    let mut hasher = Sha256::new();
    hasher.update(challenge);
    hasher
}

/// Finds a stamp of `bits` difficulty (expected 2^bits hashes).
pub fn solve(purpose: Purpose, resource: &[u8], bits: u8) -> Result<PowStamp, PowError> {
    if bits > MAX_BITS {
        return Err(PowError::TooHard(bits));
    }
    let prefix = prefix(&challenge(purpose, resource));
    let mut nonce = 0u64;
    while leading_zero_bits(&work(&prefix, nonce)) < u32::from(bits) {
        nonce = nonce.wrapping_add(1);
    }
    Ok(PowStamp { bits, nonce })
}

/// Checks a stamp for `purpose` over `resource` against the `required` difficulty.
pub fn verify(
    stamp: &PowStamp,
    purpose: Purpose,
    resource: &[u8],
    required: u8,
) -> Result<(), PowError> {
    if stamp.bits > MAX_BITS {
        return Err(PowError::TooHard(stamp.bits));
    }
    if stamp.bits < required {
        return Err(PowError::Insufficient {
            required,
            found: stamp.bits,
        });
    }
    let hash = work(&prefix(&challenge(purpose, resource)), stamp.nonce);
    if leading_zero_bits(&hash) < u32::from(stamp.bits) {
        return Err(PowError::Invalid(purpose));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_solved_stamp_verifies_for_its_resource_only() {
        let stamp = solve(Purpose::Transaction, b"tx-hash", 12).unwrap();
        assert_eq!(verify(&stamp, Purpose::Transaction, b"tx-hash", 12), Ok(()));
        assert_eq!(verify(&stamp, Purpose::Transaction, b"tx-hash", 8), Ok(()));
        assert_eq!(
            verify(&stamp, Purpose::Transaction, b"tx-hash", 13),
            Err(PowError::Insufficient {
                required: 13,
                found: 12
            })
        );
        // Bound to the purpose and to the resource, each on its own: with 12 bits the chance of an
        // accidental pass is 1/4096; these inputs are fixed, so the test is deterministic.
        assert_eq!(
            verify(&stamp, Purpose::Registration, b"tx-hash", 12),
            Err(PowError::Invalid(Purpose::Registration))
        );
        assert_eq!(
            verify(&stamp, Purpose::Transaction, b"other", 12),
            Err(PowError::Invalid(Purpose::Transaction))
        );
    }

    #[test]
    fn zero_bits_is_free_and_absurd_difficulty_is_refused() {
        assert_eq!(solve(Purpose::Registration, b"k", 0).unwrap().nonce, 0);
        assert_eq!(
            solve(Purpose::Registration, b"k", 65),
            Err(PowError::TooHard(65))
        );
    }

    #[test]
    fn leading_zero_bits_counts_across_bytes() {
        let mut h = [0xffu8; 32];
        assert_eq!(leading_zero_bits(&h), 0);
        h[0] = 0;
        h[1] = 0x10;
        assert_eq!(leading_zero_bits(&h), 11);
        assert_eq!(leading_zero_bits(&[0; 32]), 256);
    }

    proptest! {
        #[test]
        fn stamps_verify_and_forged_nonces_mostly_fail(resource in proptest::collection::vec(any::<u8>(), 0..40), bits in 4u8..10) {
            let stamp = solve(Purpose::Registration, &resource, bits).unwrap();
            prop_assert!(verify(&stamp, Purpose::Registration, &resource, bits).is_ok());
            // The nonce is the smallest solution: every smaller nonce is refused.
            for nonce in 0..stamp.nonce.min(64) {
                let forged = PowStamp { bits, nonce };
                prop_assert!(verify(&forged, Purpose::Registration, &resource, bits).is_err());
            }
        }
    }
}
