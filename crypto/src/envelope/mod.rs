//! Signed request envelopes: who asks, why, when, and for exactly which query.
//!
//! A requester signs every lookup and statistics request with its Ed25519
//! key. The envelope names the requester, agency, role, purpose, legal basis
//! and case reference, a time and a random nonce, and the SHA-256 of the query
//! payload. A node checks the signature against the federation file's public
//! key, so it knows who asked even if the coordinator is compromised; it
//! checks the time window and refuses a nonce it has seen (replay); and it
//! recomputes the payload hash from the query it received, so an envelope
//! cannot be moved onto another query.
//!
//! The signed bytes are the envelope's JSON exactly as sent: the node verifies
//! those bytes, then parses them, so no canonical re-encoding is needed.

mod window;

pub use window::{expires_at, within_skew};

use ed25519_dalek::{Signer, Verifier};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Domain separation: a signature over an envelope is never valid as anything else.
const SIGNING_CONTEXT: &[u8] = b"fedq request envelope v1\0";
/// Longest accepted envelope (JSON bytes), checked before parsing: the fields
/// are short texts, so this also bounds every string the parser allocates.
pub const MAX_ENVELOPE_BYTES: usize = 8 * 1024;
/// Longest accepted text field (purpose, legal basis, case reference, ...).
pub const MAX_FIELD_CHARS: usize = 512;
/// Most nodes one envelope may name (its audience).
pub const MAX_AUDIENCE: usize = 256;
/// Longest node id in an audience.
const MAX_NODE_ID_CHARS: usize = 64;
/// Hex digits of an Ed25519 key's text; longer text is refused before decoding.
const KEY_HEX_CHARS: usize = 64;

/// Errors of envelope handling.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The envelope is missing, oversized or not well formed.
    #[error("malformed request envelope: {0}")]
    Malformed(String),
    /// The signature does not verify under the requester's public key.
    #[error("the request envelope's signature does not verify")]
    BadSignature,
    /// A key file or key text is not a valid Ed25519 key.
    #[error("invalid signing key: {0}")]
    BadKey(String),
}

/// What the requester declares and signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Requester id, as listed in the federation file.
    pub requester: String,
    /// The requester's agency.
    pub agency: String,
    /// investigator, researcher or auditor.
    pub role: String,
    /// What the request is for (checked against each node's policy).
    pub purpose: String,
    /// The legal basis the requester invokes.
    pub legal_basis: String,
    /// The case reference.
    pub case_ref: String,
    /// lookup, stats or another action name.
    pub action: String,
    /// Seconds since the Unix epoch when the requester signed.
    pub issued_at: i64,
    /// 128 random bits, hex: a node refuses a nonce it has seen.
    pub nonce: String,
    /// SHA-256 of the query payload, hex.
    pub payload_hash: String,
    /// The nodes the requester addresses, sorted: a node admits only an
    /// envelope that names it, and a lookup only when it names every node of
    /// the federation (the answer is a count over all of them, never one
    /// node's bit). Lookup and OPRF payload hashes also name their one node.
    pub audience: Vec<String>,
}

impl Envelope {
    /// A well-formed envelope of alice's, for tests and fuzz seeds.
    #[doc(hidden)]
    pub fn example() -> Self {
        Self {
            requester: "alice".to_owned(),
            agency: "fr-police".to_owned(),
            role: "investigator".to_owned(),
            purpose: "fraud investigation".to_owned(),
            legal_basis: "art. 6".to_owned(),
            case_ref: "C-1".to_owned(),
            action: "lookup".to_owned(),
            issued_at: 1_795_000_000,
            nonce: fresh_nonce(),
            payload_hash: PayloadHasher::new("lookup").finish(),
            audience: vec!["fr".to_owned()],
        }
    }

    /// Checks field sizes and shapes (before any policy decision).
    pub fn check_shape(&self) -> Result<(), EnvelopeError> {
        let fields = [
            ("requester", &self.requester),
            ("agency", &self.agency),
            ("role", &self.role),
            ("purpose", &self.purpose),
            ("legal_basis", &self.legal_basis),
            ("case_ref", &self.case_ref),
            ("action", &self.action),
        ];
        for (name, value) in fields {
            if value.chars().count() > MAX_FIELD_CHARS {
                return Err(EnvelopeError::Malformed(format!("{name} is too long")));
            }
            if value.chars().any(char::is_control) {
                return Err(EnvelopeError::Malformed(format!(
                    "{name} holds control characters"
                )));
            }
        }
        for (name, value) in [
            ("purpose", &self.purpose),
            ("legal_basis", &self.legal_basis),
        ] {
            if value.trim().is_empty() {
                return Err(EnvelopeError::Malformed(format!("{name} is empty")));
            }
        }
        if self.audience.is_empty() || self.audience.len() > MAX_AUDIENCE {
            return Err(EnvelopeError::Malformed(format!(
                "audience must name between 1 and {MAX_AUDIENCE} nodes"
            )));
        }
        if self.audience.iter().any(|node| {
            node.is_empty()
                || node.chars().count() > MAX_NODE_ID_CHARS
                || node.chars().any(char::is_control)
        }) {
            return Err(EnvelopeError::Malformed(
                "audience holds an empty, overlong or control-character node id".to_owned(),
            ));
        }
        if !is_hex(&self.nonce, 32) {
            return Err(EnvelopeError::Malformed(
                "nonce must be 32 hex digits".to_owned(),
            ));
        }
        if !is_hex(&self.payload_hash, 64) {
            return Err(EnvelopeError::Malformed(
                "payload_hash must be 64 hex digits".to_owned(),
            ));
        }
        Ok(())
    }
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// A fresh random nonce (128 bits, hex).
pub fn fresh_nonce() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// An envelope as it travels: the exact signed JSON bytes and the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedEnvelope {
    /// The envelope's JSON, as signed.
    pub bytes: Vec<u8>,
    /// Ed25519 signature over the signing context and `bytes`.
    pub signature: Vec<u8>,
}

