//! Encrypted membership lookups: TFHE without bootstrapping.
//!
//! # Protocol
//! 1. The requester makes a GLWE secret key and a compact public key
//!    ([`keys`]); the secret key never leaves its machine.
//! 2. Per item and per node, the requester obtains the node's OPRF output of the
//!    identifier ([`crate::oprf`], blinded), and sends that node the kind, the
//!    bucket in clear, and the tag encrypted under its key. In a batch, up to
//!    three items' every bit goes into one seeded GLWE (format 4,
//!    [`packed`]); a lone item sends its 11 low bits as a seeded GLWE of
//!    `Δ · X^-low` and its other bits packed into another (format 3,
//!    [`compress`]). Nodes still accept seeded GGSW ciphertexts (formats 1
//!    and 2, [`query`]). Formats 3 and 4 need the requester's one-time
//!    expansion key, registered with its public key.
//! 3. The node expands a format 3 or 4 tag into the GGSWs of its bits. It
//!    multiplies the low bits' GLWE (formats 2 and 3) or an encryption of Δ
//!    (formats 1 and 4) by the query's bits top-down over half of the high
//!    bits, one encryption per pattern that the bucket's padded candidate
//!    tags share; each leaf sums its tags' patterns rotated by their low
//!    parts; a CMux tree pruned to the leaves decides the other high bits,
//!    and formats 1 and 4 rotate its result by `X^-low` with the low bits'
//!    GGSWs ([`evaluate`]). The node re-randomises the result under the
//!    requester's public key ([`answer`]).
//! 4. The coordinator adds the nodes' answers; the requester decrypts the sum:
//!    the number of jurisdictions holding the identifier.
//!
//! # Untrusted input (Guarantee 8)
//! tfhe trusts the fields of its objects: a seeded GGSW list whose seed starts
//! late, or that holds no GGSW, makes its decompression `unwrap` an error on
//! the node's rayon pool. So no tfhe object is ever deserialised from a peer:
//! the `honest` module decodes plain mirrors, refuses every field that is not
//! the value an honest client sends ([`LookupError::UnexpectedField`]), and
//! only then builds the object from [`params::PARAMETERS`].
//!
//! # Residual leak (Guarantee 7)
//! The requester holds the secret key, so it sees a ciphertext's noise, not only
//! its decryption. Re-randomisation replaces the mask (a function of the query,
//! the node's table and, below the padding, its dummies) by a fresh one, which
//! is uncorrelated with it and with other answers' masks. The evaluation noise
//! (standard deviation ~2^48.9-2^49.3 with 28-bit tags in format 4, 2^47.6
//! in format 3, 2^45.5 in format 2: a function of the GGSW noise and the
//! bucket's real tags; dummies perturb it through rounding ties but do not
//! hide it) is flooded by uniform noise on
//! [-B, B], B as large as the federation's size allows
//! ([`params::CountEncoding`]: the n answers the coordinator adds share Δ/2,
//! so B runs from 2^61 for one node and 2^59 for two or three, through 2^55
//! for eight and 2^51 for 32 to 45, to 2^48 for 64, the largest federation,
//! for packed answers; each answer is flooded for its own format's noise
//! ([`params::NoiseBudget`]), so uncompressed and compressed answers get
//! 2^49 at 64 nodes and up to 2^51 at 46 to 63).
//! That is partial: one
//! answer's statistical distance between two tables is about |e0 - e1| / 2B,
//! where a proof would need 2^-40; the 64-bit modulus has no room for more
//! (see DESIGN.md, "Where lookup speed comes from"). A requester that can
//! name two candidate contents of a bucket computes both noises itself and
//! knows which one answered whenever an answer falls outside the other's band.
//! Measured for tables that differ in one entry that does not
//! match (`leak_tests`, 2026-12-03, two runs of four queries each since the
//! evaluation shares indicators; before, in parentheses), of 8,000 answers:
//!
//! | format | 3 nodes (B = 2^59) | 64 nodes |
//! |---|---|---|
//! | 4 (batches) | 2-12 (5-8) | 5,848-6,116 (6,846) (B = 2^48) |
//! | 3 (single items) | 2 (0-4) | 1,604-2,144 (976) (B = 2^49) |
//! | 2 (watches, uncompressed) | 1 (0-1) | 488-726 (448) (B = 2^49) |
//!
//! Each figure is what the gaps |e0 - e1| of that run's four fresh queries
//! predict (the test checks it), and gaps vary by a few bits from query to
//! query, so one run is a sample, not a bound. Format 3's 64-node figure
//! came out higher in both runs than its one earlier run.
//!
//! At three nodes thousands of answers about one bucket tell the tables
//! apart; at 64 nodes most single answers to a packed query do, and a
//! federation of 32 to 45 floods eight times more. Packing three items
//! into one GLWE costs eight expansion levels and the low bits' 11 CMuxes:
//! the largest noise, and half the flooding at 64 nodes, for an upload per
//! item 7 times smaller than format 3's. A federation that wants the
//! smaller leak chooses less compression for all its parties
//! (`compression` in its file's `[parameters]`). Generic tests on the phase errors of 600 answers
//! see nothing at three nodes and come close at 64 (z of the means up to 3.2
//! against 4.4). Without candidates, the requester learns the
//! noise value of a full bucket from ~1,000 answers to one query to about
//! 2B/1,000: 2^47-2^50 at three nodes, 2^33-2^39 at 64: a signal about the
//! bucket's tags. A federation's size is public and fixed by its file, and a
//! node takes it from the envelope's audience (checked to be exactly the
//! federation's nodes, each once), so a requester cannot ask for less
//! flooding than its federation has.
//!
//! Why that is acceptable: tags are per-node OPRF outputs ([`crate::oprf`]),
//! pseudorandom to everyone but the node. Whatever the noise reveals is a
//! function of tags alone, and turning a tag back into an identifier, or naming
//! the candidate tables above, takes one blinded evaluation by that node per
//! guessed identifier: each passes the node's policy, counts against its
//! per-requester hourly limit and is audited, as are the thousands of lookups
//! the distinguisher needs (the same limit, metered apart). So the attack is
//! bounded by the node's rate limits and visible to its oversight instead of
//! free. `leak_tests` checks the masks, measures these figures, and keeps the
//! known-candidates distinguisher as an ignored test that fails: the leak it
//! shows is real once tags are known. The bucket index is the one declared
//! leak to the node.
//!
//! Count, not which: a requester learns how many jurisdictions hold an
//! identifier, because every node's answer is added before it decrypts. Nodes
//! enforce the "every" (an envelope must address every node of the
//! federation, and the coordinator's sum covers them), which stops an honest
//! client with a partial federation file and a coordinator replaying an
//! envelope elsewhere. Against a *malicious* requester it does not hold: the
//! requester chooses its own encrypted tags, so tags that match nothing
//! (decoys) at every node but one single that node's answer out. Closing it
//! needs each node to check that its tag encrypts the OPRF output of the
//! identifier the others were asked about (a zero-knowledge proof over the
//! tag encryptions), which fedq does not have.

