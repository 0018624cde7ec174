#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mediachain::trust::{Certificate, Chain, Level, SecretKey};

use super::*;
use crate::testing::TrustFixture;

fn env(dir: &Path) -> PeerKeyEnv {
    PeerKeyEnv {
        key: dir.join("identity/peer.key"),
        namespace: "ns".into(),
        pod: "alpha-0".into(),
        uid: "uid-1".into(),
        revocations: None,
        report: dir.join("termination-log"),
    }
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "peer-key-{}-{}",
        std::process::id(),
        SecretKey::generate().public()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn request_of(env: &PeerKeyEnv) -> String {
    std::fs::read_to_string(&env.report).unwrap()
}

#[test]
fn a_request_verifies_for_its_pod_only() {
    let key = SecretKey::from_seed(&[7; 32]);
    let text = serde_json::to_string(&KeyRequest::new(&key, "ns", "alpha-0", "uid-1")).unwrap();
    assert_eq!(
        KeyRequest::verify(&text, "ns", "alpha-0", "uid-1"),
        Ok(key.public())
    );
    for (ns, pod, uid) in [
        ("ns", "alpha-0", "uid-2"),
        ("ns", "alpha-1", "uid-1"),
        ("other", "alpha-0", "uid-1"),
    ] {
        assert!(
            matches!(
                KeyRequest::verify(&text, ns, pod, uid),
                Err(RequestError::Signature(..))
            ),
            "replayed for {ns}/{pod}/{uid}"
        );
    }
    // Another key's PeerId under this signature: refused.
    let mut forged = KeyRequest::new(&key, "ns", "alpha-0", "uid-1");
    forged.peer_id = SecretKey::from_seed(&[8; 32]).public().to_string();
    let forged = serde_json::to_string(&forged).unwrap();
    assert!(matches!(
        KeyRequest::verify(&forged, "ns", "alpha-0", "uid-1"),
        Err(RequestError::Signature(..))
    ));
    assert!(matches!(
        KeyRequest::verify(&"x".repeat(MAX_REQUEST_BYTES + 1), "ns", "alpha-0", "uid-1"),
        Err(RequestError::TooLong(_))
    ));
    assert!(matches!(
        KeyRequest::verify(
            "{\"peerId\": \"nope\", \"signature\": \"00\"}",
            "ns",
            "p",
            "u"
        ),
        Err(RequestError::PeerId(_))
    ));
    assert!(matches!(
        KeyRequest::verify("Error: something else", "ns", "p", "u"),
        Err(RequestError::Malformed(_))
    ));
}

#[test]
fn peer_key_makes_a_key_once_and_keeps_it() {
    let dir = tempdir();
    let env = env(&dir);
    let first = peer_key(&env).unwrap();
    assert!(first.contains("made a new key"), "{first}");
    let request = request_of(&env);
    let key = KeyRequest::verify(&request, "ns", "alpha-0", "uid-1").unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&env.key).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // A restarted pod (new uid) keeps the key and signs for its new uid.
    let again = PeerKeyEnv {
        uid: "uid-2".into(),
        ..env.clone()
    };
    assert!(peer_key(&again).unwrap().contains("kept its key"));
    assert_eq!(
        KeyRequest::verify(&request_of(&again), "ns", "alpha-0", "uid-2").unwrap(),
        key
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn peer_key_replaces_a_revoked_key_and_never_a_corrupt_one() {
    let dir = tempdir();
    let mut env = env(&dir);
    peer_key(&env).unwrap();
    let old = KeyRequest::verify(&request_of(&env), "ns", "alpha-0", "uid-1").unwrap();
    let trust = TrustFixture::new(3, 0, u64::MAX / 2);
    let lists = dir.join("revocations.pem");
    let other = SecretKey::from_seed(&[9; 32]).public().to_string();
    std::fs::write(&lists, trust.revocations_pem(&[(&other, "not us")], 1)).unwrap();
    env.revocations = Some(lists.clone());
    assert!(peer_key(&env).unwrap().contains("kept its key"));
    std::fs::write(
        &lists,
        trust.revocations_pem(&[(&old.to_string(), "node lost")], 1),
    )
    .unwrap();
    let replaced = peer_key(&env).unwrap();
    assert!(replaced.contains("replaced its revoked key"), "{replaced}");
    let new = KeyRequest::verify(&request_of(&env), "ns", "alpha-0", "uid-1").unwrap();
    assert_ne!(new, old);
    let aside = std::fs::read_dir(dir.join("identity"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains("revoked-")
        })
        .count();
    assert_eq!(aside, 1, "the revoked key is kept aside, not deleted");

    std::fs::write(&env.key, "garbage").unwrap();
    let error = peer_key(&env).unwrap_err();
    assert!(error.contains("never replaced automatically"), "{error}");
    assert_eq!(std::fs::read_to_string(&env.key).unwrap(), "garbage");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn await_chain_waits_for_a_chain_of_its_key() {
    let dir = tempdir();
    let keys = env(&dir);
    peer_key(&keys).unwrap();
    let key = KeyRequest::verify(&request_of(&keys), "ns", "alpha-0", "uid-1").unwrap();
    let wait = AwaitEnv {
        key: keys.key.clone(),
        chain: dir.join("alpha-0.chain"),
        timeout: Duration::ZERO,
        poll: Duration::from_millis(10),
    };
    let error = await_chain(&wait).unwrap_err();
    assert!(error.contains("alpha-0.chain"), "{error}");

    let trust = TrustFixture::new(3, 0, u64::MAX / 2);
    let now = mediachain::time::now();
    let chain_for = |subject| {
        let cert = Certificate::issue(&trust.principal, subject, Level::Peer, now - 10, now + 3600);
        Chain::extend(cert, &trust.chain).to_pem()
    };
    std::fs::write(
        &wait.chain,
        chain_for(SecretKey::from_seed(&[9; 32]).public()),
    )
    .unwrap();
    let error = await_chain(&wait).unwrap_err();
    assert!(error.contains("the chain certifies"), "{error}");
    std::fs::write(&wait.chain, chain_for(key)).unwrap();
    assert!(await_chain(&wait).unwrap().contains("certifies"));
    std::fs::remove_dir_all(dir).unwrap();
}
