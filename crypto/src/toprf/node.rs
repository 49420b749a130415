//! The node's side: a partial evaluation under its key share.

use super::key::KeyShare;
use crate::oprf::{BlindEvaluation, OprfError};

/// Node `i`'s answer to a threshold request: `k_i·B` for each blinded element
/// `B`, in order, with an RFC 9497 batch proof against its public share `K_i`.
///
/// This is exactly [`crate::oprf::evaluate_blinded`] with `k_i` as the key,
/// with the same checks (1 to [`crate::oprf::MAX_BATCH`] elements, each 32 bytes of a
/// valid non-identity point). The node learns nothing about the identifiers,
/// and its answer alone gives the client nothing it could use: only `t`
/// partials combined make an output.
pub fn evaluate_partial<B: AsRef<[u8]>>(
    share: &KeyShare,
    blinded: &[B],
) -> Result<BlindEvaluation, OprfError> {
    crate::oprf::server::blind_evaluate_with(share.server(), blinded)
}
