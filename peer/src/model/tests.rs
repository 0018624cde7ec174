use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

fn cid(n: u8) -> Cid {
    codec::dag_cbor_cid(&[n])
}

fn sample_objects() -> Vec<Object> {
    let nil = nil_cid();
    let mut meta = Meta::named("Ada").with("created", "1843");
    meta.0.insert(
        "x-extra".into(),
        Ipld::Map(BTreeMap::from([("deep".into(), Ipld::Integer(7))])),
    );
    vec![
        Object::Nil,
        Object::Entity(Entity::named("Ada")),
        Object::Artefact(Artefact {
            meta,
            data: Some(cid(1)),
            meta_source: Some(cid(2)),
            signatures: None,
        }),
        Object::Cell(ChainCell::new(
            CellKind::ArtefactCreatedBy { entity: cid(3) },
            cid(4),
            nil,
        )),
        Object::Cell(
            ChainCell::new(
                CellKind::ArtefactReferencedBy { entity: None },
                cid(4),
                cid(5),
            )
            .with_meta(Meta::default().with("url", "https://example.org/x")),
        ),
        Object::Cell(ChainCell::new(
            CellKind::EntityChainLink {
                chain_merge: cid(6),
            },
            cid(7),
            cid(8),
        )),
        Object::Entry(JournalEntry::Insert {
            reference: cid(4),
            timestamp: 1,
        }),
        Object::Entry(JournalEntry::ChainMerge {
            reference: cid(4),
            chain: cid(9),
            chain_previous: cid(10),
            chain_merge: cid(11),
            timestamp: 2,
        }),
    ]
}

#[test]
fn every_sample_object_round_trips_through_bytes() {
    for object in sample_objects() {
        let encoded = object.encode().unwrap();
        let decoded = Object::decode(&encoded.bytes).unwrap();
        assert_eq!(decoded, object);
        assert_eq!(decoded.encode().unwrap(), encoded);
    }
}

/// Replaces the first occurrence of `from` in `bytes` by `to` (same length).
fn replaced(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern in the encoding");
    let mut out = bytes.to_vec();
    out[at..at + to.len()].copy_from_slice(to);
    out
}

#[test]
fn tampered_bytes_either_name_another_object_or_are_refused_with_the_reason() {
    let ada = Object::Entity(Entity::named("Ada Lovelace"));
    let encoded = ada.encode().unwrap();
    // A changed letter of a value: still an object, but another one, with another CID.
    let renamed = Object::decode(&replaced(&encoded.bytes, b"Ada", b"Adb")).unwrap();
    assert_eq!(renamed, Object::Entity(Entity::named("Adb Lovelace")));
    assert_ne!(renamed.cid().unwrap(), encoded.cid);
    // A changed letter of the type: refused, naming the type.
    let retyped = Object::decode(&replaced(&encoded.bytes, b"entity", b"entitz"));
    assert!(
        matches!(&retyped, Err(ModelError::UnknownType(t)) if t == "entitz"),
        "{retyped:?}"
    );
    // A cut-off encoding is not DAG-CBOR at all; a trailing byte makes it non-canonical.
    let cut = Object::decode(&encoded.bytes[..encoded.bytes.len() - 1]);
    assert!(
        matches!(cut, Err(ModelError::Codec(CodecError::Malformed(_)))),
        "{cut:?}"
    );
    let mut longer = encoded.bytes.clone();
    longer.push(0);
    let longer = Object::decode(&longer);
    assert!(
        matches!(
            longer,
            Err(ModelError::Codec(
                CodecError::Malformed(_) | CodecError::NotCanonical
            ))
        ),
        "{longer:?}"
    );
}

#[test]
fn unknown_meta_keys_survive_byte_for_byte() {
    let Object::Artefact(artefact) = &sample_objects()[2] else {
        unreachable!()
    };
    let bytes = Object::Artefact(artefact.clone()).encode().unwrap().bytes;
    let Object::Artefact(decoded) = Object::decode(&bytes).unwrap() else {
        panic!("not an artefact")
    };
    assert!(decoded.meta.0.contains_key("x-extra"));
    assert_eq!(Object::Artefact(decoded).encode().unwrap().bytes, bytes);
}

