//! The mapping of a catalogue's columns to Mediachain fields, and a row turned into what it
//! describes: an artefact (its `meta`), and optionally its creator (an entity, by name).
//!
//! A mapping is a list of `FIELD=COLUMN` pairs, from `--map` flags or a small file (one pair a
//! line, `#` comments). Fields: `name` (the artefact's name, required), `creator` (the creating
//! entity's name), `creator.KEY` (a key of the entity's `meta`), and any other `KEY` (a key of
//! the artefact's `meta`, e.g. `created`, `description`).

use std::collections::BTreeMap;
use std::path::Path;

use mediachain::model::{Artefact, Entity, Meta};

/// Which column feeds which field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    /// Column of the artefact's `meta.name`.
    name: String,
    /// Column of the creator's name, if any.
    creator: Option<String>,
    /// Artefact `meta` key -> column (besides `name`).
    artefact: BTreeMap<String, String>,
    /// Entity `meta` key -> column (besides `name`).
    entity: BTreeMap<String, String>,
}

/// What one row describes.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The artefact.
    pub artefact: Artefact,
    /// Its creator, if the row names one.
    pub creator: Option<Entity>,
}

/// Why a row cannot be mapped (reported with its line number, the row skipped).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowError {
    /// The artefact's name is missing or empty.
    #[error("no artefact name (column `{0}` is missing or empty)")]
    NoName(String),
    /// A mapped column holds something other than text, a number or a boolean.
    #[error("column `{0}` holds a list or an object, not a value")]
    NotAValue(String),
    /// The line is not a record of the input format.
    #[error("unreadable: {0}")]
    Malformed(String),
}

/// A cell of a row: text, or a list/object (JSON Lines only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Text (numbers and booleans arrive as their text).
    Text(String),
    /// A JSON list or object.
    Nested,
}

impl Mapping {
    /// Reads `FIELD=COLUMN` pairs: `file`'s lines first, then `pairs` (later pairs win).
    pub fn parse(file: Option<&Path>, pairs: &[String]) -> Result<Self, String> {
        let mut all: Vec<(String, String)> = vec![];
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("mapping file {}: {e}", path.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.split('#').next().unwrap_or("").trim();
                if !line.is_empty() {
                    let pair = split(line).map_err(|e| {
                        format!("mapping file {} line {}: {e}", path.display(), n + 1)
                    })?;
                    all.push(pair);
                }
            }
        }
        for pair in pairs {
            all.push(split(pair).map_err(|e| format!("--map {pair}: {e}"))?);
        }
        let mut name = None;
        let mut creator = None;
        let (mut artefact, mut entity) = (BTreeMap::new(), BTreeMap::new());
        for (field, column) in all {
            match field.as_str() {
                "name" => name = Some(column),
                "creator" => creator = Some(column),
                _ => match field.strip_prefix("creator.") {
                    Some("name") => creator = Some(column),
                    Some(key) => {
                        entity.insert(key.to_string(), column);
                    }
                    None => {
                        artefact.insert(field, column);
                    }
                },
            }
        }
        let name = name.ok_or(
            "the mapping names no column for the artefact's `name` (e.g. --map name=title)",
        )?;
        if creator.is_none() && !entity.is_empty() {
            return Err("`creator.KEY` fields need a `creator` column".into());
        }
        Ok(Self {
            name,
            creator,
            artefact,
            entity,
        })
    }

    /// A canonical text of the mapping (the resume journal refuses another one).
    pub fn describe(&self) -> String {
        let mut out = format!("name={}", self.name);
        if let Some(c) = &self.creator {
            out.push_str(&format!(",creator={c}"));
        }
        for (k, c) in &self.artefact {
            out.push_str(&format!(",{k}={c}"));
        }
        for (k, c) in &self.entity {
            out.push_str(&format!(",creator.{k}={c}"));
        }
        out
    }

    /// What `row` (column -> value) describes.
    pub fn record(&self, row: &BTreeMap<String, Value>) -> Result<Record, RowError> {
        let text = |column: &String| -> Result<Option<String>, RowError> {
            match row.get(column) {
                Some(Value::Text(t)) if !t.trim().is_empty() => Ok(Some(t.trim().to_string())),
                Some(Value::Nested) => Err(RowError::NotAValue(column.clone())),
                _ => Ok(None),
            }
        };
        let name = text(&self.name)?.ok_or_else(|| RowError::NoName(self.name.clone()))?;
        let mut meta = Meta::named(&name);
        for (key, column) in &self.artefact {
            if let Some(value) = text(column)? {
                meta = meta.with(key, &value);
            }
        }
        let mut artefact = Artefact::named(&name);
        artefact.meta = meta;
        let creator = match &self.creator {
            Some(column) => match text(column)? {
                Some(creator) => {
                    let mut meta = Meta::named(&creator);
                    for (key, column) in &self.entity {
                        if let Some(value) = text(column)? {
                            meta = meta.with(key, &value);
                        }
                    }
                    let mut entity = Entity::named(&creator);
                    entity.meta = meta;
                    Some(entity)
                }
                None => None,
            },
            None => None,
        };
        Ok(Record { artefact, creator })
    }
}

fn split(pair: &str) -> Result<(String, String), String> {
    let (field, column) = pair.split_once('=').ok_or("expected FIELD=COLUMN")?;
    let (field, column) = (field.trim(), column.trim());
    if field.is_empty() || column.is_empty() {
        return Err("expected FIELD=COLUMN, both non-empty".into());
    }
    Ok((field.to_string(), column.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> BTreeMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::Text(v.to_string())))
            .collect()
    }

    #[test]
    fn maps_columns_to_artefact_and_creator_fields() {
        let mapping = Mapping::parse(
            None,
            &[
                "name=title".into(),
                "creator=artist".into(),
                "created=year".into(),
                "creator.born=artist_born".into(),
            ],
        )
        .unwrap();
        let record = mapping
            .record(&row(&[
                ("title", " The Great Wave "),
                ("artist", "Hokusai"),
                ("year", "1831"),
                ("artist_born", "1760"),
            ]))
            .unwrap();
        assert_eq!(record.artefact.meta.name(), Some("The Great Wave"));
        assert_eq!(record.artefact.meta.string("created"), Some("1831"));
        let creator = record.creator.unwrap();
        assert_eq!(creator.meta.name(), Some("Hokusai"));
        assert_eq!(creator.meta.string("born"), Some("1760"));
    }

    #[test]
    fn refuses_rows_and_mappings_it_cannot_use() {
        assert!(Mapping::parse(None, &["creator=artist".into()]).is_err());
        assert!(Mapping::parse(None, &["name".into()]).is_err());
        let mapping =
            Mapping::parse(None, &["name=title".into(), "creator=artist".into()]).unwrap();
        assert_eq!(
            mapping.record(&row(&[("title", "  "), ("artist", "x")])),
            Err(RowError::NoName("title".into()))
        );
        let mut nested = row(&[("title", "t")]);
        nested.insert("artist".into(), Value::Nested);
        assert_eq!(
            mapping.record(&nested),
            Err(RowError::NotAValue("artist".into()))
        );
        // No creator value: an artefact alone.
        assert!(mapping
            .record(&row(&[("title", "t")]))
            .unwrap()
            .creator
            .is_none());
    }
}
