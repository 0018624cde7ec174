//! The OpenAPI document checked by an independent tool against the running server: schemathesis
//! (from PyPI, `tests/openapi/requirements.txt`) generates requests from the document and checks
//! every response's status, content type, headers and body against it.
//!
//! The interpreter is `$MEDIACHAIN_PYTHON` (scripts/test.sh's venv) or `target/pyenv`; schemathesis
//! is installed into it on first use. Without any Python virtualenv the test fails, unless
//! `MEDIACHAIN_SKIP_OPENAPI=1` asks to skip it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::path::{Path, PathBuf};
use std::process::Command;

use mediachain::client::Client;
use mediachain::daemon::local::{LocalOptions, LocalPeer};
use mediachain::journal::Transaction;
use mediachain::model::{
    nil_cid, Artefact, CellKind, ChainCell, Cid, Entity, JournalEntry, Object,
};
use mediachain::trust::SecretKey;

mod support;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A virtualenv's Python with schemathesis, installing it when missing.
fn python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("MEDIACHAIN_PYTHON").map(PathBuf::from),
        Some(manifest().join("../target/pyenv/bin/python")),
    ];
    let python = candidates.into_iter().flatten().find(|p| p.is_file())?;
    let has = |python: &Path| {
        Command::new(python)
            .args(["-c", "import schemathesis"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has(&python) {
        let status = Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(manifest().join("tests/openapi/requirements.txt"))
            .status()
            .unwrap();
        assert!(status.success(), "pip install of schemathesis failed");
    }
    Some(python)
}

/// Some committed data, so that the GET operations also meet existing objects and blocks.
async fn seed(peer: &LocalPeer) -> (Cid, Cid) {
    let client = Client::new(&peer.url).unwrap();
    let key = SecretKey::generate();
    let (chain, _) = client.register(&key).await.unwrap();
    let entity: Cid = client
        .put_object(&Object::Entity(Entity::named("Schema")))
        .await
        .unwrap()
        .cid
        .parse()
        .unwrap();
    let artefact: Cid = client
        .put_object(&Object::Artefact(Artefact::named("Thesis")))
        .await
        .unwrap()
        .cid
        .parse()
        .unwrap();
    let cell = ChainCell::new(CellKind::ArtefactCreatedBy { entity }, artefact, nil_cid());
    let cell: Cid = client
        .put_object(&Object::Cell(cell))
        .await
        .unwrap()
        .cid
        .parse()
        .unwrap();
    let now = mediachain::time::now();
    let entries = vec![
        JournalEntry::Insert {
            reference: artefact,
            timestamp: now,
        },
        JournalEntry::Update {
            reference: artefact,
            chain: cell,
            chain_previous: nil_cid(),
            timestamp: now,
        },
    ];
    let bits = client.info().await.unwrap().transaction_pow_bits;
    let tx = Transaction::create(&key, &chain, entries, now, bits).unwrap();
    client.submit(&tx).await.unwrap();
    support::wait::within(
        "the seed transaction's confirmation",
        client.await_confirmation(&tx.id(), 1),
    )
    .await
    .unwrap();
    (artefact, cell)
}

#[test]
fn the_running_server_conforms_to_its_openapi_document() {
    let Some(python) = python() else {
        support::skip::skip_or_fail(
            "MEDIACHAIN_SKIP_OPENAPI",
            "no Python virtualenv for schemathesis (run scripts/test.sh, or set MEDIACHAIN_PYTHON)",
        );
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let peer = runtime
        .block_on(LocalPeer::start(dir.path(), LocalOptions::default()))
        .unwrap();
    runtime.block_on(seed(&peer));
    let schemathesis = python.with_file_name("schemathesis");
    let output = Command::new(&schemathesis)
        .current_dir(dir.path())
        .args([
            "run",
            &format!("{}/v1/openapi.json", peer.url),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
            // The event stream never ends by design; it has its own tests in api.rs.
            "--exclude-path",
            "/v1/events",
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "30",
            // One worker: hypothesis' lambda descriptions race in CPython 3.11's parser.
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--seed",
            "1",
            "--no-color",
        ])
        .env("SCHEMATHESIS_HOOKS", "mediachain_hooks")
        .env("PYTHONPATH", manifest().join("tests/openapi"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found nonconformities:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("passed"), "{stdout}");
    println!("{stdout}");
}
