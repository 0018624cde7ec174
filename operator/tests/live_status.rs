//! Live status (issue 17 item 5) against a real kube-apiserver: with the operator's default
//! cadence, the journal and finalised heights in status follow the peers within 30 s without
//! any spec change, and `kubectl get mcp` (the API server's Table, as kubectl asks for it)
//! shows readiness, heights and the soonest certificate expiry in words. Evidence a peer
//! reports (`mediachain_evidence_culprits`, `GET /v1/evidence`) becomes `status.evidence`, the
//! condition `EvidenceRecorded` and one Warning Event. The peers' endpoints are served here,
//! in the peer's wire format (docs/peer-contract.md, the OpenAPI document's `EvidenceList`).
//!
//! Needs `KUBE_APISERVER_BIN` and `ETCD_BIN`; fails without them unless `MEDIACHAIN_SKIP_KUBE=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Patch, PatchParams};
use kube::Api;
use mediachain_operator::crd::EvidenceStatus;
use mediachain_operator::reconcile::{Settings, HEIGHT_REFRESH};
use serde_json::json;
use support::{create_peer_in, wait_until, NS};
use warp::Filter;

/// What the fake peer reports now.
#[derive(Default)]
struct PeerReport {
    height: AtomicU64,
    evidence: Mutex<Vec<serde_json::Value>>,
}

/// A peer's `/metrics` (journal height, finalised 2 below, evidence culprits) and
/// `GET /v1/evidence`, reporting `report` as it is now; returns the `/metrics` URL.
async fn peer_endpoints(report: Arc<PeerReport>) -> String {
    let metrics_report = report.clone();
    let metrics = warp::path("metrics").map(move || {
        let height = metrics_report.height.load(Ordering::SeqCst);
        format!(
            "# TYPE mediachain_journal_height gauge\nmediachain_journal_height {height}\nmediachain_finalized_height {}\nmediachain_evidence_culprits {}\n",
            height.saturating_sub(2),
            metrics_report.evidence.lock().unwrap().len()
        )
    });
    let evidence = warp::path!("v1" / "evidence").map(move || {
        let list = json!({ "evidence": report.evidence.lock().unwrap().clone() });
        warp::reply::json(&list)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(metrics.or(evidence)).incoming(listener).run());
    format!("http://{addr}/metrics")
}

#[tokio::test]
async fn status_follows_the_peers_within_30_s_and_reads_as_words() {
    assert!(
        HEIGHT_REFRESH.as_secs() <= 20,
        "the default cadence leaves room within 30 s"
    );
    let Some((_server, admin)) = support::cluster_with_principal(41).await else {
        return;
    };
    let report = Arc::new(PeerReport::default());
    report.height.store(5, Ordering::SeqCst);
    let settings = Settings {
        metrics_url: Some(peer_endpoints(report.clone()).await),
        ..Settings::default()
    };
    let controller = support::run_controller(support::context_with(&admin, settings));
    create_peer_in(
        &admin,
        NS,
        "alpha",
        json!({"network": "live", "replicas": 2, "trust": {"principalSecretName": "principal"}}),
    )
    .await;
    // What the StatefulSet controller reports once both peers run ready (there is none here).
    let statefulsets: Api<StatefulSet> = Api::namespaced(admin.clone(), NS);
    wait_until(20, "StatefulSet alpha", || async {
        statefulsets.get_opt("alpha").await.unwrap()
    })
    .await;
    statefulsets
        .patch_status(
            "alpha",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 2, "readyReplicas": 2,
                "currentReplicas": 2, "updatedReplicas": 2, "observedGeneration": 1}})),
        )
        .await
        .unwrap();
    wait_until(30, "Ready 2 and height 5", || async {
        let status = support::peer(&admin, NS, "alpha").await?.status?;
        (status.ready_replicas == 2 && status.journal_height == Some(5)).then_some(())
    })
    .await;

    // The peers commit; nothing else changes: the status follows within 30 s.
    report.height.store(9, Ordering::SeqCst);
    let started = Instant::now();
    wait_until(
        30,
        "heights 9 and 7 in status without a spec change",
        || async {
            let status = support::peer(&admin, NS, "alpha").await?.status?;
            (status.journal_height == Some(9) && status.finalized_height == Some(7)).then_some(())
        },
    )
    .await;
    println!("height refreshed in {:?}", started.elapsed());

    // `kubectl get mcp`: the Table the API server renders from the CRD's printer columns.
    let request = http::Request::get(format!(
        "/apis/mediachain.io/v1alpha1/namespaces/{NS}/mediachainpeers/alpha"
    ))
    .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
    .body(Vec::new())
    .unwrap();
    let table: serde_json::Value = admin.request(request).await.unwrap();
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let cells = table["rows"][0]["cells"].as_array().unwrap();
    let cell = |name: &str| {
        let i = columns.iter().position(|c| *c == name).unwrap();
        cells[i].clone()
    };
    assert_eq!(cell("Ready"), json!(2));
    assert_eq!(cell("Height"), json!(9));
    assert_eq!(cell("Finalized"), json!(7));
    assert_eq!(cell("Status"), json!("AllPeersReady"));
    // Certificates of 90 days (the default validity), issued seconds ago: in words, rounded up.
    assert_eq!(cell("Certs expire"), json!("in 90d"));
    let status = support::peer(&admin, NS, "alpha")
        .await
        .unwrap()
        .status
        .unwrap();
    let evidence = status
        .conditions
        .iter()
        .find(|c| c.type_ == "EvidenceRecorded")
        .unwrap();
    assert_eq!(
        (evidence.status.as_str(), evidence.reason.as_str()),
        ("False", "NoEvidence")
    );

    // A peer proves that alpha-1 signed two blocks on one parent.
    let culprit = status.peers[1].peer_id.clone();
    report.evidence.lock().unwrap().push(json!({
        "kind": "doubleBlock",
        "culprit": culprit,
        "height": 4,
        "parent": "bafyparent",
        "blocks": ["bafyone", "bafytwo"],
    }));
    let status = wait_until(30, "the evidence in status", || async {
        let status = support::peer(&admin, NS, "alpha").await?.status?;
        (!status.evidence.is_empty()).then_some(status)
    })
    .await;
    assert_eq!(
        status.evidence,
        vec![EvidenceStatus {
            culprit: culprit.clone(),
            kind: "doubleBlock".into(),
            peer: Some("alpha-1".into()),
            height: Some(4),
        }]
    );
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "EvidenceRecorded")
        .unwrap();
    assert_eq!(condition.status, "True");
    assert!(
        condition.message.contains("(alpha-1)"),
        "{}",
        condition.message
    );
    assert_eq!(status.state.as_deref(), Some("EvidenceRecorded"));
    let events = wait_until(10, "the EvidenceRecorded Event", || async {
        let events = support::events(&admin, NS, "EvidenceRecorded").await;
        (!events.is_empty()).then_some(events)
    })
    .await;
    let note = events[0].note.clone().unwrap_or_default();
    assert!(note.contains(&culprit), "{note}");
    // Further scrapes of the same evidence publish nothing new.
    report.height.store(11, Ordering::SeqCst);
    wait_until(30, "height 11", || async {
        let status = support::peer(&admin, NS, "alpha").await?.status?;
        (status.journal_height == Some(11)).then_some(())
    })
    .await;
    let again: i32 = support::events(&admin, NS, "EvidenceRecorded")
        .await
        .into_iter()
        .map(|e| e.series.map_or(1, |s| s.count))
        .sum();
    assert_eq!(again, 1, "the same evidence was announced again");
    controller.stop().await;
}
