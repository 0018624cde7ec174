//! The `mediachain-operator` binary itself against the harness's apiserver: it takes the leader
//! Lease, serves `/healthz` and `/metrics`, reconciles, and on SIGTERM exits 0 and releases the
//! Lease. Needs the harness binaries (see tests/apiserver/main.rs); `MEDIACHAIN_SKIP_KUBE=1` skips.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::runtime::wait::await_condition;
use kube::Api;
use kube_harness::ApiServer;
use mediachain_operator::crd::MediachainPeer;
use mediachain_operator::testing::{install_crd, TrustFixture};
use serde_json::json;

const NS: &str = "media";

struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    stream.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Reads the operator's JSON log (standard output) on a thread, to its end so that the operator never
/// blocks on a full pipe, and returns the address it logged as bound for `/metrics` (it binds
/// `METRICS_ADDR=127.0.0.1:0` itself, so no port is guessed), within 30 s.
fn bound_metrics_addr(stdout: ChildStdout) -> String {
    let (found, address) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            let fields = &entry["fields"];
            if fields["message"] == "serving /metrics, /healthz and /readyz" {
                if let Some(addr) = fields["addr"].as_str() {
                    let _ = found.send(addr.to_string());
                }
            }
        }
    });
    address
        .recv_timeout(Duration::from_secs(30))
        .expect("the operator logs the address it bound for /metrics")
}

#[tokio::test]
async fn the_binary_leads_serves_metrics_reconciles_and_stops_cleanly() {
    let server = match ApiServer::start_or_skip().await {
        Ok(Some(server)) => server,
        Ok(None) => return,
        Err(e) => panic!("cannot start the kube-apiserver harness: {e}"),
    };
    let client = server.client();
    install_crd(&client, NS).await.unwrap();
    let now = mediachain::time::now();
    let trust = TrustFixture::new(31, now - 3600, now + 86_400 * 30);
    Api::<Secret>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &trust.secret(NS, "principal"))
        .await
        .unwrap();

    // Tied to this process (`mediachain::lifeline`): it exits when the test dies, even by SIGKILL.
    let mut operator = Operator(
        mediachain::lifeline::tie(&mut Command::new(env!("CARGO_BIN_EXE_mediachain-operator")))
            .env("KUBECONFIG", server.kubeconfig_path())
            .env("METRICS_ADDR", "127.0.0.1:0")
            .env("POD_NAMESPACE", NS)
            .env("POD_NAME", "operator-under-test")
            .env("RUST_LOG", "info")
            .env("LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the operator binary starts"),
    );
    let addr = bound_metrics_addr(operator.0.stdout.take().unwrap());
    assert!(
        !addr.ends_with(":0"),
        "the logged address is the bound one: {addr}"
    );

    // It serves health and, once leading, reports it.
    let started = Instant::now();
    let metrics = loop {
        if let Some(body) = http_get(&addr, "/metrics") {
            // The sample line itself: the metric's HELP text also reads "..._leader 1 while ...".
            if body
                .lines()
                .any(|line| line == "mediachain_operator_leader 1")
            {
                break body;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the operator did not lead and serve /metrics in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(metrics.contains("mediachain_operator_reconciles_total"));
    let health = http_get(&addr, "/healthz").unwrap();
    assert!(
        health.contains(" 200 OK") && health.ends_with("ok"),
        "{health}"
    );
    let leases: Api<Lease> = Api::namespaced(client.clone(), NS);
    let lease = leases.get("mediachain-operator").await.unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("operator-under-test")
    );

    // It reconciles.
    let mp: MediachainPeer = serde_json::from_value(json!({
        "apiVersion": "mediachain.io/v1alpha1",
        "kind": "MediachainPeer",
        "metadata": {"name": "eta", "namespace": NS},
        "spec": {"network": "devnet", "replicas": 2, "trust": {"principalSecretName": "principal"}},
    }))
    .unwrap();
    let peers: Api<MediachainPeer> = Api::namespaced(client.clone(), NS);
    peers.create(&PostParams::default(), &mp).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(peers, "eta", |mp: Option<&MediachainPeer>| {
            mp.and_then(|mp| mp.status.as_ref())
                .is_some_and(|s| s.peers.len() == 2)
        }),
    )
    .await
    .expect("the binary reconciled the resource")
    .unwrap();
    // The pass is counted and the peers' certificate expiry exported (just after the status).
    let started = Instant::now();
    loop {
        let body = http_get(&addr, "/metrics").unwrap_or_default();
        if body.contains("mediachain_operator_certificate_expiry_timestamp_seconds{")
            && !body.contains("mediachain_operator_reconciles_total 0")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "metrics not updated: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // SIGTERM: exit 0 and release the Lease.
    let pid = operator.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = operator.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the operator did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status {status}");
    let lease = leases.get("mediachain-operator").await.unwrap();
    assert_ne!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("operator-under-test"),
        "the Lease is released"
    );
}