impl SignedEnvelope {
    /// Parses the envelope without checking the signature: the node needs the
    /// requester id to find the key, then calls [`SignedEnvelope::verify`].
    pub fn peek(&self) -> Result<Envelope, EnvelopeError> {
        if self.bytes.is_empty() {
            return Err(EnvelopeError::Malformed(
                "the request carries no envelope".to_owned(),
            ));
        }
        if self.bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::Malformed("envelope too large".to_owned()));
        }
        let envelope: Envelope = serde_json::from_slice(&self.bytes)
            .map_err(|_| EnvelopeError::Malformed("envelope is not valid JSON".to_owned()))?;
        envelope.check_shape()?;
        Ok(envelope)
    }

    /// Verifies the signature under `key` and returns the envelope.
    pub fn verify(&self, key: &VerifyingKey) -> Result<Envelope, EnvelopeError> {
        let envelope = self.peek()?;
        self.check_signature(key)?;
        Ok(envelope)
    }

    /// Checks only the signature over the bytes, for a caller that has
    /// already parsed them with [`SignedEnvelope::peek`].
    pub fn check_signature(&self, key: &VerifyingKey) -> Result<(), EnvelopeError> {
        let signature = ed25519_dalek::Signature::from_slice(&self.signature)
            .map_err(|_| EnvelopeError::BadSignature)?;
        key.0
            .verify(&signing_input(&self.bytes), &signature)
            .map_err(|_| EnvelopeError::BadSignature)
    }
}

fn signing_input(bytes: &[u8]) -> Vec<u8> {
    [SIGNING_CONTEXT, bytes].concat()
}

/// Decodes a key's 64 hex digits into `out` (32 bytes), without allocating.
fn decode_key_hex(text: &str, out: &mut [u8]) -> Result<(), EnvelopeError> {
    let text = text.trim();
    if text.len() != KEY_HEX_CHARS {
        return Err(EnvelopeError::BadKey("expected 32 bytes".to_owned()));
    }
    hex::decode_to_slice(text, out).map_err(|_| EnvelopeError::BadKey("not hex".to_owned()))
}

/// A requester's Ed25519 signing key (kept in a 0600 file by the CLI).
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A fresh key from the OS's CSPRNG.
    pub fn generate() -> Self {
        Self(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// Reads a key from its file text (64 hex digits).
    pub fn from_text(text: &str) -> Result<Self, EnvelopeError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        decode_key_hex(text, seed.as_mut_slice())?;
        Ok(Self(ed25519_dalek::SigningKey::from_bytes(&seed)))
    }

    /// The file text of the key (64 hex digits); handle as a secret.
    pub fn to_text(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(hex::encode(self.0.to_bytes()))
    }

    /// The public half, for the federation file.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.0.verifying_key())
    }

    /// Serialises and signs `envelope`.
    pub fn sign(&self, envelope: &Envelope) -> SignedEnvelope {
        let bytes = serde_json::to_vec(envelope).expect("an envelope always serialises");
        let signature = self.0.sign(&signing_input(&bytes)).to_bytes().to_vec();
        SignedEnvelope { bytes, signature }
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

/// A requester's public key, as listed in the federation file (hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey(ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    /// Parses 64 hex digits.
    pub fn from_text(text: &str) -> Result<Self, EnvelopeError> {
        let mut bytes = [0u8; 32];
        decode_key_hex(text, &mut bytes)?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| EnvelopeError::BadKey("not a valid Ed25519 point".to_owned()))
    }

    /// 64 hex digits.
    pub fn to_text(&self) -> String {
        hex::encode(self.0.to_bytes())
    }
}

/// Builds the SHA-256 of a query payload from length-prefixed fields, so
/// that no two different payloads encode alike. Client and node feed it the
/// same fields in the same order.
#[derive(Clone)]
pub struct PayloadHasher(Sha256);

impl PayloadHasher {
    /// A hasher for one kind of payload (`"lookup"`, `"stats"`).
    pub fn new(kind: &str) -> Self {
        let mut hasher = Self(Sha256::new());
        hasher.bytes(b"fedq payload v1");
        hasher.bytes(kind.as_bytes());
        hasher
    }

    /// Adds a byte string.
    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.0.update((value.len() as u64).to_le_bytes());
        self.0.update(value);
        self
    }

    /// Adds a text.
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    /// Adds a number.
    pub fn number(&mut self, value: u64) -> &mut Self {
        self.bytes(&value.to_le_bytes())
    }

    /// The hash, hex.
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

#[cfg(test)]
mod tests;