#[test]
fn errors_name_the_object_and_field() {
    let entity_without_name = codec::encode(&fields::map_of(
        "entity",
        [("meta", Some(Ipld::Map(BTreeMap::new())))],
    ))
    .unwrap();
    let err = Object::decode(&entity_without_name)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "entity: missing field `meta.name`");

    let bad_link = codec::encode(&fields::map_of(
        "artefactCreatedBy",
        [
            ("chain", Some(Ipld::Link(cid(1)))),
            ("ref", Some(Ipld::Link(cid(2)))),
            ("entity", Some(Ipld::String("x".into()))),
        ],
    ))
    .unwrap();
    assert_eq!(
        Object::decode(&bad_link).unwrap_err().to_string(),
        "artefactCreatedBy: field `entity` must be a link"
    );

    let unknown = codec::encode(&fields::map_of("nil", [("extra", Some(Ipld::Null))])).unwrap();
    assert_eq!(
        Object::decode(&unknown).unwrap_err().to_string(),
        "nil: unknown field `extra`"
    );

    let wrong_type = codec::encode(&fields::map_of("blorp", [])).unwrap();
    assert_eq!(
        Object::decode(&wrong_type).unwrap_err().to_string(),
        "unknown object type `blorp`"
    );
}

fn arb_cid() -> impl Strategy<Value = Cid> {
    any::<[u8; 8]>().prop_map(|b| codec::dag_cbor_cid(&b))
}

fn arb_meta() -> impl Strategy<Value = Meta> {
    (
        "[a-zA-Z ]{1,12}",
        proptest::collection::btree_map(
            "[a-z]{1,6}",
            any::<i64>().prop_map(|i| Ipld::Integer(i.into())),
            0..4,
        ),
    )
        .prop_map(|(name, extra)| {
            let mut meta = Meta(extra);
            meta.0.insert("name".into(), Ipld::String(name));
            meta
        })
}

fn arb_object() -> impl Strategy<Value = Object> {
    prop_oneof![
        Just(Object::Nil),
        (arb_meta(), proptest::option::of(arb_cid())).prop_map(|(meta, keychain)| Object::Entity(
            Entity {
                meta,
                keychain,
                meta_source: None,
                signatures: None
            }
        )),
        (
            arb_meta(),
            proptest::option::of(arb_cid()),
            proptest::option::of(arb_cid())
        )
            .prop_map(|(meta, data, meta_source)| Object::Artefact(Artefact {
                meta,
                data,
                meta_source,
                signatures: None
            })),
        (
            arb_cid(),
            arb_cid(),
            arb_cid(),
            0u8..10,
            proptest::option::of(arb_meta())
        )
            .prop_map(|(a, b, c, k, meta)| {
                let kind = match k {
                    0 => CellKind::EntityUpdate,
                    1 => CellKind::EntityLink { entity_link: c },
                    2 => CellKind::EntityChainLink { chain_merge: c },
                    3 => CellKind::ArtefactUpdate,
                    4 => CellKind::ArtefactLink { artefact_link: c },
                    5 => CellKind::ArtefactCreatedBy { entity: c },
                    6 => CellKind::ArtefactDerivedBy { artefact_link: c },
                    7 => CellKind::ArtefactRightsOwnedBy { entity: c },
                    8 => CellKind::ArtefactReferencedBy { entity: Some(c) },
                    _ => CellKind::ArtefactChainLink { chain_merge: c },
                };
                Object::Cell(ChainCell {
                    kind,
                    chain: a,
                    reference: b,
                    meta,
                    signatures: None,
                })
            }),
        (arb_cid(), arb_cid(), arb_cid(), any::<u64>()).prop_map(|(a, b, c, t)| Object::Entry(
            JournalEntry::Update {
                reference: a,
                chain: b,
                chain_previous: c,
                timestamp: t
            }
        )),
    ]
}

proptest! {
    #[test]
    fn encode_decode_round_trip(object in arb_object()) {
        let encoded = object.encode().unwrap();
        prop_assert_eq!(Object::decode(&encoded.bytes).unwrap(), object);
        prop_assert_eq!(codec::dag_cbor_cid(&encoded.bytes), encoded.cid);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Object::decode(&bytes);
    }

    #[test]
    fn any_flipped_byte_changes_the_cid_or_fails_to_decode(object in arb_object(), index in any::<usize>(), flip in 1u8..) {
        let encoded = object.encode().unwrap();
        let mut bytes = encoded.bytes.clone();
        let i = index % bytes.len();
        bytes[i] ^= flip;
        // Never the same object: either another CID or a refusal (the specific refusals are in
        // tampered_bytes_either_name_another_object_or_are_refused_with_the_reason).
        let decoded = Object::decode(&bytes);
        prop_assert!(
            decoded.as_ref().map_or(true, |other| other.cid().unwrap() != encoded.cid),
            "{decoded:?}"
        );
    }
}
