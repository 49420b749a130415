//! A party's Ed25519 audit key and the signed checkpoint of the log's head.
//!
//! The checkpoint lives outside the SQLite file, so deleting the tail of the
//! log, or rewriting it and every hash after, no longer matches what the node
//! signed. Replacing the checkpoint with an older one that the node also
//! signed is not detected here: the coordinator witnesses checkpoints
//! (`witness.rs`) and `audit verify --witness` compares the log with them.
//!
//! Key file: `fedq_crypto::audit_key` (format 1, mode 0600; `fedq
//! federation init` creates it and pins its public half). Checkpoint file:
//! JSON `{"version":"1","seq":..,"hash":..,"public_key":..,"signature":..}`;
//! the signature covers
//! `fedq-audit-checkpoint\0`, the version as a big-endian `u32`, `seq` as a
//! big-endian `u64`, the hash's byte length as a big-endian `u64` and the
//! hash's hex text.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use fedq_crypto::audit_key::{AuditPublicKey, AuditSigningKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::AuditError;

const SIGNED_DOMAIN: &[u8] = b"fedq-audit-checkpoint\0";
const CHECKPOINT_VERSION: u32 = 1;

/// The key that signs checkpoints and entries (and, the coordinator's,
/// countersigns the nodes' checkpoints). No Debug, Clone or Serialize; the
/// dalek key inside zeroizes itself on drop.
pub(super) struct AuditKey {
    signing: AuditSigningKey,
}

impl AuditKey {
    /// Loads the key at `path`, or creates one there (mode 0600) if missing.
    pub(super) fn load_or_create(path: &Path) -> Result<Self, AuditError> {
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::parse(path, &Zeroizing::new(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(AuditError::io(path)(e)),
        }
        let signing = AuditSigningKey::generate();
        ensure_parent(path)?;
        match create_private(path) {
            Ok(mut file) => {
                file.write_all(signing.to_file_text().as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(AuditError::io(path))?;
                sync_parent(path)?;
                tracing::info!(path = %path.display(), "created the audit checkpoint key");
                Ok(Self { signing })
            }
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path).map_err(AuditError::io(path))?;
                Self::parse(path, &Zeroizing::new(text))
            }
            Err(e) => Err(AuditError::io(path)(e)),
        }
    }

    /// Loads the key at `path`; a missing key is an error, never created.
    pub(super) fn load(path: &Path) -> Result<Self, AuditError> {
        let text = std::fs::read_to_string(path).map_err(AuditError::io(path))?;
        Self::parse(path, &Zeroizing::new(text))
    }

    fn parse(path: &Path, text: &str) -> Result<Self, AuditError> {
        let signing = AuditSigningKey::from_file_text(text).map_err(|_| AuditError::BadKey {
            path: path.to_owned(),
        })?;
        Ok(Self { signing })
    }

    /// The public half, which `federation.toml` pins.
    pub(super) fn verifying_key(&self) -> AuditPublicKey {
        self.signing.public_key()
    }

    /// Signs a message of one of the audit formats.
    pub(super) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "version", deny_unknown_fields)]
enum CheckpointFile {
    #[serde(rename = "1")]
    V1 {
        seq: u64,
        hash: String,
        public_key: String,
        signature: String,
    },
}

/// What the checkpoint file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Checkpoint {
    /// There is no checkpoint file.
    Missing,
    /// There is one, but it is unreadable or its signature does not verify.
    Invalid(String),
    /// The key signed this head.
    Signed {
        /// Seq of the head when signed.
        seq: u64,
        /// Hash of that entry.
        hash: String,
        /// The signature, checked.
        signature: [u8; 64],
    },
}

/// The bytes a checkpoint's signature covers (see the module docs).
pub(super) fn message(seq: u64, hash: &str) -> Vec<u8> {
    let mut message = SIGNED_DOMAIN.to_vec();
    message.extend_from_slice(&CHECKPOINT_VERSION.to_be_bytes());
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(&(hash.len() as u64).to_be_bytes());
    message.extend_from_slice(hash.as_bytes());
    message
}

/// Signs (seq, hash) into `path`: temp file, fsync, rename, fsync directory.
pub(super) fn write(path: &Path, key: &AuditKey, seq: u64, hash: &str) -> Result<(), AuditError> {
    let signature = key.sign(&message(seq, hash));
    let file = CheckpointFile::V1 {
        seq,
        hash: hash.to_owned(),
        public_key: key.verifying_key().to_hex(),
        signature: hex::encode(signature),
    };
    let mut json = serde_json::to_vec(&file).expect("a checkpoint serialises");
    json.push(b'\n');
    ensure_parent(path)?;
    let temp = temp_path(path);
    let written = create_private(&temp).and_then(|mut f| {
        f.write_all(&json)?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&temp, path)) {
        let _ = std::fs::remove_file(&temp);
        return Err(AuditError::io(path)(e));
    }
    sync_parent(path)
}

/// Reads the checkpoint at `path` and checks its signature against `key`,
/// which `whose` names in what is wrong ("this node's audit key", "the
/// pinned audit key").
pub(super) fn read(
    path: &Path,
    key: &AuditPublicKey,
    whose: &str,
) -> Result<Checkpoint, AuditError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Checkpoint::Missing),
        Err(e) => return Err(AuditError::io(path)(e)),
    };
    let Ok(CheckpointFile::V1 {
        seq,
        hash,
        public_key,
        signature,
    }) = serde_json::from_str(&text)
    else {
        return Ok(Checkpoint::Invalid(
            "the checkpoint file is not a version 1 checkpoint".to_owned(),
        ));
    };
    if public_key != key.to_hex() {
        return Ok(Checkpoint::Invalid(format!(
            "the checkpoint names another key than {whose}"
        )));
    }
    let mut bytes = [0u8; 64];
    if hex::decode_to_slice(&signature, &mut bytes).is_err() {
        return Ok(Checkpoint::Invalid(
            "the checkpoint signature is not 64 bytes of hex".to_owned(),
        ));
    }
    if !key.verifies(&message(seq, &hash), &bytes) {
        return Ok(Checkpoint::Invalid(format!(
            "the checkpoint signature does not verify with {whose}"
        )));
    }
    Ok(Checkpoint::Signed {
        seq,
        hash,
        signature: bytes,
    })
}

fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{unique}.tmp", std::process::id()))
}

fn ensure_parent(path: &Path) -> Result<(), AuditError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            fedq_transport::files::create_private_dir(dir).map_err(AuditError::io(dir))
        }
        _ => Ok(()),
    }
}

/// Makes a rename or creation in the directory durable.
fn sync_parent(path: &Path) -> Result<(), AuditError> {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(AuditError::io(dir))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    fedq_transport::files::create_new_private(path)
}
