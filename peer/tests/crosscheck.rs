//! Cross-check of the DAG-CBOR encoder and CIDs against an independent implementation.
//!
//! `crosscheck/vectors.py` builds the same objects with the Python `dag-cbor` and `multiformats`
//! packages. The interpreter is `$MEDIACHAIN_PYTHON`, else `target/pyenv/bin/python` (created by
//! `scripts/test.sh`); the test fails, naming both, if neither has the packages.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use mediachain::model::{
    codec, nil_cid, Artefact, CellKind, ChainCell, Cid, Entity, Ipld, JournalEntry, Meta, Object,
    RAW,
};

const TS: u64 = 1_700_000_000;

fn python() -> PathBuf {
    if let Ok(path) = std::env::var("MEDIACHAIN_PYTHON") {
        return path.into();
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/pyenv/bin/python")
}

fn reference_vectors() -> BTreeMap<String, (String, String)> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/crosscheck/vectors.py");
    let python = python();
    let output = Command::new(&python).arg(&script).output().unwrap_or_else(|e| {
        panic!("cannot run {} ({e}); run scripts/test.sh or set MEDIACHAIN_PYTHON to a Python with tests/crosscheck/requirements.txt", python.display())
    });
    assert!(
        output.status.success(),
        "{} failed (install tests/crosscheck/requirements.txt): {}",
        python.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let s = |k: &str| v[k].as_str().unwrap().to_string();
            (s("name"), (s("hex"), s("cid")))
        })
        .collect()
}

fn rust_vectors() -> Vec<(&'static str, Object)> {
    let mut out: Vec<(&'static str, Object)> = vec![];
    let mut emit = |name: &'static str, object: Object| -> Cid {
        let cid = object.cid().unwrap();
        out.push((name, object));
        cid
    };
    let nil = emit("nil", Object::Nil);
    assert_eq!(nil, nil_cid());
    let blob = codec::cid_of(RAW, b"analytical engine notes");
    let mut ada_meta = Meta::named("Ada Lovelace");
    ada_meta.0.insert(
        "x-unknown".into(),
        Ipld::Map(BTreeMap::from([
            ("nested".into(), Ipld::String("kept".into())),
            ("n".into(), Ipld::Integer(42)),
        ])),
    );
    let ada = emit(
        "entity",
        Object::Entity(Entity {
            meta: ada_meta,
            keychain: None,
            meta_source: None,
            signatures: None,
        }),
    );
    let babbage = emit(
        "entity2",
        Object::Entity(Entity {
            meta_source: Some(blob),
            ..Entity::named("Charles Babbage")
        }),
    );
    let notes = emit(
        "artefact",
        Object::Artefact(Artefact {
            meta: Meta::named("Notes on the Analytical Engine")
                .with("created", "1843")
                .with("description", "Note G"),
            data: Some(blob),
            meta_source: None,
            signatures: None,
        }),
    );
    let copy = emit("artefact2", Object::Artefact(Artefact::named("Facsimile")));
    let cell = |kind, reference, chain| Object::Cell(ChainCell::new(kind, reference, chain));
    let created = emit(
        "artefactCreatedBy",
        cell(CellKind::ArtefactCreatedBy { entity: ada }, notes, nil),
    );
    let referenced = emit(
        "artefactReferencedBy",
        Object::Cell(
            ChainCell::new(CellKind::ArtefactReferencedBy { entity: None }, notes, nil)
                .with_meta(Meta::default().with("url", "https://example.org/notes")),
        ),
    );
    emit(
        "artefactUpdate",
        Object::Cell(
            ChainCell::new(CellKind::ArtefactUpdate, notes, created)
                .with_meta(Meta::named("Sketch of the Analytical Engine")),
        ),
    );
    emit(
        "artefactLink",
        cell(
            CellKind::ArtefactLink {
                artefact_link: notes,
            },
            copy,
            nil,
        ),
    );
    emit(
        "artefactDerivedBy",
        cell(
            CellKind::ArtefactDerivedBy {
                artefact_link: notes,
            },
            copy,
            nil,
        ),
    );
    emit(
        "artefactRightsOwnedBy",
        cell(
            CellKind::ArtefactRightsOwnedBy { entity: babbage },
            notes,
            created,
        ),
    );
    let link = emit(
        "artefactChainLink",
        cell(
            CellKind::ArtefactChainLink {
                chain_merge: referenced,
            },
            notes,
            created,
        ),
    );
    let update = emit(
        "entityUpdate",
        Object::Cell(
            ChainCell::new(CellKind::EntityUpdate, ada, nil)
                .with_meta(Meta::named("Augusta Ada King")),
        ),
    );
    emit(
        "entityLink",
        cell(
            CellKind::EntityLink {
                entity_link: babbage,
            },
            ada,
            update,
        ),
    );
    emit(
        "entityChainLink",
        cell(CellKind::EntityChainLink { chain_merge: nil }, ada, update),
    );
    emit(
        "insert",
        Object::Entry(JournalEntry::Insert {
            reference: notes,
            timestamp: TS,
        }),
    );
    emit(
        "update",
        Object::Entry(JournalEntry::Update {
            reference: notes,
            chain: created,
            chain_previous: nil,
            timestamp: TS + 1,
        }),
    );
    emit(
        "chainMerge",
        Object::Entry(JournalEntry::ChainMerge {
            reference: notes,
            chain: link,
            chain_previous: created,
            chain_merge: referenced,
            timestamp: TS + 2,
        }),
    );
    out
}

#[test]
fn rust_and_python_produce_identical_bytes_and_cids_for_every_object_kind() {
    let reference = reference_vectors();
    let ours = rust_vectors();
    assert_eq!(
        reference.len(),
        ours.len(),
        "both sides build the same set of objects"
    );
    for (name, object) in ours {
        let (hex, cid) = reference
            .get(name)
            .unwrap_or_else(|| panic!("python did not build `{name}`"));
        let encoded = object.encode().unwrap();
        assert_eq!(&hex::encode(&encoded.bytes), hex, "bytes of `{name}`");
        assert_eq!(&encoded.cid.to_string(), cid, "CID of `{name}`");
        // And the Python bytes decode to the same typed object.
        assert_eq!(
            Object::decode(&hex::decode(hex).unwrap()).unwrap(),
            object,
            "decoding `{name}`"
        );
    }
}
