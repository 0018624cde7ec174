//! The `mediachain` client commands and `devnet`, run as real processes against real peers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use mediachain::daemon::local::{LocalOptions, LocalPeer};
use predicates::str::contains;

mod support;

use support::listening;

struct Env {
    dir: tempfile::TempDir,
    url: String,
}

impl Env {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, args: &[&str]) -> assert_cmd::assert::Assert {
        Command::cargo_bin("mediachain")
            .unwrap()
            .current_dir(self.dir.path())
            .env("MEDIACHAIN_PEER", &self.url)
            .args(args)
            .assert()
    }

    fn stdout(&self, args: &[&str]) -> String {
        let out = self.cmd(args).success().get_output().stdout.clone();
        String::from_utf8(out).unwrap().trim().to_string()
    }

    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
    }
}

/// A peer in a runtime of its own (the test thread runs the CLI synchronously).
fn start() -> (tokio::runtime::Runtime, LocalPeer, Env) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let peer = runtime
        .block_on(LocalPeer::start(
            &dir.path().join("peer-data"),
            LocalOptions::default(),
        ))
        .unwrap();
    let env = Env {
        url: peer.url.clone(),
        dir,
    };
    (runtime, peer, env)
}

#[test]
fn every_client_command_works_against_a_peer() {
    let (_runtime, _peer, env) = start();
    let id = env.stdout(&["keygen", "--out", "client.key"]);
    assert!(id.starts_with("12D3KooW"), "{id}");
    let registered = env.stdout(&["register", "--key", "client.key", "--out", "client.chain"]);
    assert_eq!(registered, id);
    assert!(std::fs::read_to_string(env.path("client.chain"))
        .unwrap()
        .contains("MEDIACHAIN CERTIFICATE"));

    env.write(
        "entity.json",
        r#"{"type":"entity","meta":{"name":"Hokusai"}}"#,
    );
    env.write(
        "artefact.json",
        r#"{"type":"artefact","meta":{"name":"The Great Wave"}}"#,
    );
    let entity = env.stdout(&["put", "--json", "entity.json"]);
    let artefact = env.stdout(&["put", "--json", "artefact.json"]);
    env.write(
        "cell.json",
        &format!(
            r#"{{"type":"artefactCreatedBy","ref":{{"/":"{artefact}"}},"chain":{{"/":"{}"}},"entity":{{"/":"{entity}"}}}}"#,
            mediachain::model::nil_cid()
        ),
    );
    let cell = env.stdout(&["put", "--json", "cell.json"]);

    // A blob with progress.
    std::fs::write(env.path("wave.bin"), vec![42u8; 40_000]).unwrap();
    let output = env
        .cmd(&["put", "--file", "wave.bin", "--progress"])
        .success()
        .get_output()
        .clone();
    let blob = String::from_utf8(output.stdout).unwrap().trim().to_string();
    assert!(String::from_utf8(output.stderr)
        .unwrap()
        .contains("uploading: 40000/40000 bytes (100%)"));
    env.cmd(&["get", &blob, "--out", "wave.copy"]).success();
    assert_eq!(
        std::fs::read(env.path("wave.copy")).unwrap(),
        vec![42u8; 40_000]
    );

    let submitted = env.stdout(&[
        "submit", "--insert", &entity, "--insert", &artefact, "--update", &cell, "--wait",
    ]);
    let tx = submitted.lines().next().unwrap().to_string();
    assert_eq!(tx.len(), 64, "{submitted}");
    assert!(submitted.contains(r#""state": "committed""#), "{submitted}");

    let status = env.stdout(&["status", &tx]);
    assert!(status.contains(r#""state": "committed""#), "{status}");
    let object = env.stdout(&["get", &artefact, "--json"]);
    assert!(object.contains("The Great Wave"), "{object}");
    let history = env.stdout(&["history", &artefact]);
    assert!(history.contains("artefactCreatedBy"), "{history}");
    assert!(history.contains(&cell), "{history}");
    let head = env.stdout(&["head"]);
    assert!(head.contains(r#""height": 1"#), "{head}");
    // The query index follows the chain within a second or so: ask again, a bounded number of
    // times.
    let found = (0..100)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            env.stdout(&["search", "great wave", "--limit", "5"])
        })
        .find(|page| page.contains(&artefact))
        .expect("search never found the committed artefact");
    assert!(found.contains(&cell), "the head: {found}");

    let watched = env.stdout(&["watch", "--from", "0", "--count", "2"]);
    let lines: Vec<&str> = watched.lines().collect();
    assert_eq!(lines.len(), 2, "{watched}");
    assert!(lines[1].contains(&tx), "{watched}");
    let filtered = env.stdout(&["watch", "--from", "0", "--tx", &tx, "--count", "1"]);
    assert!(filtered.contains(r#""height":1"#), "{filtered}");
}

#[test]
fn bad_input_is_refused_with_the_documented_exit_codes() {
    let (_runtime, _peer, env) = start();
    // Missing files and malformed input: 3.
    env.cmd(&["register", "--key", "missing.key"]).code(3);
    env.write("bad.json", r#"{"type":"spaceship"}"#);
    env.cmd(&["put", "--json", "bad.json"])
        .code(3)
        .stderr(contains("spaceship"));
    env.write("broken.json", "{");
    env.cmd(&["put", "--json", "broken.json"]).code(3);
    env.cmd(&["get", "not-a-cid"]).code(3);
    env.cmd(&["status", "abc"]).code(3);
    env.cmd(&["watch", "--canonical", "nope"]).code(3);
    env.cmd(&["search", "--limit", "0"])
        .code(3)
        .stderr(contains("limit"));
    // Unknown on the peer: 3 (404).
    let ghost = mediachain::model::nil_cid().to_string();
    env.cmd(&["history", &ghost])
        .code(3)
        .stderr(contains("not in the journal"));

    // Refused by the peer: 1.
    env.stdout(&["keygen", "--out", "client.key"]);
    env.stdout(&["register"]);
    env.cmd(&["submit"])
        .code(3)
        .stderr(contains("nothing to submit"));
    env.write(
        "artefact.json",
        r#"{"type":"artefact","meta":{"name":"Unsent"}}"#,
    );
    let unsent = mediachain::model::Object::Artefact(mediachain::model::Artefact::named("Unsent"))
        .cid()
        .unwrap()
        .to_string();
    env.cmd(&["submit", "--insert", &unsent])
        .code(1)
        .stderr(contains("not in the datastore"));
    // A Level-1 chain is not a client certificate.
    let (_, peer_chain) = &_peer.peer;
    env.write("peer.chain", &peer_chain.to_pem());
    let artefact = env.stdout(&["put", "--json", "artefact.json"]);
    env.cmd(&["submit", "--chain", "peer.chain", "--insert", &artefact])
        .code(1)
        .stderr(contains("certificate"));
    // Usage errors: 2.
    env.cmd(&["put"]).code(2);
    env.cmd(&["put", "--file", "a", "--json", "b"]).code(2);

    // No peer there: 6.
    Command::cargo_bin("mediachain")
        .unwrap()
        .current_dir(env.dir.path())
        .args(["--peer", "http://127.0.0.1:9", "head"])
        .assert()
        .code(6)
        .stderr(contains("cannot reach the peer"));
}

#[test]
fn help_explains_every_client_command() {
    for (command, words) in [
        ("keygen", "client key"),
        ("register", "proof-of-work"),
        ("put", "progress"),
        ("submit", "--wait"),
        ("status", "pending"),
        ("watch", "view-update"),
        ("get", "DAG-JSON"),
        ("history", "chain of cells"),
        ("search", "query index"),
        ("head", "head"),
        ("devnet", "--peers"),
    ] {
        Command::cargo_bin("mediachain")
            .unwrap()
            .args([command, "--help"])
            .assert()
            .success()
            .stdout(contains(words));
    }
}

/// The daemon binary; fails the test when its `run` subcommand does not answer `--help`.
fn peer_binary() -> PathBuf {
    let path = assert_cmd::cargo::cargo_bin("mediachain-peer");
    let output = std::process::Command::new(&path)
        .args(["run", "--help"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
    assert!(
        output.status.success(),
        "`mediachain-peer run --help` failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    path
}

/// [`devnet`] on free ports, retried (three times at most) on new ones while a peer fails
/// because a port was taken; returns the API base port used and devnet's outcome.
fn devnet_on_free_ports(dir: &Path, net: &Path, binary: &Path) -> (u16, bool, String, String) {
    for _ in 0..3 {
        let (api, p2p) = (listening::free_ports(2), listening::free_ports(2));
        let (ok, stdout, stderr) = devnet(dir, net, api, p2p, binary);
        let taken = |text: &str| text.contains("Address already in use");
        if ok || !(taken(&stdout) || taken(&stderr)) {
            return (api, ok, stdout, stderr);
        }
        eprintln!("devnet: a port was taken by another process, retrying on new ports:\n{stderr}");
    }
    panic!("devnet found a port taken on three sets of free ports");
}

/// Runs `mediachain devnet --exit-after-demo` in `dir` on ports from `api`/`p2p`, tied to this
/// test process (`mediachain::lifeline`: devnet, and through it its peers, exit if the test
/// dies), within a deadline; returns whether it succeeded, its stdout and its stderr.
fn devnet(dir: &Path, net: &Path, api: u16, p2p: u16, binary: &Path) -> (bool, String, String) {
    let out = tempfile::NamedTempFile::new_in(dir).unwrap();
    let err = tempfile::NamedTempFile::new_in(dir).unwrap();
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("mediachain"));
    cmd.current_dir(dir)
        .arg("devnet")
        .arg("--dir")
        .arg(net)
        .args(["--peers", "2", "--api-port", &api.to_string()])
        .args(["--p2p-port", &p2p.to_string()])
        .args([
            "--registration-pow-bits",
            "8",
            "--transaction-pow-bits",
            "4",
        ])
        .args(["--block-interval", "200ms", "--exit-after-demo"])
        .env("MEDIACHAIN_PEER_BIN", binary)
        .stdout(out.reopen().unwrap())
        .stderr(err.reopen().unwrap());
    let mut child = mediachain::lifeline::tie(&mut cmd).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let stdout = std::fs::read_to_string(out.path()).unwrap();
    let stderr = std::fs::read_to_string(err.path()).unwrap();
    let status =
        status.unwrap_or_else(|| panic!("devnet did not finish within 300 s\n{stdout}\n{stderr}"));
    (status.success(), stdout, stderr)
}

#[test]
fn devnet_runs_the_main_job_against_real_peer_processes() {
    let binary = peer_binary();
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let (api, ok, stdout, stderr) = devnet_on_free_ports(dir.path(), &net, &binary);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("2 peers ready"), "{stdout}");
    assert!(stdout.contains("client: registered 12D3KooW"), "{stdout}");
    assert!(stdout.contains("artefactCreatedBy cell"), "{stdout}");
    assert!(stdout.contains("confirmed: transaction"), "{stdout}");
    // The other peer's view-update stream has it too (gossip and sync between processes).
    assert!(
        stdout.contains("replicated: peer 1 reports the transaction"),
        "{stdout}"
    );
    // The members' votes made it final (the API's status and head say so).
    assert!(stdout.contains("final: transaction"), "{stdout}");
    assert!(
        stdout.contains(&format!("api http://127.0.0.1:{api}")),
        "{stdout}"
    );
    for file in [
        "root.pub",
        "root.key",
        "principal.chain",
        "seeds.txt",
        "network.yaml",
        "client.chain",
    ] {
        assert!(Path::new(&net).join(file).is_file(), "{file} missing");
    }
    // The same directory again: the identities and the journal are kept.
    let pub_before = std::fs::read_to_string(net.join("root.pub")).unwrap();
    let (_, ok, stdout, stderr) = devnet_on_free_ports(dir.path(), &net, &binary);
    assert!(ok, "{stdout}\n{stderr}");
    // Above the first run's block (blocks that made it final may lie between).
    let height: u64 = stdout
        .split(" at height ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("no commit height in {stdout}"));
    assert!(height >= 2, "{stdout}");
    assert_eq!(
        std::fs::read_to_string(net.join("root.pub")).unwrap(),
        pub_before
    );
}

/// Under `cargo run` devnet builds the daemon beside it every time (even when one is there: it
/// may be older than the sources), into its own target directory and profile, and starts
/// nothing when that build fails; a daemon named explicitly (as every test names it, since
/// cargo holds its build lock while tests run) is never built. `cargo` here is a script that
/// records its arguments and fails.
#[test]
fn devnet_under_cargo_builds_the_current_daemon_first() {
    use std::os::unix::fs::PermissionsExt;
    let sibling = peer_binary();
    assert!(sibling.is_file());
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("cargo-calls");
    let cargo = dir.path().join("cargo");
    let script = format!("#!/bin/sh\necho \"$@\" >> {}\nexit 1\n", calls.display());
    std::fs::write(&cargo, script).unwrap();
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let devnet = |peer_bin: Option<&str>| {
        let mut cmd = Command::cargo_bin("mediachain").unwrap();
        cmd.current_dir(dir.path())
            .args(["devnet", "--dir", "net", "--exit-after-demo"])
            .env("CARGO", &cargo)
            .env("CARGO_MANIFEST_DIR", "/src/peer")
            .env_remove("MEDIACHAIN_PEER_BIN")
            .timeout(std::time::Duration::from_secs(120));
        if let Some(bin) = peer_bin {
            cmd.env("MEDIACHAIN_PEER_BIN", bin);
        }
        cmd.assert()
    };

    devnet(None)
        .code(3)
        .stderr(contains("building mediachain-peer failed"));
    let target = sibling.parent().unwrap().parent().unwrap();
    let release = if sibling.parent().unwrap().ends_with("release") {
        " --release"
    } else {
        ""
    };
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        format!(
            "build --bin mediachain-peer --manifest-path /src/peer/Cargo.toml{release} --target-dir {}\n",
            target.display()
        )
    );
    assert!(
        !dir.path().join("net").exists(),
        "nothing set up after a failed build"
    );

    std::fs::remove_file(&calls).unwrap();
    devnet(Some("/nonexistent/mediachain-peer"))
        .failure()
        .stderr(contains("/nonexistent/mediachain-peer"));
    assert!(!calls.exists(), "an explicit daemon is not built");
}
