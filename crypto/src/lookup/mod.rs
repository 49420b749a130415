//! Encrypted membership lookups: TFHE without bootstrapping.
//!
//! # Protocol
//! 1. The requester makes a GLWE secret key and a compact public key
//!    ([`keys`]); the secret key never leaves its machine.
//! 2. Per item, the requester sends the kind, the bucket in clear and the tag's
//!    bits as seeded GGSW ciphertexts ([`query`]).
//! 3. The node evaluates a pruned CMux tree plus a blind rotation over the
//!    bucket's padded candidate tags ([`evaluate`]) and re-randomises the
//!    result under the requester's public key ([`answer`]).
//! 4. The coordinator adds the nodes' answers; the requester decrypts the sum:
//!    the number of jurisdictions holding the identifier.
//!
//! # Residual leak (Guarantee 7)
//! The requester holds the secret key, so it sees a ciphertext's noise, not only
//! its decryption. Re-randomisation replaces the mask (a deterministic function
//! of the query and the node's table) by a fresh one. The evaluation noise
//! (about 2^47, a function of the GGSW noise and the table's shape) is flooded
//! by uniform noise of 2^54: ~7 bits of statistical distance per sample rather
//! than the 40 a full proof would need, because the 64-bit modulus has no room
//! for more (see DESIGN.md, "Where lookup speed comes from"). What may remain is
//! a faint signal about the table's tags in the bucket; with federation-wide
//! HMAC tags this is tied to identifiers, which is why per-node OPRF tags are
//! the next step. The bucket index is the one declared leak to the node.

pub mod answer;
pub mod evaluate;
pub mod keys;
pub mod params;
pub mod query;
pub(crate) mod wire;

pub use answer::EncryptedCount;
pub use evaluate::{evaluate, EvalStats, PreparedTag};
pub use keys::{generate_keys, FhePublicKey, FheSecretKey, KeyId};
pub use query::EncryptedTag;

/// Errors of the lookup cryptography. Messages never hold data values.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LookupError {
    /// Bytes that do not decode as the named object.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// An encoding version this build does not know.
    #[error("unsupported encoding of {0}")]
    UnsupportedFormat(&'static str),
    /// More bytes than the named object can take.
    #[error("{0} is too large")]
    TooLarge(&'static str),
    /// Decoded, but not with the federation's parameters.
    #[error("{0} does not match the lookup parameters")]
    WrongParameters(&'static str),
}

#[cfg(test)]
mod tests;
