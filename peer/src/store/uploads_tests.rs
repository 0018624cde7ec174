//! Tests of the upload records: quotas, batches, release, collection.

use super::*;
use crate::model::{codec, RAW};

const LIMITS: UploadLimits = UploadLimits {
    per_client: 10,
    total: 15,
};

fn blob(text: &str) -> (Cid, Vec<u8>) {
    (
        codec::cid_of(RAW, text.as_bytes()),
        text.as_bytes().to_vec(),
    )
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn quotas_count_unreferenced_bytes_per_client_and_in_total() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1024).unwrap();
    let (a, b) = (ip("203.0.113.1"), ip("2001:db8::"));
    let (one, bytes) = blob("12345678");
    assert!(store.put_upload(&one, &bytes, a, 1, LIMITS).unwrap());
    // Stored already: not charged again.
    assert!(!store.put_upload(&one, &bytes, b, 1, LIMITS).unwrap());
    let (two, bytes) = blob("abc");
    assert!(matches!(
        store.put_upload(&two, &bytes, a, 1, LIMITS),
        Err(UploadError::Quota { used: 8, .. })
    ));
    assert!(!store.has(&two).unwrap(), "a refused upload stores nothing");
    assert!(store.put_upload(&two, &bytes, b, 1, LIMITS).unwrap());
    let (three, bytes) = blob("wxyz56");
    assert!(matches!(
        store.put_upload(&three, &bytes, b, 1, LIMITS),
        Err(UploadError::Full { used: 11, .. })
    ));
    // The check from a claimed size alone refuses as the write would, and writes nothing.
    assert!(matches!(
        store.upload_room(a, 3, LIMITS),
        Err(UploadError::Quota { used: 8, .. })
    ));
    assert!(matches!(store.upload_room(a, 2, LIMITS), Ok(())));
    assert!(matches!(
        store.upload_room(ip("198.51.100.1"), 5, LIMITS),
        Err(UploadError::Full { used: 11, .. })
    ));
    // It never waits for the usage's lock (held while an upload is charged), and sees each
    // client's bytes with what is being written charged: a flood being stored is seen past
    // its quota.
    let recording = store.uploads.usage();
    assert!(matches!(
        store.upload_room(a, 3, LIMITS),
        Err(UploadError::Quota { used: 8, .. })
    ));
    assert!(matches!(store.upload_room(a, 2, LIMITS), Ok(())));
    drop(recording);
    assert_eq!(store.upload_usage(a), (8, 11));
    // A block referencing the first frees its bytes, and that survives a reopening.
    assert_eq!(store.release_uploads(&[one, three], 7).unwrap(), 1);
    drop(store);
    let store = Store::open(dir.path(), 1024).unwrap();
    assert_eq!(store.upload_usage(a), (0, 3));
    assert_eq!(store.upload_usage(b), (3, 3));
    assert_eq!(store.uploads_released_through().unwrap(), Some(7));
    assert!(store.put_upload(&three, &bytes, a, 1, LIMITS).unwrap());
}

#[test]
fn only_stale_unreleased_uploads_are_collected_in_bounded_passes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1024).unwrap();
    let client = ip("203.0.113.1");
    let limits = UploadLimits {
        per_client: 1 << 20,
        total: 1 << 20,
    };
    let blobs: Vec<_> = (0..10).map(|i| blob(&format!("blob {i}"))).collect();
    for (cid, bytes) in &blobs {
        store.put_upload(cid, bytes, client, 100, limits).unwrap();
    }
    let (peer_copy, bytes) = blob("from a peer");
    store.put(&peer_copy, &bytes).unwrap();
    store.release_uploads(&[blobs[0].0], 1).unwrap();
    store.touch_uploads(&[blobs[1].0], 200).unwrap();
    // Each pass looks at a bounded number of records and resumes where the last stopped.
    let mut stale = vec![];
    for _ in 0..10 {
        let pass = store.stale_uploads(150, 2).unwrap();
        assert!(pass.len() <= 2);
        stale.extend(pass);
    }
    stale.sort_by_key(|c| c.to_bytes());
    stale.dedup();
    assert_eq!(stale.len(), 8, "released and touched uploads are not stale");
    assert!(!stale.contains(&blobs[0].0) && !stale.contains(&blobs[1].0));
    for cid in &stale {
        assert!(store.collect_upload(cid, 150).unwrap());
        assert!(!store.has(cid).unwrap());
    }
    // Fresh again in between: not collected.
    assert!(!store.collect_upload(&blobs[1].0, 150).unwrap());
    assert!(store.has(&blobs[0].0).unwrap() && store.has(&blobs[1].0).unwrap());
    assert!(
        store.has(&peer_copy).unwrap(),
        "objects from peers are never collected"
    );
    assert_eq!(store.upload_usage(client).0, blobs[1].1.len() as u64);
}

