//! Live status (issue 17 item 5) against a real kube-apiserver: with the operator's default
//! cadence, the journal height in status follows the peers within 30 s without any spec change,
//! and `kubectl get mcp` (the API server's Table, as kubectl asks for it) shows readiness,
//! heights and the soonest certificate expiry in words.
//!
//! Needs `KUBE_APISERVER_BIN` and `ETCD_BIN`; fails without them unless `MEDIACHAIN_SKIP_KUBE=1`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::{Patch, PatchParams};
use kube::Api;
use kube_harness::ApiServer;
use mediachain_operator::reconcile::{Settings, HEIGHT_REFRESH};
use mediachain_operator::testing::install_crd;
use serde_json::json;
use support::{create_peer_in, create_principal, trust, wait_until, NS};
use warp::Filter;

/// A `/metrics` endpoint reporting `height` as it is now.
async fn peer_metrics(height: Arc<AtomicU64>) -> String {
    let route = warp::path("metrics").map(move || {
        format!(
            "# TYPE mediachain_journal_height gauge\nmediachain_journal_height {}\n",
            height.load(Ordering::SeqCst)
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    format!("http://{addr}/metrics")
}

#[tokio::test]
async fn status_follows_the_peers_within_30_s_and_reads_as_words() {
    assert!(
        HEIGHT_REFRESH.as_secs() <= 20,
        "the default cadence leaves room within 30 s"
    );
    let Some(server) = (match ApiServer::start_or_skip().await {
        Ok(server) => server,
        Err(e) => panic!("cannot start the kube-apiserver harness: {e}"),
    }) else {
        return;
    };
    let admin = server.client();
    install_crd(&admin, NS).await.unwrap();
    create_principal(&admin, NS, &trust(41)).await;
    let height = Arc::new(AtomicU64::new(5));
    let settings = Settings {
        metrics_url: Some(peer_metrics(height.clone()).await),
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
    height.store(9, Ordering::SeqCst);
    let started = Instant::now();
    wait_until(30, "height 9 in status without a spec change", || async {
        let status = support::peer(&admin, NS, "alpha").await?.status?;
        (status.journal_height == Some(9)).then_some(())
    })
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
    assert_eq!(cell("Status"), json!("AllPeersReady"));
    // Certificates of 90 days (the default validity), issued seconds ago: in words, rounded up.
    assert_eq!(cell("Certs expire"), json!("in 90d"));
    controller.stop().await;
}
