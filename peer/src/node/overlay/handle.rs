//! The overlay's command handle: how the rest of the peer (the commit loop, the HTTP API) asks
//! the overlay to do something. Each command is a message on a bounded channel the overlay's
//! event loop reads; a sender waits for room rather than dropping a command, and a command that
//! wants an answer carries a oneshot reply (the model is rust-libp2p's file-sharing example:
//! a `Client` of commands in front of the event loop that owns the swarm).
//!
//! The handle never touches the swarm itself and never decides protocol questions.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::journal::Block;
use crate::model::Cid;
use crate::node::TxBundle;

/// Commands the overlay may hold before senders wait.
pub const COMMAND_QUEUE: usize = 4096;

/// How long a submission may wait for an object fetched from other peers.
pub const OBJECT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the overlay is asked to do.
#[derive(Debug)]
pub enum Command {
    /// Gossip a transaction this peer admitted from a client (batched with others).
    PublishTx(Arc<TxBundle>),
    /// Announce a block this peer committed.
    Announce(Arc<Block>),
    /// Find an object at other peers; the reply says whether it is stored here now.
    FetchObject {
        /// The object wanted.
        cid: Cid,
        /// Answered once the object is stored (true) or no peer had it (false).
        reply: oneshot::Sender<bool>,
    },
}

/// A cloneable sender of [`Command`]s to a running overlay.
#[derive(Debug, Clone)]
pub struct OverlayHandle {
    commands: mpsc::Sender<Command>,
}

impl OverlayHandle {
    /// A handle and the receiving end the overlay's event loop reads.
    pub fn channel() -> (Self, mpsc::Receiver<Command>) {
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        (Self { commands }, receiver)
    }

    /// Asks the overlay to gossip `bundle`. False when the overlay has stopped.
    pub async fn publish_tx(&self, bundle: Arc<TxBundle>) -> bool {
        self.commands.send(Command::PublishTx(bundle)).await.is_ok()
    }

    /// Asks the overlay to announce `block`. False when the overlay has stopped.
    pub async fn announce(&self, block: Arc<Block>) -> bool {
        self.commands.send(Command::Announce(block)).await.is_ok()
    }

    /// Fetches `cid` from other peers into the datastore (a client may have stored it at
    /// another peer of the network). Whether it is stored now; false when the overlay has
    /// stopped or after [`OBJECT_FETCH_TIMEOUT`].
    pub async fn fetch_object(&self, cid: Cid) -> bool {
        let (reply, answer) = oneshot::channel();
        if self
            .commands
            .send(Command::FetchObject { cid, reply })
            .await
            .is_err()
        {
            return false;
        }
        matches!(
            tokio::time::timeout(OBJECT_FETCH_TIMEOUT, answer).await,
            Ok(Ok(true))
        )
    }
}
