//! Chain cells: the update history of an entity or artefact, a linked list ending at `nil`.
//!
//! Every cell has `chain` (the previous head), `ref` (the canonical it belongs to), optional
//! `meta` and `signatures`, and per-type link fields. `*ChainLink` cells exist only for conflict
//! resolution: `chain` is the base head and `chainMerge` the merged orphan head.

use ipld_core::cid::Cid;
use ipld_core::ipld::Ipld;

use super::fields::{map_of, Fields};
use super::{Meta, ModelError, Signatures};

/// Which kind of principal a cell (and its chain) belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    /// The chain of an `entity`.
    Entity,
    /// The chain of an `artefact`.
    Artefact,
}

/// The cell type with its type-specific links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CellKind {
    /// `entityUpdate`: new metadata for an entity.
    EntityUpdate,
    /// `entityLink`: relates the entity to another entity.
    EntityLink {
        /// `entityLink`: the related entity.
        entity_link: Cid,
    },
    /// `entityChainLink`: merges a conflicting entity chain.
    EntityChainLink {
        /// `chainMerge`: the merged orphan head.
        chain_merge: Cid,
    },
    /// `artefactUpdate`: new metadata for an artefact.
    ArtefactUpdate,
    /// `artefactLink`: relates the artefact to another artefact.
    ArtefactLink {
        /// `artefactLink`: the related artefact.
        artefact_link: Cid,
    },
    /// `artefactCreatedBy`: the creating entity.
    ArtefactCreatedBy {
        /// `entity`: the creator.
        entity: Cid,
    },
    /// `artefactDerivedBy`: the artefact is derived from an original.
    ArtefactDerivedBy {
        /// `artefactLink`: the original artefact.
        artefact_link: Cid,
    },
    /// `artefactRightsOwnedBy`: the rights holder.
    ArtefactRightsOwnedBy {
        /// `entity`: the rights holder.
        entity: Cid,
    },
    /// `artefactReferencedBy`: a reference (optionally by an entity, usually with `meta.url`).
    ArtefactReferencedBy {
        /// `entity`: the referencing entity, if known.
        entity: Option<Cid>,
    },
    /// `artefactChainLink`: merges a conflicting artefact chain.
    ArtefactChainLink {
        /// `chainMerge`: the merged orphan head.
        chain_merge: Cid,
    },
}

