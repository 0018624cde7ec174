//! Which rejections earn the sender a strike: only content invalid for every honest receiver.
//! A rejection that depends on the receiver (its clock, its revocation list, its mempool, its
//! store, its view of the chain) is counted but never blamed, so honest peers never ban each
//! other. Pure.

use crate::journal::membership::RecordRejection;
use crate::journal::{BlockRejection, TxRejection};
use crate::trust::CertError;

/// Whether a certificate error holds for every receiver (not expiry, validity or revocation,
/// which depend on the receiver's clock and revocation list).
pub fn certificate_blame(error: &CertError) -> bool {
    !matches!(
        error,
        CertError::Expired { .. } | CertError::NotYetValid { .. } | CertError::Revoked { .. }
    )
}

/// Whether a forwarded transaction's rejection is the forwarder's fault.
pub fn tx_blame(reason: &TxRejection) -> bool {
    match reason {
        TxRejection::BadSignature
        | TxRejection::CertificateMismatch { .. }
        | TxRejection::ProofOfWork(_)
        | TxRejection::Empty
        | TxRejection::TooManyEntries { .. }
        | TxRejection::ClientMerge => true,
        TxRejection::Certificate(error) => certificate_blame(error),
        // The receiver's clock, its index, its mempool or its store.
        TxRejection::FromTheFuture { .. }
        | TxRejection::Expired { .. }
        | TxRejection::Duplicate(_)
        | TxRejection::Busy
        | TxRejection::UnknownObject(_)
        | TxRejection::NotAPrincipal(_)
        | TxRejection::AlreadyInserted(_)
        | TxRejection::NotInserted(_)
        | TxRejection::BadCell(_)
        | TxRejection::StaleHead(_) => false,
    }
}

/// Whether a block's rejection is the sender's fault.
pub fn block_blame(reason: &BlockRejection) -> bool {
    match reason {
        BlockRejection::Committer(error) => certificate_blame(error),
        BlockRejection::Transaction { reason, .. } => tx_blame(reason),
        BlockRejection::Record {
            reason: RecordRejection::Certificate(error),
            ..
        } => certificate_blame(error),
        // Its parent (judged by this receiver), its store, its clock.
        BlockRejection::UnknownParent(_)
        | BlockRejection::InvalidParent(_)
        | BlockRejection::Index(_)
        | BlockRejection::FromTheFuture { .. } => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::codec::dag_cbor_cid;

    #[test]
    fn forged_or_malformed_content_is_blamed() {
        assert!(tx_blame(&TxRejection::BadSignature));
        assert!(tx_blame(&TxRejection::Empty));
        assert!(block_blame(&BlockRejection::BadSignature));
        assert!(block_blame(&BlockRejection::WrongHeight {
            expected: 2,
            found: 9
        }));
    }

    #[test]
    fn rejections_that_depend_on_the_receiver_are_never_blamed() {
        let cid = dag_cbor_cid(&[1]);
        let subject = crate::trust::SecretKey::generate().public();
        assert!(!tx_blame(&TxRejection::FromTheFuture {
            timestamp: 10,
            now: 1
        }));
        assert!(!tx_blame(&TxRejection::UnknownObject(cid)));
        assert!(!tx_blame(&TxRejection::Busy));
        let revoked = CertError::Revoked {
            subject,
            by: subject,
            reason: "key compromise".into(),
        };
        assert!(!tx_blame(&TxRejection::Certificate(revoked.clone())));
        assert!(!block_blame(&BlockRejection::Committer(revoked)));
        let missing = BlockRejection::Transaction {
            index: 0,
            id: crate::journal::TxId([0; 32]),
            reason: Box::new(TxRejection::UnknownObject(cid)),
        };
        assert!(!block_blame(&missing), "a block whose objects we lack");
        assert!(!block_blame(&BlockRejection::InvalidParent(cid)));
        assert!(!tx_blame(&TxRejection::Expired {
            timestamp: 1,
            now: 1_000,
            window: 600
        }));
        assert!(!block_blame(&BlockRejection::FromTheFuture {
            timestamp_ms: 100_000,
            now_ms: 1
        }));
    }

    #[test]
    fn blocks_outside_their_seat_or_slot_are_blamed() {
        let committer = crate::trust::SecretKey::generate().public();
        assert!(block_blame(&BlockRejection::NotAMember {
            committer,
            height: 3
        }));
        assert!(block_blame(&BlockRejection::TooEarly {
            rank: 1,
            timestamp_ms: 10,
            earliest_ms: 6_000
        }));
    }
}
