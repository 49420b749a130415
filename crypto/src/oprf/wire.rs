//! The bytes of OPRF elements and proofs, and the checks on a peer's bytes.
//!
//! Both directions are untrusted (a requester's blinded elements at the node,
//! the node's answer at the client), so every decoder here checks counts and
//! lengths before it allocates, and leaves point and scalar validity to
//! `voprf`'s deserialisation, which refuses non-canonical encodings and the
//! identity without panicking.

use voprf::{BlindedElement, EvaluationElement, Proof};

use super::{OprfError, Suite, WireElement, ELEMENT_BYTES, MAX_BATCH, PROOF_BYTES};

/// Refuses empty batches and batches over [`MAX_BATCH`].
pub(crate) fn check_batch_size(len: usize) -> Result<(), OprfError> {
    match len {
        0 => Err(OprfError::EmptyBatch),
        got if got > MAX_BATCH => Err(OprfError::BatchTooLarge {
            got,
            max: MAX_BATCH,
        }),
        _ => Ok(()),
    }
}

/// Checks the length of element `index` and returns it as an array.
fn element_bytes(index: usize, bytes: &[u8]) -> Result<&[u8; ELEMENT_BYTES], OprfError> {
    bytes.try_into().map_err(|_| OprfError::ElementLength {
        index,
        len: bytes.len(),
    })
}

/// Each element's length checked, then `deserialize`d; the first refused
/// names its index.
fn decode_elements<B: AsRef<[u8]>, T>(
    elements: &[B],
    deserialize: impl Fn(&[u8]) -> Option<T>,
) -> Result<Vec<T>, OprfError> {
    elements
        .iter()
        .enumerate()
        .map(|(index, bytes)| {
            let bytes = element_bytes(index, bytes.as_ref())?;
            deserialize(bytes).ok_or(OprfError::InvalidElement { index })
        })
        .collect()
}

/// Copies one of `voprf`'s own serialised elements (always [`ELEMENT_BYTES`]).
pub(crate) fn encode_element(serialized: &[u8]) -> WireElement {
    let mut out = [0u8; ELEMENT_BYTES];
    out.copy_from_slice(serialized);
    out
}

/// A requester's blinded elements, at the node: 1 to [`MAX_BATCH`] of them,
/// each a valid non-identity point.
pub(crate) fn decode_blinded<B: AsRef<[u8]>>(
    blinded: &[B],
) -> Result<Vec<BlindedElement<Suite>>, OprfError> {
    check_batch_size(blinded.len())?;
    decode_elements(blinded, |bytes| {
        BlindedElement::<Suite>::deserialize(bytes).ok()
    })
}

/// A node's answer, at the client: exactly `expected` evaluated elements (the
/// number blinded, itself at most [`MAX_BATCH`]) and a [`PROOF_BYTES`] proof.
pub(crate) fn decode_evaluation<B: AsRef<[u8]>>(
    expected: usize,
    evaluated: &[B],
    proof: &[u8],
) -> Result<(Vec<EvaluationElement<Suite>>, Proof<Suite>), OprfError> {
    if evaluated.len() != expected {
        return Err(OprfError::CountMismatch {
            expected,
            got: evaluated.len(),
        });
    }
    let elements = decode_elements(evaluated, |bytes| {
        EvaluationElement::<Suite>::deserialize(bytes).ok()
    })?;
    if proof.len() != PROOF_BYTES {
        return Err(OprfError::ProofFormat);
    }
    let proof = Proof::<Suite>::deserialize(proof).map_err(|_| OprfError::ProofFormat)?;
    Ok((elements, proof))
}
