//! Per-node oblivious PRF (RFC 9497, VOPRF mode, ciphersuite `ristretto255-SHA512`).
//!
//! Each node holds its own [`NodeOprfKey`]. At import it stores, for every
//! normalised identifier, the OPRF output of `kind || 0 || normal_form`: its
//! fingerprint ([`crate::fingerprint`]). A requester obtains the same output for
//! its own identifiers by a blinded evaluation, so the node learns nothing about
//! them, and a requester cannot compute a node's bucket or tag without that
//! node's help:
//!
//! 1. client: [`BlindedItems::blind`] → blinded elements (32 bytes each) to send;
//! 2. node: [`evaluate_blinded`] → one evaluated element per blinded element plus
//!    one batch proof (64 bytes) that it used the key behind its
//!    [`NodeOprfPublicKey`];
//! 3. client: [`BlindedItems::finalize`] checks the proof and unblinds →
//!    [`Fingerprint`]s, from which [`Fingerprint::bucket`] and
//!    [`Fingerprint::tag`] are taken.
//!
//! The node computes its own outputs directly with the secret key
//! ([`node_fingerprint`], or [`node_fingerprints`] for an import batch, which is
//! parallel and shares the point compressions of a whole chunk).
//!
//! # Fingerprint bytes
//!
//! The OPRF output is 64 bytes (SHA-512); the fingerprint is its first 32 bytes.
//! SHA-512 output truncated is still a PRF output, and every later step (bucket,
//! tag) goes through the one [`Fingerprint`] code path.
//!
//! # Why VOPRF rather than OPRF
//!
//! The verifiable mode lets the client check, with one batch proof per call,
//! that the node evaluated under the key whose public part it committed to
//! (its [`OprfKeyId`] is what a registry lists and rotates). A node that
//! answered under another key would otherwise silently make every lookup miss,
//! or answer different requesters under different keys to tell them apart.
//! Measured (thread CPU time) on the 2-core development machine for a batch of
//! 48 items, the proof costs the node about 2.5 ms (4.0–4.4 ms per batch
//! instead of 1.6 ms) and the client about 4 ms (6.6–6.9 ms to check and
//! unblind instead of 2.7 ms), both under the 10 ms per batch we allowed for
//! it; blinding (2.2 ms) and the node's direct evaluation at import cost the
//! same in both modes. The two modes use different context strings, so the
//! outputs of one never match the other: the choice is made once, here.
//!
//! # Cost
//!
//! The node's direct evaluation takes about 46 µs of CPU per identifier on the
//! 2-core development machine (AVX2): `HashToGroup` 11 µs (two Elligator
//! maps), the constant-time scalar multiplication 34 µs, the batched
//! compression 1 µs. `voprf`'s own `evaluate` takes 52–57 µs: the difference
//! is mostly each point's own compression (an inverse square root, 5–6 µs),
//! which the batch replaces by a share of one batched inversion. A
//! 1,000,000-identifier import thus needs about 46 CPU-seconds of OPRF work,
//! some 23 s of wall time on two otherwise idle cores.
//!
//! # Limits
//!
//! A blinded call carries between 1 and [`MAX_BATCH`] elements, each exactly
//! [`ELEMENT_BYTES`] long; points that do not decode, and the identity, are
//! refused (by `voprf`'s deserialisation) before any work is done. An answer
//! carries exactly as many elements as were sent and a [`PROOF_BYTES`] proof.
//! Every count and length is checked before anything is allocated for it.
//!
//! # Layout
//! - `key`: the node's secret key, its public key and key id, and their texts;
//! - `server`: the node's direct evaluation (import) and its blinded evaluation;
//! - `client`: blinding and unblinding, [`BlindedItems`];
//! - `wire`: the bytes of elements and proofs, and the checks on them.

mod client;
mod key;
pub(crate) mod server;
pub(crate) mod wire;

#[cfg(test)]
mod tests;

use voprf::{Group, Ristretto255};

use crate::fingerprint::Fingerprint;
use crate::identifier::{IdentifierKind, NormalForm};

