//! The client's side: blinding one batch of identifiers for several nodes,
//! checking each node's answer and combining `t` of them.

use std::fmt;

use rand::rngs::OsRng;
use voprf::{Group, VoprfClient};
use zeroize::{Zeroize, Zeroizing};

use super::key::{SharePublicKey, ThresholdPublicKey};
use super::secret::DeconflictionSecret;
use super::shamir::{check_distinct, combine, lagrange_at};
use super::ToprfError;
use crate::identifier::{IdentifierKind, NormalForm};
use crate::oprf::server::finalize_hash;
use crate::oprf::wire::{check_batch_size, decode_evaluation, encode_element};
use crate::oprf::{oprf_input, OprfError, Point, Scalar, Suite, WireElement};

/// The client's state for one node: its blinds and, once accepted, its answer.
struct NodeRequest {
    index: u16,
    /// One `voprf` client per item (blind and blinded element), for the proof.
    clients: Vec<VoprfClient<Suite>>,
    /// `r^-1` of each item's blind `r`.
    inverses: Vec<Scalar>,
    /// The node's public share and its checked, still blinded elements
    /// `r·k_i·H(x)`, once accepted.
    answer: Option<(Point, Vec<Point>)>,
}

impl Drop for NodeRequest {
    fn drop(&mut self) {
        self.inverses.zeroize();
        if let Some((_, elements)) = &mut self.answer {
            elements.zeroize();
        }
    }
}

/// A client's threshold request for one batch of items across several nodes,
/// kept until enough answers arrive.
///
/// Each node gets its own fresh blinds, so two nodes comparing what they
/// received cannot tell that it came from the same items. Holds the items'
/// OPRF inputs and blinds: `Debug` shows counts only, and everything is
/// wiped on drop.
pub struct ThresholdClient {
    inputs: Vec<Vec<u8>>,
    nodes: Vec<NodeRequest>,
    /// Positions in `nodes`, in the order their answers were accepted.
    accepted: Vec<usize>,
}

impl Drop for ThresholdClient {
    fn drop(&mut self) {
        self.inputs.iter_mut().for_each(Zeroize::zeroize);
    }
}

impl fmt::Debug for ThresholdClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ThresholdClient({} items, {} nodes, {} accepted)",
            self.inputs.len(),
            self.nodes.len(),
            self.accepted.len()
        )
    }
}

impl ThresholdClient {
    /// Blinds 1 to [`crate::oprf::MAX_BATCH`] items with fresh random blinds
    /// for each share index (distinct, 1 to [`super::MAX_NODES`]); returns the
    /// state to keep and, per index in the order of `indices`, the elements
    /// to send to that node, in item order.
    pub fn blind(
        items: &[(IdentifierKind, &NormalForm)],
        indices: &[u16],
    ) -> Result<(Self, Vec<Vec<WireElement>>), ToprfError> {
        check_batch_size(items.len())?;
        if indices.is_empty() {
            return Err(ToprfError::NotEnoughShares { got: 0, needed: 1 });
        }
        if let Some(&zero) = indices.iter().find(|&&index| index == 0) {
            return Err(ToprfError::ShareIndex(zero));
        }
        check_distinct(indices.iter().copied())?;
        let inputs: Vec<Vec<u8>> = items
            .iter()
            .map(|(kind, normal)| oprf_input(*kind, normal))
            .collect();
        let mut state = Self {
            inputs,
            nodes: Vec::with_capacity(indices.len()),
            accepted: Vec::with_capacity(indices.len()),
        };
        let mut wire = Vec::with_capacity(indices.len());
        for &index in indices {
            let (request, elements) = blind_for(index, &state.inputs)?;
            state.nodes.push(request);
            wire.push(elements);
        }
        Ok((state, wire))
    }

