//! Private keys on disk.
//!
//! Two formats, both PEM text, written with mode 0600 and never overwritten silently:
//! - `PRIVATE KEY`: an unencrypted PKCS#8 ed25519 key (RFC 8410), readable by OpenSSL
//!   (`openssl pkey -in key.pem -noout -text`). Used for peer and client keys, which a process
//!   must load unattended.
//! - `MEDIACHAIN ENCRYPTED PRIVATE KEY`: the 32-byte ed25519 seed sealed with XChaCha20-Poly1305
//!   under a key derived from a passphrase with Argon2id. The payload is canonical DAG-CBOR of
//!   [`EncryptedKey`]; its header fields (KDF parameters, salt, nonce) are authenticated as
//!   associated data. The root key is always stored this way.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::keys::SecretKey;

/// PEM label of an encrypted key.
pub const ENCRYPTED_LABEL: &str = "MEDIACHAIN ENCRYPTED PRIVATE KEY";
/// PEM label of a plain PKCS#8 key.
pub const PLAIN_LABEL: &str = "PRIVATE KEY";

/// Why a key file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file exists and overwriting was not asked for.
    #[error("{0}: already exists (refusing to overwrite a key)")]
    Exists(PathBuf),
    /// The file is not a key in a known format.
    #[error("{path}: not a Mediachain key file: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The key is encrypted and no passphrase was given.
    #[error("{0}: the key is encrypted; a passphrase is required")]
    PassphraseRequired(PathBuf),
    /// Decryption failed: wrong passphrase (or a tampered file).
    #[error("{0}: wrong passphrase (or the file was tampered with)")]
    WrongPassphrase(PathBuf),
}

/// Argon2id cost parameters, stored in the file so they can be raised later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    #[serde(rename = "memoryKiB")]
    pub memory_kib: u32,
    /// Passes.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: the OWASP recommendation for Argon2id.
    fn default() -> Self {
        Self {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// The payload of an encrypted key file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptedKey {
    /// Format version (1).
    pub version: u8,
    /// Always `argon2id`.
    pub kdf: String,
    /// Argon2id costs.
    pub params: KdfParams,
    /// 16 random bytes.
    #[serde(with = "serde_bytes")]
    pub salt: Vec<u8>,
    /// Always `xchacha20poly1305`.
    pub aead: String,
    /// 24 random bytes.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// The sealed 32-byte seed plus the 16-byte tag.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl EncryptedKey {
    fn associated_data(&self) -> Vec<u8> {
        let header = EncryptedKey {
            ciphertext: vec![],
            ..self.clone()
        };
        serde_ipld_dagcbor::to_vec(&header).unwrap_or_default()
    }
}

fn derive(passphrase: &str, salt: &[u8], params: KdfParams) -> Result<Zeroizing<[u8; 32]>, String> {
    let params = Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(32),
    )
    .map_err(|e| format!("invalid Argon2 parameters: {e}"))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|e| format!("key derivation failed: {e}"))?;
    Ok(key)
}

/// Seals `key` under `passphrase` as PEM text.
pub fn encrypt(key: &SecretKey, passphrase: &str, params: KdfParams) -> Result<String, String> {
    let mut salt = vec![0u8; 16];
    let mut nonce = vec![0u8; 24];
    OsRng.fill_bytes(&mut salt);
    OsRng.fill_bytes(&mut nonce);
    let mut file = EncryptedKey {
        version: 1,
        kdf: "argon2id".into(),
        params,
        salt,
        aead: "xchacha20poly1305".into(),
        nonce,
        ciphertext: vec![],
    };
    let wrapping = derive(passphrase, &file.salt, params)?;
    let cipher = XChaCha20Poly1305::new(wrapping.as_ref().into());
    let seed = Zeroizing::new(key.seed());
    let aad = file.associated_data();
    file.ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&file.nonce),
            Payload {
                msg: seed.as_ref(),
                aad: &aad,
            },
        )
        .map_err(|_| "encryption failed".to_string())?;
    let bytes = serde_ipld_dagcbor::to_vec(&file).map_err(|e| e.to_string())?;
    Ok(pem::encode(&pem::Pem::new(ENCRYPTED_LABEL, bytes)))
}

/// Whether PEM text holds an encrypted key.
pub fn is_encrypted(text: &str) -> bool {
    text.contains(&format!("-----BEGIN {ENCRYPTED_LABEL}-----"))
}