pub use client::BlindedItems;
pub use key::{NodeOprfKey, NodeOprfPublicKey, OprfKeyId};
pub use server::{evaluate_blinded, node_fingerprint, node_fingerprints, BlindEvaluation};

/// The RFC 9497 ciphersuite: ristretto255 with SHA-512.
pub(crate) type Suite = Ristretto255;
/// A ristretto255 point (`curve25519_dalek::RistrettoPoint`).
pub(crate) type Point = <Ristretto255 as Group>::Elem;
/// A ristretto255 scalar (`curve25519_dalek::Scalar`).
pub(crate) type Scalar = <Ristretto255 as Group>::Scalar;

/// Bytes of one blinded or evaluated element on the wire (a compressed point).
pub const ELEMENT_BYTES: usize = 32;
/// Bytes of the batch proof on the wire (two scalars).
pub const PROOF_BYTES: usize = 64;
/// Most elements in one blinded evaluation call. One element costs the node
/// about 0.1 ms with its share of the proof, so a full call stays near 0.1 s.
pub const MAX_BATCH: usize = 1024;

/// One blinded or evaluated element as sent on the wire.
pub type WireElement = [u8; ELEMENT_BYTES];

/// First word of a node OPRF key file; names the version, suite and mode.
const KEY_FILE_PREFIX: &str = "fedq-oprf-key v1 ristretto255-sha512 voprf ";

/// Errors of OPRF keys and blinded evaluations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OprfError {
    /// The key file text is not ours, not hex, or not a canonical non-zero scalar.
    #[error("node OPRF key file must be `{}` followed by 64 hex characters of a valid key", KEY_FILE_PREFIX.trim_end())]
    KeyFormat,
    /// The public key is not 64 hex characters of a valid, non-identity point.
    #[error("node OPRF public key must be 64 hex characters of a valid ristretto255 point")]
    PublicKeyFormat,
    /// A key id is not 16 hex characters.
    #[error("OPRF key id must be 16 hex characters")]
    KeyIdFormat,
    /// A batch carried no element.
    #[error("an OPRF batch needs at least one element")]
    EmptyBatch,
    /// A batch carried more than [`MAX_BATCH`] elements.
    #[error("an OPRF batch holds at most {max} elements, got {got}")]
    BatchTooLarge {
        /// Elements received.
        got: usize,
        /// The limit, [`MAX_BATCH`].
        max: usize,
    },
    /// An element does not have [`ELEMENT_BYTES`] bytes.
    #[error("OPRF element {index} has {len} bytes, expected {ELEMENT_BYTES}")]
    ElementLength {
        /// Position of the element in its batch.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// An element is not the encoding of a ristretto255 point, or is the identity.
    #[error("OPRF element {index} is not a valid ristretto255 point")]
    InvalidElement {
        /// Position of the element in its batch.
        index: usize,
    },
    /// The node answered with a different number of elements than were sent.
    #[error("expected {expected} evaluated OPRF elements, got {got}")]
    CountMismatch {
        /// Elements sent.
        expected: usize,
        /// Elements received.
        got: usize,
    },
    /// The proof is not [`PROOF_BYTES`] bytes of two canonical scalars.
    #[error("the OPRF proof must be {PROOF_BYTES} bytes of two canonical scalars")]
    ProofFormat,
    /// The proof does not show that the node used the key it committed to.
    #[error("the node's OPRF proof does not verify against its public key")]
    ProofVerification,
    /// An identifier is too long for the OPRF (more than 65,533 bytes).
    #[error("identifier too long for the OPRF")]
    InputLength,
}

/// The OPRF input of an identifier: `kind || 0 || normal_form`.
pub(crate) fn oprf_input(kind: IdentifierKind, normal: &NormalForm) -> Vec<u8> {
    let bytes = normal.as_bytes();
    let mut input = Vec::with_capacity(2 + bytes.len());
    input.extend_from_slice(&[kind.code(), 0]);
    input.extend_from_slice(bytes);
    input
}

/// The fingerprint of a 64-byte OPRF output: its first 32 bytes.
fn fingerprint_of_output(output: &[u8]) -> Fingerprint {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&output[..32]);
    Fingerprint::from_bytes(bytes)
}
