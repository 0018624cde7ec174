//! The `mediachain` command line, run as a real process on real files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::str::contains;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let env = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::write(env.path("pass"), "correct horse battery staple\n").unwrap();
        std::fs::write(env.path("wrong-pass"), "Tr0ub4dor&3\n").unwrap();
        env
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        Command::cargo_bin("mediachain")
            .unwrap()
            .current_dir(self.dir.path())
            .env_remove("MEDIACHAIN_PASSPHRASE")
            .args(args)
            .assert()
    }

    fn stdout(&self, args: &[&str]) -> String {
        let out = self.cmd(args).success().get_output().stdout.clone();
        String::from_utf8(out).unwrap().trim().to_string()
    }

    /// root -> principal -> peer -> client, all issued through the CLI.
    fn tower(&self) {
        self.cmd(&["root", "init", "--dir", "net", "--passphrase-file", "pass"])
            .success();
        for name in ["principal", "peer", "client"] {
            self.cmd(&["key", "generate", "--out", &format!("{name}.key")])
                .success();
        }
        let principal = self.stdout(&["key", "show", "principal.key"]);
        assert!(principal.starts_with("peer-id: 12D3KooW"), "{principal}");
        self.issue(
            "net/root.key",
            None,
            "principal.key",
            "0",
            "principal.chain",
            &["--passphrase-file", "pass"],
        );
        self.issue(
            "principal.key",
            Some("principal.chain"),
            "peer.key",
            "1",
            "peer.chain",
            &[],
        );
        self.issue(
            "peer.key",
            Some("peer.chain"),
            "client.key",
            "2",
            "client.chain",
            &["--valid-for", "1h"],
        );
    }

    fn public(&self, key: &str) -> String {
        let out = self.stdout(&["key", "show", key]);
        out.lines()
            .next()
            .unwrap()
            .trim_start_matches("peer-id: ")
            .to_string()
    }

    fn issue(
        &self,
        issuer: &str,
        chain: Option<&str>,
        subject: &str,
        level: &str,
        out: &str,
        extra: &[&str],
    ) {
        let subject = self.public(subject);
        let mut args = vec![
            "cert",
            "issue",
            "--issuer-key",
            issuer,
            "--subject",
            &subject,
            "--level",
            level,
            "--out",
            out,
        ];
        if let Some(chain) = chain {
            args.extend(["--issuer-chain", chain]);
        }
        args.extend(extra);
        self.cmd(&args)
            .success()
            .stdout(contains(format!("Level-{level} certificate for")));
    }

    fn verify(&self, chain: &str, level: &str, extra: &[&str]) -> assert_cmd::assert::Assert {
        let mut args = vec![
            "cert",
            "verify",
            "--chain",
            chain,
            "--root",
            "net/root.pub",
            "--level",
            level,
        ];
        args.extend(extra);
        self.cmd(&args)
    }
}

#[test]
fn help_explains_every_command_and_the_exit_codes() {
    let env = Env::new();
    env.cmd(&["--help"])
        .success()
        .stdout(contains("Exit codes:"))
        .stdout(contains("store"));
    for sub in ["key", "root", "cert", "revoke", "pow", "store"] {
        env.cmd(&[sub, "--help"]).success();
    }
    env.cmd(&["cert", "issue"])
        .code(2)
        .stderr(contains("--issuer-key"));
}

#[test]
fn a_full_tower_issued_by_the_cli_verifies_at_every_level() {
    let env = Env::new();
    env.tower();
    let root_text = std::fs::read_to_string(env.path("net/root.key")).unwrap();
    assert!(
        root_text.contains("MEDIACHAIN ENCRYPTED PRIVATE KEY"),
        "the root key is stored encrypted"
    );
    env.verify("principal.chain", "0", &[])
        .success()
        .stdout(contains("valid Level-0"));
    env.verify("peer.chain", "1", &[]).success();
    env.verify("client.chain", "2", &[])
        .success()
        .stdout(contains(env.public("client.key")));
    env.cmd(&["cert", "show", "client.chain"])
        .success()
        .stdout(contains("Level-2"))
        .stdout(contains("Level-0"));
}

#[test]
fn bad_certificates_are_rejected_with_exit_1_and_a_reason() {
    let env = Env::new();
    env.tower();
    env.verify("client.chain", "1", &[])
        .code(1)
        .stderr(contains("is Level-2, but Level-1 is required"));
    let in_two_hours = (mediachain::time::now() + 7200).to_string();
    env.verify("client.chain", "2", &["--at", &in_two_hours])
        .code(1)
        .stderr(contains("expired"));
    let stranger = {
        env.cmd(&["key", "generate", "--out", "stranger.key"])
            .success();
        env.public("stranger.key")
    };
    env.cmd(&[
        "cert",
        "verify",
        "--chain",
        "peer.chain",
        "--root",
        &stranger,
        "--level",
        "1",
    ])
    .code(1)
    .stderr(contains("not by the pinned root"));
    // A peer cannot admit peers.
    let subject = env.public("stranger.key");
    env.cmd(&[
        "cert",
        "issue",
        "--issuer-key",
        "peer.key",
        "--issuer-chain",
        "peer.chain",
        "--subject",
        &subject,
        "--level",
        "1",
        "--out",
        "x.chain",
    ])
    .code(1)
    .stderr(contains("issued by Level-0 holders"));
}

