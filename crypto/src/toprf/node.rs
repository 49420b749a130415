//! The node's side: a partial evaluation under its key share.

use rand::rngs::OsRng;

use super::key::KeyShare;
use crate::oprf::wire::{decode_blinded, encode_element};
use crate::oprf::{BlindEvaluation, OprfError, MAX_BATCH, PROOF_BYTES};

/// Node `i`'s answer to a threshold request: `k_i·B` for each blinded element
/// `B`, in order, with an RFC 9497 batch proof against its public share `K_i`.
///
/// This is exactly [`crate::oprf::evaluate_blinded`] with `k_i` as the key,
/// with the same checks (1 to [`MAX_BATCH`] elements, each 32 bytes of a
/// valid non-identity point). The node learns nothing about the identifiers,
/// and its answer alone gives the client nothing it could use: only `t`
/// partials combined make an output.
pub fn evaluate_partial<B: AsRef<[u8]>>(
    share: &KeyShare,
    blinded: &[B],
) -> Result<BlindEvaluation, OprfError> {
    let elements = decode_blinded(blinded)?;
    let result = share
        .server()
        .batch_blind_evaluate(&mut OsRng, &elements)
        // `voprf` only refuses batches over u16::MAX, far above MAX_BATCH.
        .map_err(|_| OprfError::BatchTooLarge {
            got: elements.len(),
            max: MAX_BATCH,
        })?;
    let mut proof = [0u8; PROOF_BYTES];
    proof.copy_from_slice(&result.proof.serialize());
    Ok(BlindEvaluation {
        elements: result
            .messages
            .iter()
            .map(|message| encode_element(&message.serialize()))
            .collect(),
        proof,
    })
}
