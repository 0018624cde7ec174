//! Principal objects: `entity` (a person or organisation) and `artefact` (a media work).

use std::collections::BTreeMap;

use ipld_core::cid::Cid;
use ipld_core::ipld::Ipld;

use super::fields::{map_of, Fields};
use super::ModelError;

pub(crate) const ENTITY: &str = "entity";
pub(crate) const ARTEFACT: &str = "artefact";

/// Free-form metadata. Well-known keys have accessors; every other key is kept verbatim, so an
/// object decoded and re-encoded keeps its exact bytes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Meta(pub BTreeMap<String, Ipld>);

impl Meta {
    /// Metadata holding only `name`.
    pub fn named(name: &str) -> Self {
        Self::default().with("name", name)
    }

    /// Adds a string key (builder style).
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.0
            .insert(key.to_string(), Ipld::String(value.to_string()));
        self
    }

    /// A string value, if the key holds one.
    pub fn string(&self, key: &str) -> Option<&str> {
        match self.0.get(key) {
            Some(Ipld::String(s)) => Some(s),
            _ => None,
        }
    }

    /// `meta.name`.
    pub fn name(&self) -> Option<&str> {
        self.string("name")
    }

    fn require_string(&self, kind: &str, key: &str, required: bool) -> Result<(), ModelError> {
        match self.0.get(key) {
            Some(Ipld::String(_)) => Ok(()),
            None if !required => Ok(()),
            None => Err(ModelError::MissingField {
                kind: kind.into(),
                field: format!("meta.{key}"),
            }),
            Some(_) => Err(ModelError::WrongFieldType {
                kind: kind.into(),
                field: format!("meta.{key}"),
                expected: "a string",
            }),
        }
    }
}

/// Signatures over an object, keyed by signer; kept verbatim.
pub type Signatures = BTreeMap<String, Ipld>;

/// A person or organisation.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// Metadata; `meta.name` is mandatory.
    pub meta: Meta,
    /// Optional link to the entity's keychain.
    pub keychain: Option<Cid>,
    /// Optional link to the raw ingested metadata.
    pub meta_source: Option<Cid>,
    /// Optional signatures.
    pub signatures: Option<Signatures>,
}

impl Entity {
    /// An entity with the given name and nothing else.
    pub fn named(name: &str) -> Self {
        Self {
            meta: Meta::named(name),
            keychain: None,
            meta_source: None,
            signatures: None,
        }
    }

    pub(crate) fn to_ipld(&self) -> Ipld {
        map_of(
            ENTITY,
            [
                ("meta", Some(Ipld::Map(self.meta.0.clone()))),
                ("keychain", self.keychain.map(Ipld::Link)),
                ("metaSource", self.meta_source.map(Ipld::Link)),
                ("signatures", self.signatures.clone().map(Ipld::Map)),
            ],
        )
    }

    pub(crate) fn read(f: &mut Fields<'_>) -> Result<Self, ModelError> {
        let meta = Meta(f.map("meta")?);
        meta.require_string(ENTITY, "name", true)?;
        Ok(Self {
            meta,
            keychain: f.opt_link("keychain")?,
            meta_source: f.opt_link("metaSource")?,
            signatures: f.opt_map("signatures")?,
        })
    }
}

/// A media work.
#[derive(Debug, Clone, PartialEq)]
pub struct Artefact {
    /// Metadata; `meta.name` is mandatory, `meta.created` and `meta.description` are optional strings.
    pub meta: Meta,
    /// Optional link to the work's data blob.
    pub data: Option<Cid>,
    /// Optional link to the raw ingested metadata.
    pub meta_source: Option<Cid>,
    /// Optional signatures.
    pub signatures: Option<Signatures>,
}

impl Artefact {
    /// An artefact with the given name and nothing else.
    pub fn named(name: &str) -> Self {
        Self {
            meta: Meta::named(name),
            data: None,
            meta_source: None,
            signatures: None,
        }
    }

    pub(crate) fn to_ipld(&self) -> Ipld {
        map_of(
            ARTEFACT,
            [
                ("meta", Some(Ipld::Map(self.meta.0.clone()))),
                ("data", self.data.map(Ipld::Link)),
                ("metaSource", self.meta_source.map(Ipld::Link)),
                ("signatures", self.signatures.clone().map(Ipld::Map)),
            ],
        )
    }

    pub(crate) fn read(f: &mut Fields<'_>) -> Result<Self, ModelError> {
        let meta = Meta(f.map("meta")?);
        meta.require_string(ARTEFACT, "name", true)?;
        meta.require_string(ARTEFACT, "created", false)?;
        meta.require_string(ARTEFACT, "description", false)?;
        Ok(Self {
            meta,
            data: f.opt_link("data")?,
            meta_source: f.opt_link("metaSource")?,
            signatures: f.opt_map("signatures")?,
        })
    }
}