    /// Checks node `share.index()`'s answer (one element per item, each a
    /// valid point, the batch proof against `share`) and keeps it for
    /// [`ThresholdClient::finish`]. Refuses an index this request was not
    /// blinded for, and one already accepted; a refused answer leaves the
    /// state as it was, so another node's answer can still be accepted.
    pub fn accept<B: AsRef<[u8]>>(
        &mut self,
        share: &SharePublicKey,
        evaluated: &[B],
        proof: &[u8],
    ) -> Result<(), ToprfError> {
        let index = share.index();
        let position = self
            .nodes
            .iter()
            .position(|node| node.index == index)
            .ok_or(ToprfError::UnknownShare(index))?;
        let node = &self.nodes[position];
        if node.answer.is_some() {
            return Err(ToprfError::DuplicateShare(index));
        }
        let (messages, proof) = decode_evaluation(self.inputs.len(), evaluated, proof)?;
        // Used for its proof check, which it does before returning: its
        // (lazy) outputs would be `k_i`'s own OPRF outputs, of no use here,
        // and are dropped unevaluated.
        let _unused_outputs = VoprfClient::batch_finalize(
            &self.inputs,
            &node.clients,
            &messages,
            &proof,
            *share.point(),
        )
        .map_err(|error| match error {
            voprf::Error::ProofVerification => OprfError::ProofVerification,
            _ => OprfError::CountMismatch {
                expected: self.inputs.len(),
                got: messages.len(),
            },
        })?;
        // Already decoded once by `decode_evaluation`; `voprf` keeps the
        // point of an `EvaluationElement` to itself.
        let elements = evaluated
            .iter()
            .enumerate()
            .map(|(index, bytes)| {
                <Suite as Group>::deserialize_elem(bytes.as_ref())
                    .map_err(|_| OprfError::InvalidElement { index })
            })
            .collect::<Result<Vec<Point>, OprfError>>()?;
        self.nodes[position].answer = Some((*share.point(), elements));
        self.accepted.push(position);
        Ok(())
    }

    /// Number of node answers accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.len()
    }

    /// Combines the first `t` accepted answers and finalises: one secret per
    /// item, in item order. Each item's element is
    /// `Σ (λ_i·r_i^-1)·E_i = Σ λ_i·k_i·H(x) = k·H(x)` (one multiplication per
    /// node and item), then the RFC 9497 `Finalize` hash, so the output is
    /// the VOPRF output under the unshared key `k`.
    ///
    /// Refuses fewer than `t` answers, and answers whose public shares do not
    /// interpolate to `K` (shares that [`super::check_public_shares`] would
    /// have refused).
    pub fn finish(
        self,
        public: &ThresholdPublicKey,
    ) -> Result<Vec<DeconflictionSecret>, ToprfError> {
        let needed = usize::from(public.threshold());
        if self.accepted.len() < needed {
            return Err(ToprfError::NotEnoughShares {
                got: self.accepted.len(),
                needed,
            });
        }
        let chosen: Vec<(&NodeRequest, &Point, &[Point])> = self.accepted[..needed]
            .iter()
            .filter_map(|&position| {
                let node = &self.nodes[position];
                let (key, elements) = node.answer.as_ref()?;
                Some((node, key, elements.as_slice()))
            })
            .collect();
        let indices: Vec<u16> = chosen.iter().map(|(node, _, _)| node.index).collect();
        let lambdas = lagrange_at(0, &indices);
        if combine(&lambdas, chosen.iter().map(|(_, key, _)| *key)) != *public.point() {
            return Err(ToprfError::KeyMismatch);
        }
        let secrets = self
            .inputs
            .iter()
            .enumerate()
            .map(|(item, input)| {
                let element: Zeroizing<Point> = Zeroizing::new(
                    chosen
                        .iter()
                        .zip(&lambdas)
                        .map(|((node, _, elements), lambda)| {
                            let factor = Zeroizing::new(lambda * node.inverses[item]);
                            elements[item] * *factor
                        })
                        .sum(),
                );
                let bytes = Zeroizing::new(element.compress().to_bytes());
                let output = Zeroizing::new(finalize_hash(input, &bytes));
                DeconflictionSecret::from_output(output.as_slice())
            })
            .collect();
        Ok(secrets)
    }
}

/// One node's blinds for `inputs`: a fresh blind per item.
fn blind_for(
    index: u16,
    inputs: &[Vec<u8>],
) -> Result<(NodeRequest, Vec<WireElement>), ToprfError> {
    let mut request = NodeRequest {
        index,
        clients: Vec::with_capacity(inputs.len()),
        inverses: Vec::with_capacity(inputs.len()),
        answer: None,
    };
    let mut wire = Vec::with_capacity(inputs.len());
    for input in inputs {
        // Non-zero, so invertible; `deterministic_blind_unchecked` only
        // skips the draw, not the input checks.
        let blind = Zeroizing::new(<Suite as Group>::random_scalar(&mut OsRng));
        let blinded = VoprfClient::<Suite>::deterministic_blind_unchecked(input, *blind)
            .map_err(|_| OprfError::InputLength)?;
        wire.push(encode_element(&blinded.message.serialize()));
        request.clients.push(blinded.state);
        request.inverses.push(blind.invert());
    }
    Ok((request, wire))
}