#[test]
fn revocation_by_the_issuing_principal_is_honoured() {
    let env = Env::new();
    env.tower();
    let peer = env.public("peer.key");
    env.cmd(&[
        "revoke",
        "--issuer-key",
        "principal.key",
        "--list",
        "principal.crl",
        "--subject",
        &peer,
        "--reason",
        "forked the chain",
    ])
    .success()
    .stdout(contains("sequence 1"));
    env.verify("client.chain", "2", &["--revocations", "principal.crl"])
        .code(1)
        .stderr(contains("revoked"))
        .stderr(contains("forked the chain"));
    // Someone else cannot extend the principal's list.
    env.cmd(&[
        "revoke",
        "--issuer-key",
        "client.key",
        "--list",
        "principal.crl",
        "--subject",
        &peer,
    ])
    .code(1)
    .stderr(contains("is the revocation list of"));
}

#[test]
fn wrong_passphrase_and_corrupt_files_have_their_own_exit_codes() {
    let env = Env::new();
    env.tower();
    let subject = env.public("peer.key");
    env.cmd(&[
        "cert",
        "issue",
        "--issuer-key",
        "net/root.key",
        "--subject",
        &subject,
        "--level",
        "0",
        "--out",
        "x",
        "--passphrase-file",
        "wrong-pass",
    ])
    .code(4)
    .stderr(contains("wrong passphrase"));
    std::fs::write(
        env.path("corrupt.chain"),
        "-----BEGIN MEDIACHAIN CERTIFICATE-----\nAAAA\n-----END MEDIACHAIN CERTIFICATE-----\n",
    )
    .unwrap();
    env.verify("corrupt.chain", "1", &[])
        .code(3)
        .stderr(contains("corrupt certificate"));
    env.verify("missing.chain", "1", &[])
        .code(3)
        .stderr(contains("missing.chain"));
    std::fs::write(env.path("bad.key"), "not a key").unwrap();
    env.cmd(&["key", "show", "bad.key"])
        .code(3)
        .stderr(contains("not a Mediachain key file"));
    env.cmd(&["key", "generate", "--out", "peer.key"])
        .code(3)
        .stderr(contains("refusing to overwrite"));
}

#[test]
fn proof_of_work_solves_and_checks() {
    let env = Env::new();
    let nonce = env.stdout(&[
        "pow",
        "solve",
        "--purpose",
        "transaction",
        "--resource",
        "abcdef",
        "--bits",
        "10",
    ]);
    env.cmd(&[
        "pow",
        "check",
        "--purpose",
        "transaction",
        "--resource",
        "abcdef",
        "--bits",
        "10",
        "--nonce",
        &nonce,
    ])
    .success();
    env.cmd(&[
        "pow",
        "check",
        "--purpose",
        "transaction",
        "--resource",
        "abcdef",
        "--bits",
        "11",
        "--nonce",
        &nonce,
    ])
    .code(1)
    .stderr(contains("does not solve the challenge"));
    env.cmd(&[
        "pow",
        "check",
        "--purpose",
        "registration",
        "--resource",
        "zz",
        "--bits",
        "1",
        "--nonce",
        "0",
    ])
    .code(3)
    .stderr(contains("must be hex"));
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn store_put_get_has_ls_and_import() {
    let env = Env::new();
    write(env.dir.path(), "blob.bin", "hello world");
    write(
        env.dir.path(),
        "ada.json",
        r#"{"type":"entity","meta":{"name":"Ada","x-extra":{"k":1}}}"#,
    );
    let blob = env.stdout(&["store", "put", "--store", "db", "blob.bin"]);
    let ada = env.stdout(&["store", "put", "--store", "db", "--json", "ada.json"]);
    assert!(blob.starts_with("bafkrei"), "raw CIDv1: {blob}");
    assert!(ada.starts_with("bafyrei"), "dag-cbor CIDv1: {ada}");
    env.cmd(&["store", "get", "--store", "db", &blob])
        .success()
        .stdout("hello world");
    env.cmd(&["store", "get", "--store", "db", "--json", &ada])
        .success()
        .stdout(contains(r#""x-extra":{"k":1}"#));
    env.cmd(&["store", "has", "--store", "db", &ada]).success();
    let missing = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    env.cmd(&["store", "has", "--store", "db", missing]).code(1);
    env.cmd(&["store", "ls", "--store", "db"])
        .success()
        .stdout(contains(&blob))
        .stdout(contains(&ada));

    // Invalid objects are refused with a reason and exit 3.
    write(
        env.dir.path(),
        "nameless.json",
        r#"{"type":"entity","meta":{}}"#,
    );
    env.cmd(&["store", "put", "--store", "db", "--json", "nameless.json"])
        .code(3)
        .stderr(contains("missing field `meta.name`"));
    env.cmd(&["store", "get", "--store", "db", "not-a-cid"])
        .code(3)
        .stderr(contains("is not a CID"));
    env.cmd(&[
        "store",
        "put",
        "--store",
        "db",
        "--max-object-size",
        "4",
        "blob.bin",
    ])
    .code(3)
    .stderr(contains("over the limit"));

    // Import: files named by their CID; a file whose name lies is refused.
    let export = env.path("export");
    std::fs::create_dir(&export).unwrap();
    for i in 0..30 {
        let bytes = format!("object {i}");
        let cid = mediachain::model::codec::cid_of(mediachain::model::RAW, bytes.as_bytes());
        write(&export, &cid.to_string(), &bytes);
    }
    env.cmd(&[
        "store", "import", "--store", "db2", "export", "--batch", "8",
    ])
    .success()
    .stdout(contains("added 30 objects"))
    .stderr(contains("imported 8/30"));
    write(&export, &blob, "not hello world");
    env.cmd(&["store", "import", "--store", "db3", "export"])
        .code(3)
        .stderr(contains("does not match its CID"));
}