#[test]
fn a_large_upload_and_a_record_a_crash_left_without_its_object_are_collected() {
    let dir = tempfile::tempdir().unwrap();
    let client = ip("203.0.113.1");
    let limits = UploadLimits {
        per_client: 1 << 20,
        total: 1 << 20,
    };
    let large = vec![7u8; super::super::LARGE_OBJECT_BYTES + 1];
    let large_cid = codec::cid_of(RAW, &large);
    let (lost, lost_bytes) = blob("its object was never written");
    {
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        assert!(store
            .put_upload(&large_cid, &large, client, 100, limits)
            .unwrap());
        // What a crash between an upload's record and its object leaves.
        store
            .put_upload(&lost, &lost_bytes, client, 100, limits)
            .unwrap();
        store.objects.small().remove(lost.to_bytes()).unwrap();
        store.flush().unwrap();
    }
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    assert!(store.has(&large_cid).unwrap() && !store.has(&lost).unwrap());
    assert_eq!(
        store.upload_usage(client).0,
        (large.len() + lost_bytes.len()) as u64,
        "the record counts until collected"
    );
    let stale = store.stale_uploads(150, 10).unwrap();
    assert_eq!(stale.len(), 2);
    for cid in &stale {
        assert!(store.collect_upload(cid, 150).unwrap());
    }
    assert!(!store.has(&large_cid).unwrap());
    assert_eq!(store.upload_usage(client), (0, 0));
}

#[test]
fn a_batch_of_uploads_is_stored_all_or_none_within_the_quota() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1024).unwrap();
    let client = ip("203.0.113.1");
    let (one, a) = blob("1234");
    let (two, b) = blob("5678");
    let (three, c) = blob("abc");
    // 4 + 4 + 3 bytes pass the quota of 10: nothing is stored.
    let refused = store.put_uploads(&[(one, &a), (two, &b), (three, &c)], client, 1, LIMITS);
    assert!(matches!(refused, Err(UploadError::Quota { size: 11, .. })));
    assert!(!store.has(&one).unwrap() && !store.has(&three).unwrap());
    // An object named twice is stored and charged once.
    let uploaded = store
        .put_uploads(&[(one, &a), (two, &b), (one, &a)], client, 1, LIMITS)
        .unwrap();
    // The usage it reports is the client's after the write.
    assert_eq!(
        uploaded,
        Uploaded {
            created: vec![true, true, false],
            used: 8,
            total: 8
        }
    );
    assert_eq!(store.upload_usage(client), (8, 8));
    // A bad object refuses the whole batch before anything is written.
    let bad = store.put_uploads(&[(three, &c), (one, b"other")], client, 1, LIMITS);
    assert!(matches!(bad, Err(UploadError::Store(_))));
    assert!(!store.has(&three).unwrap());
}

#[test]
fn checked_objects_are_named_by_their_hash_and_stored_under_that_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 16).unwrap();
    let client = ip("203.0.113.1");
    let checked = store.check(RAW, b"12345678").unwrap();
    assert_eq!(checked.cid(), codec::cid_of(RAW, b"12345678"));
    let uploaded = store
        .put_checked_uploads(&[checked], client, 1, LIMITS)
        .unwrap();
    assert_eq!(uploaded.created, vec![true]);
    assert_eq!(uploaded.used, 8);
    assert_eq!(
        store.get(&checked.cid()).unwrap().as_deref(),
        Some(&b"12345678"[..])
    );
    // The checks of `verify` apply: the size, the codec and the DAG-CBOR.
    assert!(matches!(
        store.check(RAW, &[0; 17]),
        Err(StoreError::TooLarge { .. })
    ));
    assert!(matches!(
        // dag-json: not a codec the store holds.
        store.check(0x0129, b"1"),
        Err(StoreError::UnsupportedCid { .. })
    ));
    assert!(matches!(
        store.check(crate::model::DAG_CBOR, &[0xff]),
        Err(StoreError::InvalidDagCbor { .. })
    ));
}

