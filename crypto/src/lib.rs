//! Cryptography of fedq, with no I/O and no networking.
//!
//! # Layout
//! - [`identifier`]: identifier kinds and their canonical normal forms.
//! - [`fingerprint`]: fingerprints (bucket + tag) and their parameters.
//! - [`oprf`]: per-node OPRF keys (RFC 9497 VOPRF, ristretto255), the node's
//!   direct evaluation and the client's blinded evaluation of fingerprints.
//! - [`toprf`]: the federation's threshold OPRF (2HashDH over a Shamir-shared
//!   key) for deconfliction: pseudonyms no single node can compute, and the
//!   keys that seal contacts between holders of the same identifier.
//! - [`lookup`]: TFHE keys, client-side query encryption, the node's encrypted
//!   membership evaluation and the answers the coordinator adds up.
//! - [`envelope`]: signed request envelopes and the time-window arithmetic.
//! - [`audit_key`]: the Ed25519 key an audit log signs with, and its pin.
//! - `fuzzing` (hidden): the fuzz target bodies of every decoder of untrusted
//!   bytes, shared by `crypto/fuzz` and the corpus replay test.
//!
//! This is the only crate that names `tfhe` (and later `opendp`): the other
//! crates see our types only.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod audit_key;
pub mod dp;
pub mod envelope;
pub mod fingerprint;
#[doc(hidden)]
pub mod fuzzing;
pub mod identifier;
pub mod lookup;
pub mod oprf;
pub mod toprf;

pub use fingerprint::{Bucket, Fingerprint, FingerprintParams, Tag};
pub use identifier::{normalise, IdentifierError, IdentifierKind, NormalForm};
