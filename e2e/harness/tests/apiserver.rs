//! Integration tests against a real etcd + kube-apiserver.
//!
//! They need `KUBE_APISERVER_BIN` and `ETCD_BIN` (from `bash e2e/tools.sh harness`); without them
//! they fail, unless `MEDIACHAIN_SKIP_KUBE=1` is set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ObjectMeta, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::wait::{await_condition, conditions};
use kube_harness::ApiServer;

async fn start() -> Option<ApiServer> {
    match ApiServer::start_or_skip().await {
        Ok(s) => s,
        Err(e) => panic!("cannot start the kube-apiserver harness: {e}"),
    }
}

#[tokio::test]
async fn namespace_and_configmap_round_trip() {
    let Some(server) = start().await else { return };
    let client = server.client();

    let ns = Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some("harness-test".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ns.metadata.name.as_deref(), Some("harness-test"));

    let cms = Api::<ConfigMap>::namespaced(client.clone(), "harness-test");
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some("seeds".into()),
            ..Default::default()
        },
        data: Some([("seeds".to_string(), "peer-0,peer-1".to_string())].into()),
        ..Default::default()
    };
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let back = cms.get("seeds").await.unwrap();
    assert_eq!(
        back.data.unwrap().get("seeds").map(String::as_str),
        Some("peer-0,peer-1")
    );
    assert!(back.metadata.uid.is_some(), "stored by the real apiserver");

    let version = client.apiserver_version().await.unwrap();
    assert_eq!(version.minor, "32", "pinned Kubernetes minor");
    assert!(server.kubeconfig_path().is_file());
}

#[tokio::test]
async fn crd_becomes_established_and_serves_custom_objects() {
    let Some(server) = start().await else { return };
    let client = server.client();

    let crd: CustomResourceDefinition = serde_json::from_value(serde_json::json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "widgets.harness.example.com" },
        "spec": {
            "group": "harness.example.com",
            "names": { "kind": "Widget", "plural": "widgets", "singular": "widget" },
            "scope": "Namespaced",
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": { "spec": {
                        "type": "object",
                        "properties": { "size": { "type": "integer", "minimum": 1 } }
                    } }
                } }
            }]
        }
    }))
    .unwrap();
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.create(&PostParams::default(), &crd).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(30),
        await_condition(
            crds,
            "widgets.harness.example.com",
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("CRD Established within 30s")
    .unwrap();

    let gvk = GroupVersionKind::gvk("harness.example.com", "v1", "Widget");
    let ar = ApiResource::from_gvk(&gvk);
    let widgets = Api::<DynamicObject>::namespaced_with(client, "default", &ar);
    let good: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "harness.example.com/v1", "kind": "Widget",
        "metadata": { "name": "w1" }, "spec": { "size": 3 }
    }))
    .unwrap();
    widgets.create(&PostParams::default(), &good).await.unwrap();
    assert_eq!(widgets.get("w1").await.unwrap().data["spec"]["size"], 3);

    // Schema validation is done by the real apiserver.
    let bad: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "harness.example.com/v1", "kind": "Widget",
        "metadata": { "name": "w2" }, "spec": { "size": 0 }
    }))
    .unwrap();
    let err = widgets
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("size"), "unexpected error: {err}");
}

#[tokio::test]
async fn missing_binary_error_names_the_variable_and_the_script() {
    let bins = kube_harness::Binaries {
        kube_apiserver: "/nonexistent/kube-apiserver".into(),
        etcd: "/nonexistent/etcd".into(),
    };
    // start_with trusts its arguments; spawning fails with an error naming the program.
    let err = ApiServer::start_with(bins).await.unwrap_err();
    assert!(err.to_string().contains("etcd"), "{err}");

    // The error the harness gives when the variables are not set.
    let err = kube_harness::Binaries::from_vars(|_| None).unwrap_err();
    assert!(
        matches!(err, kube_harness::Error::MissingBinary { var, .. } if var == kube_harness::KUBE_APISERVER_BIN),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains("KUBE_APISERVER_BIN is not set"), "{msg}");
    assert!(msg.contains("e2e/tools.sh"), "{msg}");
    assert!(msg.contains("MEDIACHAIN_SKIP_KUBE"), "{msg}");

    // ... and when one names something that is not a file.
    let dir = tempfile::tempdir().unwrap();
    let err = kube_harness::Binaries::from_vars(|var| {
        (var == kube_harness::KUBE_APISERVER_BIN)
            .then(|| dir.path().as_os_str().to_owned())
            .or_else(|| Some("/nonexistent/etcd".into()))
    })
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "KUBE_APISERVER_BIN names {}, which is not a file",
            dir.path().display()
        )),
        "{msg}"
    );
}
