//! Batch uploads (`POST /v1/objects` of `application/vnd.mediachain.objects+cbor`): many objects
//! in one request, stored all or none, within the body cap, the object count and the client's
//! quota of unreferenced uploads.

use mediachain::api::ApiConfig;
use mediachain::client::{Client, ClientError};
use mediachain::model::{Artefact, Object};
use mediachain::store::UploadLimits;

use super::*;

/// The canonical DAG-CBOR of a distinct artefact per `name`.
fn work(name: &str) -> Vec<u8> {
    Object::Artefact(Artefact::named(name))
        .encode()
        .unwrap()
        .bytes
}

/// The status and reason of a refused batch.
fn refusal<T: std::fmt::Debug>(outcome: Result<T, ClientError>) -> (u16, String) {
    let error = outcome.expect_err("the batch was refused");
    let problem = error.problem().expect("a problem document");
    (problem.status, problem.reason.clone().unwrap_or_default())
}

async fn served(client: &Client, cid: &str) -> bool {
    client.get_object(&cid.parse().unwrap()).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_stored_all_or_none_within_its_limits() {
    let config = ApiConfig {
        upload_limits: UploadLimits {
            per_client: 4096,
            total: 1 << 20,
        },
        max_batch_bytes: 256 * 1024,
        ..ApiConfig::unlimited()
    };
    let peer = peer_with(config).await;
    let client = Client::new(&peer.url).unwrap();

    let works: Vec<Vec<u8>> = (0..3).map(|i| work(&format!("batch work {i}"))).collect();
    let refs: Vec<&[u8]> = works.iter().map(Vec::as_slice).collect();
    let stored = client.put_objects(&refs).await.unwrap();
    assert_eq!(stored.len(), 3);
    for (s, bytes) in stored.iter().zip(&works) {
        assert!(s.created && s.size == bytes.len());
        assert!(served(&client, &s.cid).await, "{} is served", s.cid);
    }
    let again = client.put_objects(&refs).await.unwrap();
    assert!(again.iter().all(|s| !s.created), "stored already");

    // One malformed object refuses the batch: the good new one is not stored.
    let fresh = work("stored only with a good batch");
    let bad = refusal(client.put_objects(&[&fresh, b"not an object"]).await);
    assert_eq!(bad, (400, "malformed-object".into()));
    let fresh_cid = Object::decode(&fresh).unwrap().cid().unwrap().to_string();
    assert!(!served(&client, &fresh_cid).await);

    // New objects passing the quota together: nothing stored.
    let big: Vec<Vec<u8>> = (0..2)
        .map(|i| work(&format!("{i}{}", "x".repeat(2500))))
        .collect();
    let over = refusal(client.put_objects(&[&big[0], &big[1]]).await);
    assert_eq!(over, (507, "quota-exceeded".into()));
    for bytes in &big {
        let cid = Object::decode(bytes).unwrap().cid().unwrap().to_string();
        assert!(
            !served(&client, &cid).await,
            "a refused batch stores nothing"
        );
    }

    // Past the object count, and past the body cap.
    let tiny = work("t");
    let many = vec![tiny.as_slice(); mediachain::api::config::MAX_BATCH_OBJECTS + 1];
    assert_eq!(
        refusal(client.put_objects(&many).await),
        (413, "too-many-objects".into())
    );
    let large: Vec<Vec<u8>> = (0..100)
        .map(|i| work(&format!("{i}{}", "y".repeat(3000))))
        .collect();
    let large: Vec<&[u8]> = large.iter().map(Vec::as_slice).collect();
    assert_eq!(refusal(client.put_objects(&large).await).0, 413);
}
