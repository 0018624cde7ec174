//! The Mediachain datastore objects (DESIGN section 1) and their DAG-CBOR encoding.
//!
//! Objects are immutable IPLD maps with a mandatory `type` key; an object's CIDv1 is its
//! canonical id. This module is pure: it never touches the network or the disk.

pub mod cell;
pub mod codec;
pub mod entry;
mod fields;
pub mod principal;

use std::collections::BTreeMap;

pub use cell::{CellKind, ChainCell, Subject};
pub use codec::{CodecError, DAG_CBOR, RAW};
pub use entry::JournalEntry;
pub use ipld_core::cid::Cid;
pub use ipld_core::ipld::Ipld;
pub use principal::{Artefact, Entity, Meta, Signatures};

/// Why bytes or an IPLD value are not a valid Mediachain object.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The bytes are not canonical DAG-CBOR.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The value is not a map.
    #[error("object is not a map")]
    NotAMap,
    /// The map has no string `type` key.
    #[error("object has no string `type` field")]
    MissingType,
    /// The `type` names no known object.
    #[error("unknown object type `{0}`")]
    UnknownType(String),
    /// A mandatory field is absent.
    #[error("{kind}: missing field `{field}`")]
    MissingField {
        /// Object type.
        kind: String,
        /// Field name.
        field: String,
    },
    /// A field holds a value of the wrong IPLD kind.
    #[error("{kind}: field `{field}` must be {expected}")]
    WrongFieldType {
        /// Object type.
        kind: String,
        /// Field name.
        field: String,
        /// What the field must hold.
        expected: &'static str,
    },
    /// A field outside `meta` that the object type does not define.
    #[error("{kind}: unknown field `{field}`")]
    UnknownField {
        /// Object type.
        kind: String,
        /// Field name.
        field: String,
    },
}

/// Any object the datastore holds that this implementation understands.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    /// The global chain terminator `{"type":"nil"}`.
    Nil,
    /// A person or organisation.
    Entity(Entity),
    /// A media work.
    Artefact(Artefact),
    /// A cell of an entity's or artefact's update chain.
    Cell(ChainCell),
    /// A journal entry (`insert`, `update`, `chainMerge`).
    Entry(JournalEntry),
}

/// An object together with its canonical bytes and its CID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The object's canonical id.
    pub cid: Cid,
    /// Its canonical DAG-CBOR bytes.
    pub bytes: Vec<u8>,
}

impl Object {
    /// The object's IPLD form.
    pub fn to_ipld(&self) -> Ipld {
        match self {
            Object::Nil => fields::map_of("nil", []),
            Object::Entity(e) => e.to_ipld(),
            Object::Artefact(a) => a.to_ipld(),
            Object::Cell(c) => c.to_ipld(),
            Object::Entry(e) => e.to_ipld(),
        }
    }

    /// Reads an object from its IPLD form, checking every field.
    pub fn from_ipld(value: Ipld) -> Result<Self, ModelError> {
        let Ipld::Map(map) = value else {
            return Err(ModelError::NotAMap);
        };
        let kind = match map.get("type") {
            Some(Ipld::String(kind)) => kind.clone(),
            _ => return Err(ModelError::MissingType),
        };
        Self::from_map(&kind, map)
    }

    fn from_map(kind: &str, map: BTreeMap<String, Ipld>) -> Result<Self, ModelError> {
        let mut fields = fields::Fields::new(kind, map);
        let object = match kind {
            "nil" => Object::Nil,
            principal::ENTITY => Object::Entity(Entity::read(&mut fields)?),
            principal::ARTEFACT => Object::Artefact(Artefact::read(&mut fields)?),
            _ => {
                if let Some(cell_kind) = CellKind::read(kind, &mut fields)? {
                    Object::Cell(ChainCell::read(cell_kind, &mut fields)?)
                } else if let Some(entry) = JournalEntry::read(kind, &mut fields)? {
                    Object::Entry(entry)
                } else {
                    return Err(ModelError::UnknownType(kind.to_string()));
                }
            }
        };
        fields.finish()?;
        Ok(object)
    }

    /// Decodes an object from untrusted canonical DAG-CBOR bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, ModelError> {
        Self::from_ipld(codec::decode(bytes)?)
    }

    /// Decodes an object from bytes a store validated as canonical DAG-CBOR when it took them:
    /// every field is checked as in [`Object::decode`], the encoding is not re-checked.
    pub fn decode_validated(bytes: &[u8]) -> Result<Self, ModelError> {
        Self::from_ipld(codec::decode_validated(bytes)?)
    }

    /// Encodes the object and computes its CID.
    pub fn encode(&self) -> Result<Encoded, ModelError> {
        let bytes = codec::encode(&self.to_ipld())?;
        Ok(Encoded {
            cid: codec::dag_cbor_cid(&bytes),
            bytes,
        })
    }

    /// The object's canonical id.
    pub fn cid(&self) -> Result<Cid, ModelError> {
        Ok(self.encode()?.cid)
    }
}

/// The CID of the global [`Object::Nil`] (encoded and hashed once per process).
pub fn nil_cid() -> Cid {
    static NIL: std::sync::LazyLock<Cid> = std::sync::LazyLock::new(|| {
        #[allow(clippy::expect_used)] // invariant: `{"type":"nil"}` always encodes
        let bytes = codec::encode(&Object::Nil.to_ipld()).expect("nil encodes");
        codec::dag_cbor_cid(&bytes)
    });
    *NIL
}

#[cfg(test)]
mod tests;
