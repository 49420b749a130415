//! The node's Ed25519 audit key and the signed checkpoint of the log's head.
//!
//! The checkpoint lives outside the SQLite file, so deleting the tail of the
//! log, or rewriting it and every hash after, no longer matches what the node
//! signed. Replacing the checkpoint with an older one that the node also
//! signed is not detected here: anchor checkpoints elsewhere (an oversight
//! body's copy) for that.
//!
//! Key file (format 1): `fedq-audit-key-v1 <64 hex digits of the seed>\n`,
//! mode 0600. Checkpoint file: JSON `{"version":"1","seq":..,"hash":..,
//! "public_key":..,"signature":..}`; the signature covers
//! `fedq-audit-checkpoint\0`, the version as a big-endian `u32`, `seq` as a
//! big-endian `u64`, the hash's byte length as a big-endian `u64` and the
//! hash's hex text.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::AuditError;

const KEY_PREFIX: &str = "fedq-audit-key-v1 ";
const SIGNED_DOMAIN: &[u8] = b"fedq-audit-checkpoint\0";
const CHECKPOINT_VERSION: u32 = 1;

/// The key that signs checkpoints. No Debug, Clone or Serialize; the
/// dalek key zeroizes itself on drop.
pub(super) struct AuditKey {
    signing: SigningKey,
}

impl AuditKey {
    /// Loads the key at `path`, or creates one there (mode 0600) if missing.
    pub(super) fn load_or_create(path: &Path) -> Result<Self, AuditError> {
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::parse(path, &Zeroizing::new(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(AuditError::io(path)(e)),
        }
        let signing = SigningKey::generate(&mut rand::rngs::OsRng);
        let text = Zeroizing::new(format!("{KEY_PREFIX}{}\n", hex::encode(signing.to_bytes())));
        ensure_parent(path)?;
        match create_private(path) {
            Ok(mut file) => {
                file.write_all(text.as_bytes())
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
        let bad = || AuditError::BadKey {
            path: path.to_owned(),
        };
        let digits = text.trim_end().strip_prefix(KEY_PREFIX).ok_or_else(bad)?;
        let mut seed = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(digits, seed.as_mut_slice()).map_err(|_| bad())?;
        Ok(Self {
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// The public half, which oversight bodies can be given.
    pub(super) fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
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
    /// The node's key signed this head.
    Signed {
        /// Seq of the head when signed.
        seq: u64,
        /// Hash of that entry.
        hash: String,
    },
}

fn message(seq: u64, hash: &str) -> Vec<u8> {
    let mut message = SIGNED_DOMAIN.to_vec();
    message.extend_from_slice(&CHECKPOINT_VERSION.to_be_bytes());
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(&(hash.len() as u64).to_be_bytes());
    message.extend_from_slice(hash.as_bytes());
    message
}

/// Signs (seq, hash) into `path`: temp file, fsync, rename, fsync directory.
pub(super) fn write(path: &Path, key: &AuditKey, seq: u64, hash: &str) -> Result<(), AuditError> {
    let signature = key.signing.sign(&message(seq, hash));
    let file = CheckpointFile::V1 {
        seq,
        hash: hash.to_owned(),
        public_key: hex::encode(key.verifying_key().to_bytes()),
        signature: hex::encode(signature.to_bytes()),
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

/// Reads the checkpoint at `path` and checks its signature against `key`.
pub(super) fn read(path: &Path, key: &VerifyingKey) -> Result<Checkpoint, AuditError> {
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
    if public_key != hex::encode(key.to_bytes()) {
        return Ok(Checkpoint::Invalid(
            "the checkpoint names another key than this node's audit key".to_owned(),
        ));
    }
    let mut bytes = [0u8; 64];
    if hex::decode_to_slice(&signature, &mut bytes).is_err() {
        return Ok(Checkpoint::Invalid(
            "the checkpoint signature is not 64 bytes of hex".to_owned(),
        ));
    }
    if key
        .verify_strict(&message(seq, &hash), &Signature::from_bytes(&bytes))
        .is_err()
    {
        return Ok(Checkpoint::Invalid(
            "the checkpoint signature does not verify with this node's audit key".to_owned(),
        ));
    }
    Ok(Checkpoint::Signed { seq, hash })
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
