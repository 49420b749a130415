//! Threshold OPRF for deconfliction: an identifier's pseudonym that no single
//! node can compute.
//!
//! The construction is 2HashDH with a Shamir-shared key, as in Jarecki,
//! Kiayias, Krawczyk and Xu, "TOPPSS: Cost-minimal Password-Protected Secret
//! Sharing based on Threshold OPRF" (ACNS 2017). Its output is exactly the
//! RFC 9497 VOPRF output (ristretto255-SHA512, the same suite and mode as
//! [`crate::oprf`]) under a key `k` that nobody holds:
//!
//! 1. dealer ([`deal`], once, at `fedq federation init`): draws `k`, splits it
//!    `t`-of-`n` (`k_i = f(i)` for a random `f` of degree `t-1` with
//!    `f(0) = k`), publishes `K = k·G` ([`ThresholdPublicKey`]) and every
//!    `K_i = k_i·G` ([`SharePublicKey`]), hands node `i` its [`KeyShare`] and
//!    forgets `k`;
//! 2. client ([`ThresholdClient::blind`]): blinds each identifier with a fresh
//!    blind per node, so that nodes comparing their requests cannot link them;
//! 3. node `i` ([`evaluate_partial`]): answers `k_i·B` for each blinded
//!    element `B`, with an RFC 9497 batch proof against `K_i`;
//! 4. client ([`ThresholdClient::accept`], then [`ThresholdClient::finish`]):
//!    checks each proof, combines `t` unblinded partials with the Lagrange
//!    coefficients at 0 (`Σ λ_i·k_i·H(x) = k·H(x)`) and applies the RFC 9497
//!    `Finalize` hash. From the 64-byte output it derives a
//!    [`DeconflictionSecret`]: the [`Pseudonym`] the coordinator matches on
//!    and a [`SealKey`] for contacts that only holders of the same identifier
//!    can open.
//!
//! Fewer than `t` colluding nodes learn nothing about `k`, hence cannot
//! compute any pseudonym (a dictionary of phone numbers, say) on their own;
//! the client learns the outputs of its own identifiers only.
//!
//! # Why check the shares against `K`
//!
//! The proofs bind each partial to its `K_i`, but `K_i` themselves come from
//! the federation file. [`check_public_shares`] checks once that they lie on
//! one polynomial of degree `t-1` through `K`, and [`ThresholdClient::finish`]
//! checks again that the `K_i` it combined interpolate to `K`, so that a
//! replaced share cannot silently shift every pseudonym of one client.
//!
//! # Limits
//!
//! Share indices run from 1 to [`MAX_NODES`]; a client batch carries 1 to
//! [`crate::oprf::MAX_BATCH`] items, and a node's answer is checked exactly
//! as in [`crate::oprf`]. A sealed contact is refused above
//! [`MAX_SEALED_BYTES`] before any work.
//!
//! # Layout
//! - `shamir`: dealing, Lagrange coefficients and the public-share check;
//! - `key`: the key texts ([`ThresholdPublicKey`], [`SharePublicKey`],
//!   [`KeyShare`]);
//! - `node`: the node's partial evaluation;
//! - `client`: blinding, checking and combining, [`ThresholdClient`];
//! - `secret`: what an output gives its holder, and sealing.

mod client;
mod key;
mod node;
mod secret;
mod shamir;

#[cfg(test)]
mod tests;

pub use client::ThresholdClient;
pub use key::{KeyShare, SharePublicKey, ThresholdPublicKey};
pub use node::evaluate_partial;
pub use secret::{DeconflictionSecret, Pseudonym, SealKey};
pub use shamir::{check_public_shares, deal};

use crate::oprf::OprfError;

/// First words of a key share file, followed by `<index> <64 hex>`; names the
/// version and the suite.
pub const SHARE_FILE_PREFIX: &str = "fedq-toprf-share v1 ristretto255-sha512 ";
/// Most bytes of a sealed contact, checked before it is opened: a contact is
/// a few hundred bytes of text, and nothing untrusted is copied beyond this.
pub const MAX_SEALED_BYTES: usize = 4096;
/// Most nodes, hence the largest share index. A federation is a handful of
/// agencies; the bound keeps indices in one byte and [`check_public_shares`]
/// (quadratic in the worst case) well under a second.
pub const MAX_NODES: u16 = 255;

/// Errors of threshold OPRF keys, evaluations and sealed contacts.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ToprfError {
    /// The dealer was asked for something other than `1 <= t <= n <= 255`.
    #[error(
        "a threshold key needs 1 <= threshold <= nodes <= {MAX_NODES}, got {threshold} of {nodes}"
    )]
    ThresholdRange {
        /// Threshold asked for.
        threshold: u16,
        /// Nodes asked for.
        nodes: u16,
    },
    /// A key share file text is not ours, or its index or scalar is invalid.
    #[error("a threshold key share must be `{}` followed by an index (1 to {MAX_NODES}) and 64 hex characters of a valid scalar", SHARE_FILE_PREFIX.trim_end())]
    ShareFormat,
    /// A public share is not `<index>:<64 hex of a valid point>`.
    #[error("a public key share must be `<index>:<64 hex characters of a ristretto255 point>`, index 1 to {MAX_NODES}")]
    PublicShareFormat,
    /// A threshold public key is not `<t>:<64 hex of a valid point>`.
    #[error("a threshold public key must be `<t>:<64 hex characters of a ristretto255 point>`, t 1 to {MAX_NODES}")]
    PublicKeyFormat,
    /// A share index outside 1 to [`MAX_NODES`].
    #[error("share index {0} is outside 1..={MAX_NODES}")]
    ShareIndex(u16),
    /// Fewer shares or partial evaluations than the threshold.
    #[error("{needed} key shares are needed, got {got}")]
    NotEnoughShares {
        /// Shares or partials available.
        got: usize,
        /// The threshold.
        needed: usize,
    },
    /// The same share index appears twice.
    #[error("key share {0} appears twice")]
    DuplicateShare(u16),
    /// A public share does not lie on the polynomial of the first `t` shares.
    #[error("public key share {0} is inconsistent with the other shares")]
    InconsistentShares(u16),
    /// The public shares do not interpolate to the threshold public key.
    #[error("the public key shares do not interpolate to the threshold public key")]
    KeyMismatch,
    /// An answer for a share index the client did not blind for.
    #[error("no request was blinded for key share {0}")]
    UnknownShare(u16),
    /// A blinded evaluation failed its checks (lengths, counts, points, proof).
    #[error(transparent)]
    Oprf(#[from] OprfError),
    /// A pseudonym is not 32 bytes (64 hex characters).
    #[error("a pseudonym must be 32 bytes (64 hex characters)")]
    PseudonymFormat,
    /// A sealed contact shorter than nonce and tag, or over [`MAX_SEALED_BYTES`].
    #[error("a sealed contact has {0} bytes, expected 28 to {MAX_SEALED_BYTES}")]
    SealedLength(usize),
    /// A sealed contact does not open: wrong key, or tampered with.
    #[error("the sealed contact does not open under this key (wrong key or tampered)")]
    Open,
}
