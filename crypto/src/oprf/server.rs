//! The node's side: its direct evaluation of its own identifiers (import) and
//! its blinded evaluation of a client's elements.

use rand::rngs::OsRng;
use rayon::prelude::*;
use sha2::{Digest, Sha512};
use voprf::Group;

use super::key::NodeOprfKey;
use super::wire::{decode_blinded, encode_element};
use super::{
    fingerprint_of_output, oprf_input, OprfError, Point, Suite, WireElement, ELEMENT_BYTES,
    MAX_BATCH, PROOF_BYTES,
};
use crate::fingerprint::Fingerprint;
use crate::identifier::{IdentifierKind, NormalForm};

/// RFC 9497 context string of VOPRF mode (0x01) for ristretto255-SHA512.
const CONTEXT: &[u8] = b"OPRFV1-\x01-ristretto255-SHA512";
/// Domain separation tag of `HashToGroup`, as the parts `voprf` also uses.
const HASH_TO_GROUP_DST: [&[u8]; 2] = [b"HashToGroup-", CONTEXT];
/// Items per chunk of [`node_fingerprints`]: one batched compression each.
pub(super) const IMPORT_CHUNK: usize = 256;

/// RFC 9497 `Finalize` hash with the node's own evaluated element:
/// `SHA-512(I2OSP(len(input), 2) || input || I2OSP(32, 2) || element || "Finalize")`.
pub(crate) fn finalize_hash(input: &[u8], element: &[u8; 32]) -> [u8; 64] {
    // Normal forms of `normalise` are a few hundred bytes, far below the RFC's
    // 65,535-byte bound, but a store's text (`NormalForm::from_stored`) is not
    // checked. An over-long input gets a value no client can obtain (RFC 9497
    // clients refuse to finalise such inputs) instead of a panic mid-import.
    let length = u16::try_from(input.len()).unwrap_or(u16::MAX);
    Sha512::new()
        .chain_update(length.to_be_bytes())
        .chain_update(input)
        .chain_update((ELEMENT_BYTES as u16).to_be_bytes())
        .chain_update(element)
        .chain_update(b"Finalize")
        .finalize()
        .into()
}

/// RFC 9497 OPRF outputs of `inputs` under `key`, computed directly (no
/// blinding), for one chunk: `HashToGroup`, a constant-time multiplication by
/// `k/2`, then one batched `double_and_compress` (`2·(k/2)·P = k·P`) in place of
/// one inverse square root per point.
pub(super) fn direct_outputs(key: &NodeOprfKey, inputs: &[Vec<u8>]) -> Vec<[u8; 64]> {
    let halves: Vec<Point> = inputs
        .iter()
        .map(|input| hash_to_group(input) * key.half)
        .collect();
    // `double_and_compress_batch` needs curve25519-dalek's `alloc` feature, which
    // this crate's own `ed25519-dalek` (default features) always turns on.
    let elements = Point::double_and_compress_batch(&halves);
    inputs
        .iter()
        .zip(&elements)
        .map(|(input, element)| finalize_hash(input, element.as_bytes()))
        .collect()
}

/// RFC 9497 `HashToGroup` (hash_to_ristretto255 with expand_message_xmd/SHA-512).
///
/// The identity, which the RFC refuses, would take a SHA-512 preimage-style
/// break to reach; it is not checked for here.
fn hash_to_group(input: &[u8]) -> Point {
    <Suite as Group>::hash_to_curve::<Sha512>(&[input], &HASH_TO_GROUP_DST)
        .expect("expand_message_xmd takes any input under a short DST")
}

/// The node's own fingerprint of one normalised identifier (the OPRF output of
/// `kind || 0 || normal_form` under its key), equal to what a client obtains
/// through [`super::BlindedItems`] for the same identifier.
pub fn node_fingerprint(
    key: &NodeOprfKey,
    kind: IdentifierKind,
    normal: &NormalForm,
) -> Fingerprint {
    let input = oprf_input(kind, normal);
    fingerprint_of_output(&direct_outputs(key, std::slice::from_ref(&input))[0])
}

/// [`node_fingerprint`] of many identifiers, in order, on the rayon pool: the
/// import path.
pub fn node_fingerprints(
    key: &NodeOprfKey,
    items: &[(IdentifierKind, &NormalForm)],
) -> Vec<Fingerprint> {
    items
        .par_chunks(IMPORT_CHUNK)
        .flat_map_iter(|chunk| {
            let inputs: Vec<Vec<u8>> = chunk
                .iter()
                .map(|(kind, normal)| oprf_input(*kind, normal))
                .collect();
            direct_outputs(key, &inputs)
                .into_iter()
                .map(|output| fingerprint_of_output(&output))
        })
        .collect()
}

/// A node's answer to a blinded call: one element per blinded element, in
/// order, and the batch proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlindEvaluation {
    /// Evaluated elements, [`ELEMENT_BYTES`] each.
    pub elements: Vec<WireElement>,
    /// The batch proof that they were evaluated under the node's public key.
    pub proof: [u8; PROOF_BYTES],
}

/// The node's side of a blinded call: checks every element (exactly
/// [`ELEMENT_BYTES`], a valid non-identity point, 1 to [`MAX_BATCH`] of them),
/// multiplies each by its key and proves it did so.
///
/// The node learns nothing about the identifiers behind the elements.
pub fn evaluate_blinded<B: AsRef<[u8]>>(
    key: &NodeOprfKey,
    blinded: &[B],
) -> Result<BlindEvaluation, OprfError> {
    blind_evaluate_with(&key.server, blinded)
}

/// A blinded evaluation under `server`'s key with its batch proof: the one
/// body of [`evaluate_blinded`] and of a threshold node's partial evaluation
/// (`crate::toprf::evaluate_partial`), with the same checks.
pub(crate) fn blind_evaluate_with<B: AsRef<[u8]>>(
    server: &voprf::VoprfServer<Suite>,
    blinded: &[B],
) -> Result<BlindEvaluation, OprfError> {
    let elements = decode_blinded(blinded)?;
    let result = server
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
