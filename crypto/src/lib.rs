//! Cryptography of fedq, with no I/O and no networking.
//!
//! # Layout
//! - [`identifier`]: identifier kinds and their canonical normal forms.
//! - [`fingerprint`]: fingerprints (bucket + tag) and their parameters.
//! - [`oprf`]: per-node OPRF keys (RFC 9497 VOPRF, ristretto255), the node's
//!   direct evaluation and the client's blinded evaluation of fingerprints.
//! - [`lookup`]: TFHE keys, client-side query encryption, the node's encrypted
//!   membership evaluation and the answers the coordinator adds up.
//!
//! This is the only crate that names `tfhe` (and later `opendp`): the other
//! crates see our types only.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod baseline;
pub mod dp;
pub mod envelope;
pub mod fingerprint;
pub mod identifier;
pub mod lookup;
pub mod oprf;

pub use fingerprint::{Bucket, Fingerprint, FingerprintParams, Tag};
pub use identifier::{normalise, IdentifierError, IdentifierKind, NormalForm};
