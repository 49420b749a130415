//! The client's side: blinding identifiers for one node and unblinding that
//! node's checked answer into fingerprints.

use std::fmt;

use rand::rngs::OsRng;
use voprf::VoprfClient;
use zeroize::Zeroize;

use super::key::NodeOprfPublicKey;
use super::wire::{check_batch_size, decode_evaluation, encode_element};
use super::{fingerprint_of_output, oprf_input, OprfError, Suite, WireElement};
use crate::fingerprint::Fingerprint;
use crate::identifier::{IdentifierKind, NormalForm};

/// A client's blinded batch, kept until the node's answer arrives.
///
/// Holds the identifiers' OPRF inputs and blinds: `Debug` shows the count only
/// and everything is wiped on drop. One `BlindedItems` serves one node.
pub struct BlindedItems {
    inputs: Vec<Vec<u8>>,
    clients: Vec<VoprfClient<Suite>>,
}

impl Drop for BlindedItems {
    fn drop(&mut self) {
        self.inputs.iter_mut().for_each(Zeroize::zeroize);
    }
}

impl fmt::Debug for BlindedItems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlindedItems({} items)", self.inputs.len())
    }
}

impl BlindedItems {
    /// Blinds 1 to [`super::MAX_BATCH`] identifiers with fresh random blinds; returns
    /// the state to keep and the elements to send, in item order.
    pub fn blind(
        items: &[(IdentifierKind, &NormalForm)],
    ) -> Result<(Self, Vec<WireElement>), OprfError> {
        check_batch_size(items.len())?;
        let mut state = Self {
            inputs: Vec::with_capacity(items.len()),
            clients: Vec::with_capacity(items.len()),
        };
        let mut wire = Vec::with_capacity(items.len());
        for (kind, normal) in items {
            let input = oprf_input(*kind, normal);
            let blinded = VoprfClient::<Suite>::blind(&input, &mut OsRng)
                .map_err(|_| OprfError::InputLength)?;
            wire.push(encode_element(&blinded.message.serialize()));
            state.clients.push(blinded.state);
            state.inputs.push(input);
        }
        Ok((state, wire))
    }

    /// Number of items blinded.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Always false: a batch holds at least one item.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Checks the node's answer (one element per item, the batch proof against
    /// `node`'s public key) and unblinds it into the items' fingerprints, in
    /// item order.
    pub fn finalize<B: AsRef<[u8]>>(
        self,
        node: &NodeOprfPublicKey,
        evaluated: &[B],
        proof: &[u8],
    ) -> Result<Vec<Fingerprint>, OprfError> {
        let (messages, proof) = decode_evaluation(self.inputs.len(), evaluated, proof)?;
        let outputs =
            VoprfClient::batch_finalize(&self.inputs, &self.clients, &messages, &proof, node.point)
                .map_err(|error| match error {
                    voprf::Error::ProofVerification => OprfError::ProofVerification,
                    _ => OprfError::CountMismatch {
                        expected: self.inputs.len(),
                        got: messages.len(),
                    },
                })?;
        outputs
            .map(|output| {
                output
                    .map(|output| fingerprint_of_output(&output))
                    .map_err(|_| OprfError::InputLength)
            })
            .collect()
    }
}
