//! A signed document: a DAG-CBOR body plus the issuer's domain-separated signature over the body's
//! canonical bytes. Certificates and revocation lists are both signed documents, stored on disk as
//! PEM blocks whose payload is the canonical DAG-CBOR of `{body, signature}`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::keys::{PublicKey, SecretKey};

/// Why a signed document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Not PEM, or not a PEM block with the expected label.
    #[error("not a PEM `{expected}` block: {detail}")]
    Pem {
        /// Expected PEM label.
        expected: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The payload is not the canonical DAG-CBOR of the document.
    #[error("corrupt {what}: {detail}")]
    Corrupt {
        /// Document kind.
        what: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// A body signed by its issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed<T> {
    /// The signed content.
    pub body: T,
    /// ed25519 signature over the body's canonical DAG-CBOR, under the document's context.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// A kind of signed document: its signing context and PEM label.
pub trait Document: Serialize + DeserializeOwned + Clone {
    /// Domain-separation context for the signature.
    const CONTEXT: &'static [u8];
    /// PEM label of the document on disk.
    const PEM_LABEL: &'static str;
    /// Human name used in errors.
    const WHAT: &'static str;
}

impl<T: Document> Signed<T> {
    /// Signs `body` with `key`.
    pub fn sign(body: T, key: &SecretKey) -> Self {
        let signature = key.sign(T::CONTEXT, &body_bytes(&body)).to_vec();
        Self { body, signature }
    }

    /// Whether `signer` made this signature over exactly this body.
    pub fn signed_by(&self, signer: &PublicKey) -> bool {
        let Ok(signature) = <[u8; 64]>::try_from(self.signature.as_slice()) else {
            return false;
        };
        signer.verify(T::CONTEXT, &body_bytes(&self.body), &signature)
    }

    /// Canonical DAG-CBOR of the whole document.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_ipld_dagcbor::to_vec(self).unwrap_or_default()
    }

    /// Reads a document from canonical DAG-CBOR (refusing non-canonical bytes).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DocumentError> {
        let corrupt = |detail: String| DocumentError::Corrupt {
            what: T::WHAT,
            detail,
        };
        let doc: Self =
            serde_ipld_dagcbor::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
        if doc.to_bytes() != bytes {
            return Err(corrupt("not in canonical DAG-CBOR form".into()));
        }
        Ok(doc)
    }

    /// The document as one PEM block.
    pub fn to_pem(&self) -> String {
        pem::encode(&pem::Pem::new(T::PEM_LABEL, self.to_bytes()))
    }

    /// Every document in a PEM text, in order; anything else in the text is an error.
    pub fn many_from_pem(text: &str) -> Result<Vec<Self>, DocumentError> {
        let pem_err = |detail: String| DocumentError::Pem {
            expected: T::PEM_LABEL,
            detail,
        };
        let blocks = pem::parse_many(text).map_err(|e| pem_err(e.to_string()))?;
        if blocks.is_empty() {
            return Err(pem_err("no PEM block found".into()));
        }
        blocks
            .iter()
            .map(|block| {
                if block.tag() != T::PEM_LABEL {
                    return Err(pem_err(format!("found a `{}` block", block.tag())));
                }
                Self::from_bytes(block.contents())
            })
            .collect()
    }
}

fn body_bytes<T: Serialize>(body: &T) -> Vec<u8> {
    // Bodies are plain structs of integers, strings and byte strings: encoding cannot fail.
    serde_ipld_dagcbor::to_vec(body).unwrap_or_default()
}
