//! Typed reading of an IPLD map's fields, with errors that name the object and the field.
//!
//! The reader tracks which keys were consumed so that objects can refuse keys they do not know
//! (outside `meta`, where unknown keys are preserved).

use std::collections::BTreeMap;

use ipld_core::cid::Cid;
use ipld_core::ipld::Ipld;

use super::ModelError;

/// A map being decoded into a typed object of kind `kind`.
pub(crate) struct Fields<'a> {
    kind: &'a str,
    map: BTreeMap<String, Ipld>,
}

impl<'a> Fields<'a> {
    /// Wraps the map of an object of type `kind`; the `type` key is taken as already checked.
    pub(crate) fn new(kind: &'a str, mut map: BTreeMap<String, Ipld>) -> Self {
        map.remove("type");
        Self { kind, map }
    }

    fn missing(&self, field: &str) -> ModelError {
        ModelError::MissingField {
            kind: self.kind.to_string(),
            field: field.to_string(),
        }
    }

    fn wrong(&self, field: &str, expected: &'static str) -> ModelError {
        ModelError::WrongFieldType {
            kind: self.kind.to_string(),
            field: field.to_string(),
            expected,
        }
    }

    /// Takes a mandatory link field.
    pub(crate) fn link(&mut self, field: &str) -> Result<Cid, ModelError> {
        self.opt_link(field)?.ok_or_else(|| self.missing(field))
    }

    /// Takes an optional link field.
    pub(crate) fn opt_link(&mut self, field: &str) -> Result<Option<Cid>, ModelError> {
        match self.map.remove(field) {
            None => Ok(None),
            Some(Ipld::Link(cid)) => Ok(Some(cid)),
            Some(_) => Err(self.wrong(field, "a link")),
        }
    }

    /// Takes a mandatory unsigned integer field.
    pub(crate) fn u64(&mut self, field: &str) -> Result<u64, ModelError> {
        match self.map.remove(field) {
            None => Err(self.missing(field)),
            Some(Ipld::Integer(i)) => {
                u64::try_from(i).map_err(|_| self.wrong(field, "an unsigned integer"))
            }
            Some(_) => Err(self.wrong(field, "an unsigned integer")),
        }
    }

    /// Takes an optional map field (kept verbatim).
    pub(crate) fn opt_map(
        &mut self,
        field: &str,
    ) -> Result<Option<BTreeMap<String, Ipld>>, ModelError> {
        match self.map.remove(field) {
            None => Ok(None),
            Some(Ipld::Map(m)) => Ok(Some(m)),
            Some(_) => Err(self.wrong(field, "a map")),
        }
    }

    /// Takes a mandatory map field (kept verbatim).
    pub(crate) fn map(&mut self, field: &str) -> Result<BTreeMap<String, Ipld>, ModelError> {
        self.opt_map(field)?.ok_or_else(|| self.missing(field))
    }

    /// Fails if any key was not consumed.
    pub(crate) fn finish(self) -> Result<(), ModelError> {
        match self.map.into_keys().next() {
            None => Ok(()),
            Some(field) => Err(ModelError::UnknownField {
                kind: self.kind.to_string(),
                field,
            }),
        }
    }
}

/// Builds an IPLD map from `(key, value)` pairs, skipping absent optional values.
pub(crate) fn map_of<const N: usize>(kind: &str, pairs: [(&str, Option<Ipld>); N]) -> Ipld {
    let mut map = BTreeMap::new();
    map.insert("type".to_string(), Ipld::String(kind.to_string()));
    for (key, value) in pairs {
        if let Some(value) = value {
            map.insert(key.to_string(), value);
        }
    }
    Ipld::Map(map)
}