pub mod answer;
pub mod compress;
pub mod evaluate;
mod honest;
pub mod keys;
pub mod packed;
pub mod params;
pub mod query;
pub(crate) mod wire;

pub use answer::EncryptedCount;
pub use compress::{CompressedTag, ExpansionKey, PreparedExpansionKey};
pub use evaluate::{evaluate, EvalStats, PreparedTag};
pub use keys::{generate_keys, FhePublicKey, FheSecretKey, KeyId};
pub use packed::PackedTags;
pub use params::{CountEncoding, NoiseBudget};
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
    /// A federation larger than the count's encoding can add up.
    #[error("a federation of {nodes} nodes: lookups add up at most {max}")]
    FederationSize {
        /// Nodes named.
        nodes: usize,
        /// [`params::MAX_NODES`].
        max: usize,
    },
    /// A field holds a value that no honest peer sends (a parameter, or a
    /// generator seed that does not start where the client's does): refused
    /// before tfhe, which trusts such fields, is given the object.
    #[error("{object}: unexpected {field}")]
    UnexpectedField {
        /// The object decoded, e.g. `encrypted tag`.
        object: &'static str,
        /// The field refused, e.g. `compression seed start`.
        field: &'static str,
    },
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod leak_tests;
#[cfg(test)]
mod tests;