impl CellKind {
    /// The `type` string of the cell.
    pub fn type_name(&self) -> &'static str {
        match self {
            CellKind::EntityUpdate => "entityUpdate",
            CellKind::EntityLink { .. } => "entityLink",
            CellKind::EntityChainLink { .. } => "entityChainLink",
            CellKind::ArtefactUpdate => "artefactUpdate",
            CellKind::ArtefactLink { .. } => "artefactLink",
            CellKind::ArtefactCreatedBy { .. } => "artefactCreatedBy",
            CellKind::ArtefactDerivedBy { .. } => "artefactDerivedBy",
            CellKind::ArtefactRightsOwnedBy { .. } => "artefactRightsOwnedBy",
            CellKind::ArtefactReferencedBy { .. } => "artefactReferencedBy",
            CellKind::ArtefactChainLink { .. } => "artefactChainLink",
        }
    }

    /// Whose chain this cell extends.
    pub fn subject(&self) -> Subject {
        match self {
            CellKind::EntityUpdate
            | CellKind::EntityLink { .. }
            | CellKind::EntityChainLink { .. } => Subject::Entity,
            _ => Subject::Artefact,
        }
    }

    /// The merge cell type for chains of `subject`.
    pub fn chain_link(subject: Subject, chain_merge: Cid) -> Self {
        match subject {
            Subject::Entity => CellKind::EntityChainLink { chain_merge },
            Subject::Artefact => CellKind::ArtefactChainLink { chain_merge },
        }
    }

    /// Other objects this cell links to (besides `chain` and `ref`).
    pub fn links(&self) -> Option<Cid> {
        match *self {
            CellKind::EntityUpdate | CellKind::ArtefactUpdate => None,
            CellKind::EntityLink { entity_link: c }
            | CellKind::EntityChainLink { chain_merge: c }
            | CellKind::ArtefactLink { artefact_link: c }
            | CellKind::ArtefactCreatedBy { entity: c }
            | CellKind::ArtefactDerivedBy { artefact_link: c }
            | CellKind::ArtefactRightsOwnedBy { entity: c }
            | CellKind::ArtefactChainLink { chain_merge: c } => Some(c),
            CellKind::ArtefactReferencedBy { entity } => entity,
        }
    }

    fn extra_field(&self) -> Option<(&'static str, Option<Cid>)> {
        match *self {
            CellKind::EntityUpdate | CellKind::ArtefactUpdate => None,
            CellKind::EntityLink { entity_link } => Some(("entityLink", Some(entity_link))),
            CellKind::EntityChainLink { chain_merge }
            | CellKind::ArtefactChainLink { chain_merge } => {
                Some(("chainMerge", Some(chain_merge)))
            }
            CellKind::ArtefactLink { artefact_link }
            | CellKind::ArtefactDerivedBy { artefact_link } => {
                Some(("artefactLink", Some(artefact_link)))
            }
            CellKind::ArtefactCreatedBy { entity } | CellKind::ArtefactRightsOwnedBy { entity } => {
                Some(("entity", Some(entity)))
            }
            CellKind::ArtefactReferencedBy { entity } => Some(("entity", entity)),
        }
    }

    /// Reads the type-specific fields if `kind` names a cell type; `None` otherwise.
    pub(crate) fn read(kind: &str, f: &mut Fields<'_>) -> Result<Option<Self>, ModelError> {
        Ok(Some(match kind {
            "entityUpdate" => CellKind::EntityUpdate,
            "entityLink" => CellKind::EntityLink {
                entity_link: f.link("entityLink")?,
            },
            "entityChainLink" => CellKind::EntityChainLink {
                chain_merge: f.link("chainMerge")?,
            },
            "artefactUpdate" => CellKind::ArtefactUpdate,
            "artefactLink" => CellKind::ArtefactLink {
                artefact_link: f.link("artefactLink")?,
            },
            "artefactCreatedBy" => CellKind::ArtefactCreatedBy {
                entity: f.link("entity")?,
            },
            "artefactDerivedBy" => CellKind::ArtefactDerivedBy {
                artefact_link: f.link("artefactLink")?,
            },
            "artefactRightsOwnedBy" => CellKind::ArtefactRightsOwnedBy {
                entity: f.link("entity")?,
            },
            "artefactReferencedBy" => CellKind::ArtefactReferencedBy {
                entity: f.opt_link("entity")?,
            },
            "artefactChainLink" => CellKind::ArtefactChainLink {
                chain_merge: f.link("chainMerge")?,
            },
            _ => return Ok(None),
        }))
    }
}

/// One cell of an update chain.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainCell {
    /// The cell type and its links.
    pub kind: CellKind,
    /// `chain`: the previous head of the chain (`nil` for the first cell).
    pub chain: Cid,
    /// `ref`: the canonical of the entity or artefact.
    pub reference: Cid,
    /// Optional metadata, kept verbatim.
    pub meta: Option<Meta>,
    /// Optional signatures, kept verbatim.
    pub signatures: Option<Signatures>,
}

impl ChainCell {
    /// A cell of `kind` on top of `chain` for `reference`, without metadata.
    pub fn new(kind: CellKind, reference: Cid, chain: Cid) -> Self {
        Self {
            kind,
            chain,
            reference,
            meta: None,
            signatures: None,
        }
    }

    /// Sets the metadata (builder style).
    pub fn with_meta(mut self, meta: Meta) -> Self {
        self.meta = Some(meta);
        self
    }

    pub(crate) fn to_ipld(&self) -> Ipld {
        let (extra_key, extra_value) = match self.kind.extra_field() {
            Some((key, value)) => (key, value.map(Ipld::Link)),
            None => ("", None),
        };
        map_of(
            self.kind.type_name(),
            [
                ("chain", Some(Ipld::Link(self.chain))),
                ("ref", Some(Ipld::Link(self.reference))),
                ("meta", self.meta.as_ref().map(|m| Ipld::Map(m.0.clone()))),
                ("signatures", self.signatures.clone().map(Ipld::Map)),
                (extra_key, extra_value),
            ],
        )
    }

    pub(crate) fn read(kind: CellKind, f: &mut Fields<'_>) -> Result<Self, ModelError> {
        Ok(Self {
            kind,
            chain: f.link("chain")?,
            reference: f.link("ref")?,
            meta: f.opt_map("meta")?.map(Meta),
            signatures: f.opt_map("signatures")?,
        })
    }
}
