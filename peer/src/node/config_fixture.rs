//! The configuration tests' fixture: a peer's key, chain and root files from one trust tower.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use super::{ConfigError, RunArgs};
use crate::time;
use crate::trust::keyfile;
use crate::trust::tower::Tower;

/// A peer's files in a temporary directory: `peer.key` and `peer.chain` (the peer of `tower`) and
/// `root.pub` (its root's public key).
pub(super) struct Files {
    /// The directory, removed when dropped.
    dir: tempfile::TempDir,
    /// The keys and chains written.
    pub tower: Tower,
}

impl Files {
    /// A new tower (certified from now) and its peer's files.
    pub fn new() -> Self {
        let files = Self {
            dir: tempfile::tempdir().unwrap(),
            tower: Tower::at(time::now()),
        };
        files.write(
            "peer.key",
            &keyfile::to_plain_pem(&files.tower.peer).unwrap(),
        );
        files.write("peer.chain", &files.tower.peer_chain.to_pem());
        files.write("root.pub", &files.tower.root.public().to_string());
        files
    }

    /// The path of `name` in the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `text` to `name` in the directory; its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The settings that have no usable default on a test machine: key, chain and root.
    pub fn args(&self) -> RunArgs {
        RunArgs {
            key: Some(self.path("peer.key")),
            chain: Some(self.path("peer.chain")),
            root_key: Some(self.path("root.pub").display().to_string()),
            ..RunArgs::default()
        }
    }

    /// `args` changed by `edit`, validated: the setting it is refused for and the message.
    pub fn refusal(&self, edit: impl FnOnce(&mut RunArgs)) -> (&'static str, String) {
        let mut args = self.args();
        edit(&mut args);
        let given = format!("{args:?}");
        match args.validate() {
            Ok(_) => panic!("accepted: {given}"),
            Err(ConfigError { setting, detail }) => (setting, detail),
        }
    }
}
