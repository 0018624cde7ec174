//! The leader lease: a leader notices when its lease is taken.

use super::*;

#[tokio::test]
async fn a_leader_notices_when_its_lease_is_taken() {
    let Some(server) = start().await else { return };
    let client = server.client();
    install(&client).await;
    let leader = Leadership::new(
        client.clone(),
        NS,
        "lease-test",
        "one",
        Duration::from_secs(3),
    );
    tokio::time::timeout(Duration::from_secs(10), leader.acquire())
        .await
        .expect("acquired");
    let holding = tokio::spawn(async move { leader.hold().await });
    // Two renewals (every TTL/3 = 1 s) are seen on the Lease while `hold` keeps running.
    let leases = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), NS);
    let renew_time = || async {
        let lease = leases.get("lease-test").await.unwrap().spec.unwrap();
        assert_eq!(lease.holder_identity.as_deref(), Some("one"));
        lease.renew_time.map(|t| t.0)
    };
    let mut renewals = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut last = renew_time().await;
    while renewals.len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the Lease was not renewed twice in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let current = renew_time().await;
        if current != last {
            renewals.push(current);
            last = current;
        }
    }
    assert!(!holding.is_finished(), "renewals keep the Lease");

    // Another holder takes the Lease (as after a partition): `hold` must return.
    let now = k8s_openapi::chrono::Utc::now()
        .to_rfc3339_opts(k8s_openapi::chrono::SecondsFormat::Micros, true);
    leases
        .patch(
            "lease-test",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"holderIdentity": "intruder", "renewTime": now, "leaseDurationSeconds": 60}})),
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), holding)
        .await
        .expect("the old leader stops leading")
        .unwrap();
}