#[test]
fn an_object_is_named_and_checked_with_one_decoding_and_anything_else_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1024).unwrap();
    let encoded = crate::model::Object::Nil.encode().unwrap();
    let checked = store.check_object(&encoded.bytes).unwrap();
    assert_eq!(checked.cid(), encoded.cid);
    // Valid DAG-CBOR that is no Mediachain object; bytes that are no DAG-CBOR; too large.
    let text = codec::encode(&crate::model::Ipld::String("a string".into())).unwrap();
    assert!(matches!(
        store.check_object(&text),
        Err(StoreError::NotAnObject { .. })
    ));
    assert!(matches!(
        store.check_object(&[0xff]),
        Err(StoreError::InvalidDagCbor { .. })
    ));
    assert!(matches!(
        store.check_object(&[0; 1025]),
        Err(StoreError::TooLarge { .. })
    ));
}

#[test]
fn an_object_decoded_from_another_form_is_encoded_and_named_by_the_store_as_if_sent_in_cbor() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1024).unwrap();
    let object = crate::model::Object::Nil;
    let encoded = object.encode().unwrap();
    let mut out = vec![1, 2, 3];
    let checked = store.check_encoding(&object, &mut out).unwrap();
    let sent = store.check_object(&encoded.bytes).unwrap();
    assert_eq!((checked.cid(), checked.bytes()), (sent.cid(), sent.bytes()));
    // The store's limits apply as to bytes sent.
    let small = Store::open(&dir.path().join("small"), 2).unwrap();
    assert!(matches!(
        small.check_encoding(&object, &mut out),
        Err(StoreError::TooLarge { .. })
    ));
}

#[test]
fn racing_uploads_and_releases_of_the_same_objects_charge_each_once_and_agree_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), 1 << 20).unwrap());
    let limits = UploadLimits {
        per_client: 1 << 30,
        total: 1 << 30,
    };
    // Large and small objects, so that writes take long enough to overlap.
    let objects: Vec<(Cid, Vec<u8>)> = (0..64)
        .map(|i| {
            let bytes = vec![i as u8; if i % 2 == 0 { 20_000 } else { 100 }];
            (codec::cid_of(RAW, &bytes), bytes)
        })
        .collect();
    let objects = Arc::new(objects);
    let uploaders: Vec<_> = (0..4)
        .map(|t| {
            let (store, objects) = (store.clone(), objects.clone());
            std::thread::spawn(move || {
                let client = ip(&format!("203.0.113.{}", t % 2));
                let mut created = 0;
                for (cid, bytes) in objects.iter() {
                    let fresh = store.put_upload(cid, bytes, client, 1, limits).unwrap();
                    // Durable (and readable) once any upload of it returned.
                    assert!(store.has(cid).unwrap());
                    created += usize::from(fresh);
                }
                created
            })
        })
        .collect();
    // A block references every fourth object while they are being uploaded.
    let released: Vec<Cid> = objects.iter().step_by(4).map(|(cid, _)| *cid).collect();
    for (height, cid) in released.iter().enumerate() {
        store.release_uploads(&[*cid], height as u64).unwrap();
    }
    let created: usize = uploaders.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(
        created,
        objects.len(),
        "each object is created by one upload"
    );
    let before = [ip("203.0.113.0"), ip("203.0.113.1")].map(|c| store.upload_usage(c));
    // What the records add up to when rebuilt is what was counted while racing.
    drop(store);
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    let after = [ip("203.0.113.0"), ip("203.0.113.1")].map(|c| store.upload_usage(c));
    assert_eq!(before, after);
    let all: u64 = objects.iter().map(|(_, b)| b.len() as u64).sum();
    assert!(after[0].1 <= all && after[0].1 >= all - released.len() as u64 * 20_000);
    // Releasing everything leaves nothing charged.
    let cids: Vec<Cid> = objects.iter().map(|(cid, _)| *cid).collect();
    store.release_uploads(&cids, 99).unwrap();
    assert_eq!(store.upload_usage(ip("203.0.113.0")), (0, 0));
}
