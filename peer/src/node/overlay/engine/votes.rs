//! The engine's finality votes: votes arriving on the votes topic go to the node (invalid ones
//! strike their forwarder), this peer's vote is published as soon as its chain reaches a new
//! checkpoint, and every tick it re-sends the votes it holds (the certificate of its final
//! checkpoint and the votes above it), so peers that missed them, joined late or healed from a
//! partition can count. Wiring only: the node decides what a vote is worth.

use libp2p::PeerId;
use tracing::warn;

use super::{Engine, Topic, Transport};
use crate::node::overlay::policy::{Acceptance, Input};
use crate::node::overlay::protocol::{self, Votes};
use crate::node::VotesVerdict;

impl Engine {
    /// Votes gossiped by `source`: the verdict for gossip validation.
    pub(super) fn on_votes(
        &mut self,
        source: PeerId,
        data: &[u8],
        t: &mut impl Transport,
    ) -> Acceptance {
        let Ok(Votes { votes }) = protocol::decode::<Votes>(data) else {
            self.garbage(source, t);
            return Acceptance::Reject;
        };
        let verdict = match self.node.receive_votes(votes) {
            Ok(verdict) => verdict,
            Err(error) => {
                warn!(%error, "storage failure taking votes");
                return Acceptance::Ignore;
            }
        };
        let height = self.height();
        self.input(Input::Tip(height), t);
        match verdict {
            VotesVerdict::Accepted => Acceptance::Accept,
            VotesVerdict::Ignored => Acceptance::Ignore,
            VotesVerdict::Invalid => {
                self.garbage(source, t);
                Acceptance::Reject
            }
        }
    }

    /// Publishes this peer's vote if one is due (its chain reached a new checkpoint).
    pub fn vote(&mut self, t: &mut impl Transport) {
        match self.node.vote() {
            Ok(Some(vote)) => {
                let votes = Votes { votes: vec![vote] };
                self.publish(Topic::Votes, protocol::encode(&votes), t);
            }
            Ok(None) => {}
            Err(error) => warn!(%error, "storage failure voting"),
        }
    }

    /// Re-sends the votes this peer holds.
    pub(super) fn share_votes(&mut self, t: &mut impl Transport) {
        let votes = self.node.shared_votes();
        if !votes.is_empty() {
            self.publish(Topic::Votes, protocol::encode(&Votes { votes }), t);
        }
    }
}