/// Reads a key from PEM text; `passphrase` is needed for encrypted keys.
pub fn parse(path: &Path, text: &str, passphrase: Option<&str>) -> Result<SecretKey, KeyFileError> {
    let corrupt = |detail: String| KeyFileError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let block = pem::parse(text).map_err(|e| corrupt(e.to_string()))?;
    match block.tag() {
        PLAIN_LABEL => {
            let key = SigningKey::from_pkcs8_der(block.contents())
                .map_err(|e| corrupt(format!("not an ed25519 PKCS#8 key: {e}")))?;
            Ok(SecretKey::from_seed(&key.to_bytes()))
        }
        ENCRYPTED_LABEL => {
            let passphrase =
                passphrase.ok_or_else(|| KeyFileError::PassphraseRequired(path.into()))?;
            let file: EncryptedKey = serde_ipld_dagcbor::from_slice(block.contents())
                .map_err(|e| corrupt(e.to_string()))?;
            if file.version != 1 || file.kdf != "argon2id" || file.aead != "xchacha20poly1305" {
                return Err(corrupt(format!(
                    "unsupported encryption (version {}, {}, {})",
                    file.version, file.kdf, file.aead
                )));
            }
            if file.nonce.len() != 24 {
                return Err(corrupt("nonce must be 24 bytes".into()));
            }
            let wrapping = derive(passphrase, &file.salt, file.params).map_err(corrupt)?;
            let cipher = XChaCha20Poly1305::new(wrapping.as_ref().into());
            let aad = file.associated_data();
            let seed = Zeroizing::new(
                cipher
                    .decrypt(
                        XNonce::from_slice(&file.nonce),
                        Payload {
                            msg: &file.ciphertext,
                            aad: &aad,
                        },
                    )
                    .map_err(|_| KeyFileError::WrongPassphrase(path.into()))?,
            );
            let seed: [u8; 32] = seed
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("sealed seed is not 32 bytes".into()))?;
            Ok(SecretKey::from_seed(&seed))
        }
        other => Err(corrupt(format!("unexpected PEM block `{other}`"))),
    }
}

/// The key as unencrypted PKCS#8 PEM text.
pub fn to_plain_pem(key: &SecretKey) -> Result<Zeroizing<String>, String> {
    key.signing_key()
        .to_pkcs8_pem(Default::default())
        .map_err(|e| e.to_string())
}

/// Reads a key file; `passphrase` is needed for encrypted keys.
pub fn read(path: &Path, passphrase: Option<&str>) -> Result<SecretKey, KeyFileError> {
    let text = Zeroizing::new(fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        path: path.into(),
        source,
    })?);
    parse(path, &text, passphrase)
}

/// Writes secret text to `path` with mode 0600, refusing to replace an existing file unless
/// `overwrite`; the file is complete on disk (fsync) when this returns.
pub fn write_secret(path: &Path, text: &str, overwrite: bool) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.into(),
        source,
    };
    if !overwrite && path.exists() {
        return Err(KeyFileError::Exists(path.into()));
    }
    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(text.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> KdfParams {
        KdfParams {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[test]
    fn encrypted_key_round_trips_and_refuses_wrong_passphrase() {
        let key = SecretKey::generate();
        let text = encrypt(&key, "correct horse", cheap()).unwrap();
        assert!(is_encrypted(&text));
        let path = Path::new("root.key");
        assert_eq!(
            parse(path, &text, Some("correct horse")).unwrap().public(),
            key.public()
        );
        assert!(matches!(
            parse(path, &text, Some("wrong")),
            Err(KeyFileError::WrongPassphrase(_))
        ));
        assert!(matches!(
            parse(path, &text, None),
            Err(KeyFileError::PassphraseRequired(_))
        ));
    }

    #[test]
    fn tampered_header_is_detected() {
        let key = SecretKey::generate();
        let text = encrypt(&key, "pw", cheap()).unwrap();
        let block = pem::parse(&text).unwrap();
        let mut file: EncryptedKey = serde_ipld_dagcbor::from_slice(block.contents()).unwrap();
        file.params.iterations = 2;
        let tampered = pem::encode(&pem::Pem::new(
            ENCRYPTED_LABEL,
            serde_ipld_dagcbor::to_vec(&file).unwrap(),
        ));
        assert!(matches!(
            parse(Path::new("k"), &tampered, Some("pw")),
            Err(KeyFileError::WrongPassphrase(_))
        ));
    }

    #[test]
    fn plain_key_is_pkcs8_and_round_trips() {
        let key = SecretKey::generate();
        let text = to_plain_pem(&key).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(
            parse(Path::new("k"), &text, None).unwrap().public(),
            key.public()
        );
        assert!(matches!(
            parse(Path::new("k"), "garbage", None),
            Err(KeyFileError::Corrupt { .. })
        ));
    }

    #[test]
    fn key_files_are_private_and_not_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peer.key");
        write_secret(&path, "secret", false).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(matches!(
            write_secret(&path, "other", false),
            Err(KeyFileError::Exists(_))
        ));
        assert_eq!(fs::read_to_string(&path).unwrap(), "secret");
    }
}
