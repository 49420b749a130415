//! Per-node oblivious PRF (RFC 9497, VOPRF mode, ciphersuite `ristretto255-SHA512`).
//!
//! Each node holds its own [`NodeOprfKey`]. At import it stores, for every
//! normalised identifier, the OPRF output of `kind || 0 || normal_form`: its
//! fingerprint ([`crate::fingerprint`]). A requester obtains the same output for
//! its own identifiers by a blinded evaluation, so the node learns nothing about
//! them, and a requester cannot compute a node's bucket or tag without that
//! node's help:
//!
//! 1. client: [`BlindedItems::blind`] → blinded elements (32 bytes each) to send;
//! 2. node: [`evaluate_blinded`] → one evaluated element per blinded element plus
//!    one batch proof (64 bytes) that it used the key behind its
//!    [`NodeOprfPublicKey`];
//! 3. client: [`BlindedItems::finalize`] checks the proof and unblinds →
//!    [`Fingerprint`]s, from which [`Fingerprint::bucket`] and
//!    [`Fingerprint::tag`] are taken.
//!
//! The node computes its own outputs directly with the secret key
//! ([`node_fingerprint`], or [`node_fingerprints`] for an import batch, which is
//! parallel and shares the point compressions of a whole chunk).
//!
//! # Fingerprint bytes
//!
//! The OPRF output is 64 bytes (SHA-512); the fingerprint is its first 32 bytes.
//! SHA-512 output truncated is still a PRF output, and every later step (bucket,
//! tag) goes through the one [`Fingerprint`] code path.
//!
//! # Why VOPRF rather than OPRF
//!
//! The verifiable mode lets the client check, with one batch proof per call,
//! that the node evaluated under the key whose public part it committed to
//! (its [`OprfKeyId`] is what a registry lists and rotates). A node that
//! answered under another key would otherwise silently make every lookup miss,
//! or answer different requesters under different keys to tell them apart.
//! Measured (thread CPU time) on the 2-core development machine for a batch of
//! 48 items, the proof costs the node about 2.5 ms (4.0–4.4 ms per batch
//! instead of 1.6 ms) and the client about 4 ms (6.6–6.9 ms to check and
//! unblind instead of 2.7 ms), both under the 10 ms per batch we allowed for
//! it; blinding (2.2 ms) and the node's direct evaluation at import cost the
//! same in both modes. The two modes use different context strings, so the
//! outputs of one never match the other: the choice is made once, here.
//!
//! # Cost
//!
//! The node's direct evaluation takes about 46 µs of CPU per identifier on the
//! 2-core development machine (AVX2): `HashToGroup` 11 µs (two Elligator
//! maps), the constant-time scalar multiplication 34 µs, the batched
//! compression 1 µs. `voprf`'s own `evaluate` takes 52–57 µs: the difference
//! is mostly each point's own compression (an inverse square root, 5–6 µs),
//! which the batch replaces by a share of one batched inversion. A
//! 1,000,000-identifier import thus needs about 46 CPU-seconds of OPRF work,
//! some 23 s of wall time on two otherwise idle cores.
//!
//! # Limits
//!
//! A blinded call carries between 1 and [`MAX_BATCH`] elements, each exactly
//! [`ELEMENT_BYTES`] long; points that do not decode, and the identity, are
//! refused (by `voprf`'s deserialisation) before any work is done.

use std::fmt;
use std::str::FromStr;

use rand::rngs::OsRng;
use rayon::prelude::*;
use sha2::{Digest, Sha256, Sha512};
use voprf::{
    BlindedElement, EvaluationElement, Group, Proof, Ristretto255, VoprfClient, VoprfServer,
};
use zeroize::{Zeroize, Zeroizing};

use crate::fingerprint::Fingerprint;
use crate::identifier::{IdentifierKind, NormalForm};

/// The RFC 9497 ciphersuite: ristretto255 with SHA-512.
type Suite = Ristretto255;
/// A ristretto255 point (`curve25519_dalek::RistrettoPoint`).
type Point = <Ristretto255 as Group>::Elem;
/// A ristretto255 scalar (`curve25519_dalek::Scalar`).
type Scalar = <Ristretto255 as Group>::Scalar;

/// Bytes of one blinded or evaluated element on the wire (a compressed point).
pub const ELEMENT_BYTES: usize = 32;
/// Bytes of the batch proof on the wire (two scalars).
pub const PROOF_BYTES: usize = 64;
/// Most elements in one blinded evaluation call. One element costs the node
/// about 0.1 ms with its share of the proof, so a full call stays near 0.1 s.
pub const MAX_BATCH: usize = 1024;

/// One blinded or evaluated element as sent on the wire.
pub type WireElement = [u8; ELEMENT_BYTES];

/// RFC 9497 context string of VOPRF mode (0x01) for ristretto255-SHA512.
const CONTEXT: &[u8] = b"OPRFV1-\x01-ristretto255-SHA512";
/// Domain separation tag of `HashToGroup`, as the parts `voprf` also uses.
const HASH_TO_GROUP_DST: [&[u8]; 2] = [b"HashToGroup-", CONTEXT];
/// First word of a node OPRF key file; names the version, suite and mode.
const KEY_FILE_PREFIX: &str = "fedq-oprf-key v1 ristretto255-sha512 voprf ";
/// Domain of [`OprfKeyId`].
const KEY_ID_DOMAIN: &[u8] = b"fedq oprf key id v1\0";
/// Items per chunk of [`node_fingerprints`]: one batched compression each.
const IMPORT_CHUNK: usize = 256;

/// Errors of OPRF keys and blinded evaluations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum OprfError {
    /// The key file text is not ours, not hex, or not a canonical non-zero scalar.
    #[error("node OPRF key file must be `{}` followed by 64 hex characters of a valid key", KEY_FILE_PREFIX.trim_end())]
    KeyFormat,
    /// The public key is not 64 hex characters of a valid, non-identity point.
    #[error("node OPRF public key must be 64 hex characters of a valid ristretto255 point")]
    PublicKeyFormat,
    /// A key id is not 16 hex characters.
    #[error("OPRF key id must be 16 hex characters")]
    KeyIdFormat,
    /// A batch carried no element.
    #[error("an OPRF batch needs at least one element")]
    EmptyBatch,
    /// A batch carried more than [`MAX_BATCH`] elements.
    #[error("an OPRF batch holds at most {max} elements, got {got}")]
    BatchTooLarge {
        /// Elements received.
        got: usize,
        /// The limit, [`MAX_BATCH`].
        max: usize,
    },
    /// An element does not have [`ELEMENT_BYTES`] bytes.
    #[error("OPRF element {index} has {len} bytes, expected {ELEMENT_BYTES}")]
    ElementLength {
        /// Position of the element in its batch.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// An element is not the encoding of a ristretto255 point, or is the identity.
    #[error("OPRF element {index} is not a valid ristretto255 point")]
    InvalidElement {
        /// Position of the element in its batch.
        index: usize,
    },
    /// The node answered with a different number of elements than were sent.
    #[error("expected {expected} evaluated OPRF elements, got {got}")]
    CountMismatch {
        /// Elements sent.
        expected: usize,
        /// Elements received.
        got: usize,
    },
    /// The proof is not [`PROOF_BYTES`] bytes of two canonical scalars.
    #[error("the OPRF proof must be {PROOF_BYTES} bytes of two canonical scalars")]
    ProofFormat,
    /// The proof does not show that the node used the key it committed to.
    #[error("the node's OPRF proof does not verify against its public key")]
    ProofVerification,
    /// An identifier is too long for the OPRF (more than 65,533 bytes).
    #[error("identifier too long for the OPRF")]
    InputLength,
}

/// A node's secret OPRF key, drawn from the operating system's generator.
///
/// No `Clone` or `Serialize`; `Debug` shows the key id only; the secret is
/// wiped when dropped. The only way to text is [`NodeOprfKey::to_text`], for the
/// node's key file (written with mode 0600 by the node).
pub struct NodeOprfKey {
    /// The `voprf` server (wipes its scalar on drop).
    server: VoprfServer<Suite>,
    /// The key halved modulo the group order, for [`node_fingerprints`]: the
    /// batched compression of `2·P` needs no inverse square root.
    half: Scalar,
    public: NodeOprfPublicKey,
}

impl Drop for NodeOprfKey {
    fn drop(&mut self) {
        self.half.zeroize();
    }
}

impl fmt::Debug for NodeOprfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeOprfKey({})", self.public.key_id())
    }
}

impl NodeOprfKey {
    /// Draws a fresh key (RFC 9497 `DeriveKeyPair` from a 32-byte OS seed).
    pub fn generate() -> Self {
        let server = VoprfServer::<Suite>::new(&mut OsRng)
            .expect("DeriveKeyPair only fails for over-long seeds or infos");
        Self::from_server(server)
    }

    /// Parses the text written by [`NodeOprfKey::to_text`].
    pub fn from_text(text: &str) -> Result<Self, OprfError> {
        let hex_part = text
            .trim()
            .strip_prefix(KEY_FILE_PREFIX)
            .ok_or(OprfError::KeyFormat)?;
        let mut secret = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(hex_part.trim(), secret.as_mut_slice())
            .map_err(|_| OprfError::KeyFormat)?;
        Self::from_secret(&secret)
    }

    /// Key file text: `fedq-oprf-key v1 ristretto255-sha512 voprf ` and the scalar
    /// in hex (little-endian); a secret, for a file of mode 0600.
    pub fn to_text(&self) -> Zeroizing<String> {
        let secret = secret_bytes(&self.server);
        let mut text = Zeroizing::new(String::with_capacity(KEY_FILE_PREFIX.len() + 64));
        text.push_str(KEY_FILE_PREFIX);
        text.push_str(&Zeroizing::new(hex::encode(*secret)));
        text
    }

    /// The public key, which the client checks the node's proofs against.
    pub fn public_key(&self) -> &NodeOprfPublicKey {
        &self.public
    }

    /// Short id of the public key, for rotation bookkeeping.
    pub fn key_id(&self) -> OprfKeyId {
        self.public.key_id()
    }

    /// Builds a key from its 32-byte scalar (little-endian, canonical, non-zero).
    fn from_secret(secret: &[u8; 32]) -> Result<Self, OprfError> {
        let server =
            VoprfServer::<Suite>::new_with_key(secret).map_err(|_| OprfError::KeyFormat)?;
        Ok(Self::from_server(server))
    }

    fn from_server(server: VoprfServer<Suite>) -> Self {
        let mut secret = <Suite as Group>::deserialize_scalar(&*secret_bytes(&server))
            .expect("voprf serialises its own valid scalar");
        let half = secret * Scalar::from(2u64).invert();
        secret.zeroize();
        let public = NodeOprfPublicKey::from_point(server.get_public_key());
        Self {
            server,
            half,
            public,
        }
    }
}

/// The secret scalar of `server` (its serialisation is `skS || pkS`).
fn secret_bytes(server: &VoprfServer<Suite>) -> Zeroizing<[u8; 32]> {
    let mut serialized = server.serialize();
    let mut secret = Zeroizing::new([0u8; 32]);
    secret.copy_from_slice(&serialized[..32]);
    serialized.as_mut_slice().zeroize();
    secret
}

/// A node's public OPRF key (`pkS`), published so that clients can check proofs.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeOprfPublicKey {
    point: Point,
    bytes: [u8; 32],
}

impl fmt::Debug for NodeOprfPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeOprfPublicKey({})", self.key_id())
    }
}

impl NodeOprfPublicKey {
    fn from_point(point: Point) -> Self {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&<Suite as Group>::serialize_elem(point));
        Self { point, bytes }
    }

    /// Parses the 32-byte encoding; refuses invalid points and the identity.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, OprfError> {
        if bytes.len() != 32 {
            return Err(OprfError::PublicKeyFormat);
        }
        let point =
            <Suite as Group>::deserialize_elem(bytes).map_err(|_| OprfError::PublicKeyFormat)?;
        Ok(Self::from_point(point))
    }

    /// The 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.bytes
    }

    /// Parses 64 hex characters.
    pub fn from_text(text: &str) -> Result<Self, OprfError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| OprfError::PublicKeyFormat)?;
        Self::from_bytes(&bytes)
    }

    /// 64 hex characters.
    pub fn to_text(&self) -> String {
        hex::encode(self.bytes)
    }

    /// First 8 bytes of `SHA-256("fedq oprf key id v1\0" || pkS)`.
    pub fn key_id(&self) -> OprfKeyId {
        let digest = Sha256::new()
            .chain_update(KEY_ID_DOMAIN)
            .chain_update(self.bytes)
            .finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        OprfKeyId(id)
    }
}

/// Short hash of a node's OPRF public key, written as 16 hex characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OprfKeyId([u8; 8]);

impl fmt::Display for OprfKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl FromStr for OprfKeyId {
    type Err = OprfError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut id = [0u8; 8];
        hex::decode_to_slice(s.trim(), &mut id).map_err(|_| OprfError::KeyIdFormat)?;
        Ok(Self(id))
    }
}

/// The OPRF input of an identifier: `kind || 0 || normal_form`.
fn oprf_input(kind: IdentifierKind, normal: &NormalForm) -> Vec<u8> {
    let bytes = normal.as_bytes();
    let mut input = Vec::with_capacity(2 + bytes.len());
    input.extend_from_slice(&[kind.code(), 0]);
    input.extend_from_slice(bytes);
    input
}

/// The fingerprint of a 64-byte OPRF output: its first 32 bytes.
fn fingerprint_of_output(output: &[u8]) -> Fingerprint {
    let mut bytes = [0u8; 32];
    bytes.copy_from_slice(&output[..32]);
    Fingerprint::from_bytes(bytes)
}

/// RFC 9497 `Finalize` hash with the node's own evaluated element:
/// `SHA-512(I2OSP(len(input), 2) || input || I2OSP(32, 2) || element || "Finalize")`.
fn finalize_hash(input: &[u8], element: &[u8; 32]) -> [u8; 64] {
    // Normal forms come from at most MAX_IDENTIFIER_BYTES of raw text, far below
    // the RFC's 65,535-byte bound.
    let length = u16::try_from(input.len()).expect("normal forms are a few hundred bytes at most");
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
fn direct_outputs(key: &NodeOprfKey, inputs: &[Vec<u8>]) -> Vec<[u8; 64]> {
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
/// through [`BlindedItems`] for the same identifier.
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

fn check_batch_size(len: usize) -> Result<(), OprfError> {
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

fn wire_element(serialized: &[u8]) -> WireElement {
    let mut out = [0u8; ELEMENT_BYTES];
    out.copy_from_slice(serialized);
    out
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
    check_batch_size(blinded.len())?;
    let elements = blinded
        .iter()
        .enumerate()
        .map(|(index, bytes)| {
            let bytes = element_bytes(index, bytes.as_ref())?;
            BlindedElement::<Suite>::deserialize(bytes)
                .map_err(|_| OprfError::InvalidElement { index })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let result = key
        .server
        .batch_blind_evaluate(&mut OsRng, &elements)
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
            .map(|message| wire_element(&message.serialize()))
            .collect(),
        proof,
    })
}

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
    /// Blinds 1 to [`MAX_BATCH`] identifiers with fresh random blinds; returns
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
            wire.push(wire_element(&blinded.message.serialize()));
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
        if evaluated.len() != self.inputs.len() {
            return Err(OprfError::CountMismatch {
                expected: self.inputs.len(),
                got: evaluated.len(),
            });
        }
        let messages = evaluated
            .iter()
            .enumerate()
            .map(|(index, bytes)| {
                let bytes = element_bytes(index, bytes.as_ref())?;
                EvaluationElement::<Suite>::deserialize(bytes)
                    .map_err(|_| OprfError::InvalidElement { index })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if proof.len() != PROOF_BYTES {
            return Err(OprfError::ProofFormat);
        }
        let proof = Proof::<Suite>::deserialize(proof).map_err(|_| OprfError::ProofFormat)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::FingerprintParams;
    use crate::identifier::normalise;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn identifiers() -> Result<Vec<(IdentifierKind, NormalForm)>, Box<dyn std::error::Error>> {
        Ok(vec![
            (
                IdentifierKind::Phone,
                normalise(IdentifierKind::Phone, "+33 6 12 34 56 78")?,
            ),
            (
                IdentifierKind::Email,
                normalise(IdentifierKind::Email, "Alice.Example@Example.org")?,
            ),
            (
                IdentifierKind::Iban,
                normalise(IdentifierKind::Iban, "DE89 3704 0044 0532 0130 00")?,
            ),
        ])
    }

    fn refs(items: &[(IdentifierKind, NormalForm)]) -> Vec<(IdentifierKind, &NormalForm)> {
        items.iter().map(|(kind, normal)| (*kind, normal)).collect()
    }

    /// Runs a whole blinded round trip against `node`, checking against `public`.
    fn blinded_round_trip(
        node: &NodeOprfKey,
        public: &NodeOprfPublicKey,
        items: &[(IdentifierKind, &NormalForm)],
    ) -> Result<Vec<Fingerprint>, OprfError> {
        let (state, blinded) = BlindedItems::blind(items)?;
        let answer = evaluate_blinded(node, &blinded)?;
        state.finalize(public, &answer.elements, &answer.proof)
    }

    fn hex_bytes<const N: usize>(text: &str) -> [u8; N] {
        let mut out = [0u8; N];
        hex::decode_to_slice(text, &mut out).expect("test vector hex");
        out
    }

    #[test]
    fn direct_evaluation_matches_rfc_9497_vectors() -> TestResult {
        // RFC 9497 A.1.2 (VOPRF mode, ristretto255-SHA512).
        let seed = [0xa3u8; 32];
        let server = VoprfServer::<Suite>::new_from_seed(&seed, b"test key")
            .map_err(|e| format!("{e:?}"))?;
        let key = NodeOprfKey::from_server(server);
        assert_eq!(
            *secret_bytes(&key.server),
            hex_bytes::<32>("e6f73f344b79b379f1a0dd37e07ff62e38d9f71345ce62ae3a9bc60b04ccd909")
        );
        assert_eq!(
            key.public_key().to_text(),
            "c803e2cc6b05fc15064549b5920659ca4a77b2cca6f04f6b357009335476ad4e"
        );
        let outputs = direct_outputs(&key, &[vec![0x00], vec![0x5a; 17]]);
        assert_eq!(
            outputs[0],
            hex_bytes::<64>(
                "b58cfbe118e0cb94d79b5fd6a6dafb98764dff49c14e1770b566e42402da1a7d\
                 a4d8527693914139caee5bd03903af43a491351d23b430948dd50cde10d32b3c"
            )
        );
        assert_eq!(
            outputs[1],
            hex_bytes::<64>(
                "8a9a2f3c7f085b65933594309041fc1898d42d0858e59f90814ae90571a6df60\
                 356f4610bf816f27afdd84f47719e480906d27ecd994985890e5f539e7ea74b6"
            )
        );
        Ok(())
    }

    #[test]
    fn client_output_equals_the_nodes_direct_evaluation() -> TestResult {
        let key = NodeOprfKey::generate();
        let items = identifiers()?;
        let items = refs(&items);
        let from_client = blinded_round_trip(&key, key.public_key(), &items)?;
        let direct: Vec<Fingerprint> = items
            .iter()
            .map(|(kind, normal)| node_fingerprint(&key, *kind, normal))
            .collect();
        assert_eq!(from_client, direct);
        assert_eq!(node_fingerprints(&key, &items), direct);
        // And both are the `voprf` crate's own server-side evaluation.
        for ((kind, normal), fingerprint) in items.iter().zip(&direct) {
            let output = key
                .server
                .evaluate(&oprf_input(*kind, normal))
                .map_err(|e| format!("{e:?}"))?;
            assert_eq!(*fingerprint, fingerprint_of_output(&output));
        }
        // Bucket and tag come from the shared fingerprint code path.
        let params = FingerprintParams::new(12, 28)?;
        assert_eq!(from_client[0].bucket(params), direct[0].bucket(params));
        assert_eq!(from_client[0].tag(params), direct[0].tag(params));
        Ok(())
    }

    #[test]
    fn batch_import_keeps_order_across_chunks() -> TestResult {
        let key = NodeOprfKey::generate();
        let normals = (0..(IMPORT_CHUNK * 2 + 3))
            .map(|i| normalise(IdentifierKind::Phone, &format!("+3361234{i:04}")))
            .collect::<Result<Vec<_>, _>>()?;
        let items: Vec<_> = normals
            .iter()
            .map(|normal| (IdentifierKind::Phone, normal))
            .collect();
        let batch = node_fingerprints(&key, &items);
        assert_eq!(batch.len(), items.len());
        for (index, (kind, normal)) in items.iter().enumerate().step_by(37) {
            assert_eq!(batch[index], node_fingerprint(&key, *kind, normal));
        }
        Ok(())
    }

    #[test]
    fn two_node_keys_give_different_fingerprints() -> TestResult {
        let (first, second) = (NodeOprfKey::generate(), NodeOprfKey::generate());
        assert_ne!(first.key_id(), second.key_id());
        for (kind, normal) in identifiers()? {
            assert_ne!(
                node_fingerprint(&first, kind, &normal),
                node_fingerprint(&second, kind, &normal)
            );
        }
        // The kind is part of the input.
        let normal = normalise(IdentifierKind::Phone, "+33612345678")?;
        assert_ne!(
            node_fingerprint(&first, IdentifierKind::Phone, &normal),
            node_fingerprint(&first, IdentifierKind::NationalId, &normal)
        );
        Ok(())
    }

    #[test]
    fn blinding_is_randomised() -> TestResult {
        let items = identifiers()?;
        let items = refs(&items);
        let (_, first) = BlindedItems::blind(&items)?;
        let (_, second) = BlindedItems::blind(&items)?;
        assert!(first.iter().zip(&second).all(|(a, b)| a != b));
        Ok(())
    }

    #[test]
    fn malformed_blinded_elements_are_refused() -> TestResult {
        let key = NodeOprfKey::generate();
        let items = identifiers()?;
        let (_, good) = BlindedItems::blind(&refs(&items))?;
        let good: Vec<Vec<u8>> = good.iter().map(|e| e.to_vec()).collect();

        let mut short = good.clone();
        short[1].pop();
        assert_eq!(
            evaluate_blinded(&key, &short),
            Err(OprfError::ElementLength { index: 1, len: 31 })
        );
        let mut long = good.clone();
        long[2].push(0);
        assert_eq!(
            evaluate_blinded(&key, &long),
            Err(OprfError::ElementLength { index: 2, len: 33 })
        );
        // The identity (all zeros), a non-canonical encoding, a non-point.
        for bad in [[0u8; 32], [0xffu8; 32], {
            let mut b = [0u8; 32];
            b[0] = 1;
            b
        }] {
            let mut batch = good.clone();
            batch[0] = bad.to_vec();
            assert_eq!(
                evaluate_blinded(&key, &batch),
                Err(OprfError::InvalidElement { index: 0 })
            );
        }
        let none: [Vec<u8>; 0] = [];
        assert_eq!(evaluate_blinded(&key, &none), Err(OprfError::EmptyBatch));
        let too_many = vec![good[0].clone(); MAX_BATCH + 1];
        assert_eq!(
            evaluate_blinded(&key, &too_many),
            Err(OprfError::BatchTooLarge {
                got: MAX_BATCH + 1,
                max: MAX_BATCH
            })
        );
        assert_eq!(
            BlindedItems::blind(&[]).map(|_| ()),
            Err(OprfError::EmptyBatch)
        );
        Ok(())
    }

    #[test]
    fn wrong_answers_are_refused() -> TestResult {
        let key = NodeOprfKey::generate();
        let items = identifiers()?;
        let items = refs(&items);

        // One element too few, one too many.
        let (state, blinded) = BlindedItems::blind(&items)?;
        let answer = evaluate_blinded(&key, &blinded)?;
        assert_eq!(
            state.finalize(key.public_key(), &answer.elements[..2], &answer.proof),
            Err(OprfError::CountMismatch {
                expected: 3,
                got: 2
            })
        );
        let (state, blinded) = BlindedItems::blind(&items)?;
        let answer = evaluate_blinded(&key, &blinded)?;
        let mut extra = answer.elements.clone();
        extra.push(answer.elements[0]);
        assert_eq!(
            state.finalize(key.public_key(), &extra, &answer.proof),
            Err(OprfError::CountMismatch {
                expected: 3,
                got: 4
            })
        );

        // Elements out of order, a proof cut short, another node's key.
        let (state, blinded) = BlindedItems::blind(&items)?;
        let answer = evaluate_blinded(&key, &blinded)?;
        let mut swapped = answer.elements.clone();
        swapped.swap(0, 1);
        assert_eq!(
            state.finalize(key.public_key(), &swapped, &answer.proof),
            Err(OprfError::ProofVerification)
        );
        let (state, blinded) = BlindedItems::blind(&items)?;
        let answer = evaluate_blinded(&key, &blinded)?;
        assert_eq!(
            state.finalize(key.public_key(), &answer.elements, &answer.proof[..63]),
            Err(OprfError::ProofFormat)
        );
        let other = NodeOprfKey::generate();
        let (state, blinded) = BlindedItems::blind(&items)?;
        let answer = evaluate_blinded(&other, &blinded)?;
        assert_eq!(
            state.finalize(key.public_key(), &answer.elements, &answer.proof),
            Err(OprfError::ProofVerification)
        );
        let (state, blinded) = BlindedItems::blind(&items)?;
        let answer = evaluate_blinded(&key, &blinded)?;
        let mut bad = answer.elements.clone();
        bad[2] = [0u8; 32];
        assert_eq!(
            state.finalize(key.public_key(), &bad, &answer.proof),
            Err(OprfError::InvalidElement { index: 2 })
        );
        Ok(())
    }

    #[test]
    fn key_file_text_round_trips_and_is_checked() -> TestResult {
        let key = NodeOprfKey::generate();
        let text = key.to_text();
        assert!(text.starts_with(KEY_FILE_PREFIX));
        let back = NodeOprfKey::from_text(&format!("{}\n", text.as_str()))?;
        assert_eq!(back.public_key(), key.public_key());
        assert_eq!(back.key_id(), key.key_id());
        let normal = normalise(IdentifierKind::Email, "bob@example.org")?;
        assert_eq!(
            node_fingerprint(&back, IdentifierKind::Email, &normal),
            node_fingerprint(&key, IdentifierKind::Email, &normal)
        );

        let secret_hex = &text[KEY_FILE_PREFIX.len()..];
        assert!(!format!("{key:?}").contains(secret_hex));
        assert_eq!(format!("{key:?}"), format!("NodeOprfKey({})", key.key_id()));
        for bad in [
            secret_hex.to_owned(),
            format!("{KEY_FILE_PREFIX}{}", &secret_hex[..62]),
            format!("{KEY_FILE_PREFIX}{}", "0".repeat(64)),
            format!("{KEY_FILE_PREFIX}{}", "f".repeat(64)),
            format!("{KEY_FILE_PREFIX}{}", "zz".repeat(32)),
        ] {
            assert_eq!(
                NodeOprfKey::from_text(&bad).map(|_| ()),
                Err(OprfError::KeyFormat)
            );
        }

        let public = key.public_key();
        assert_eq!(&NodeOprfPublicKey::from_text(&public.to_text())?, public);
        assert_eq!(&NodeOprfPublicKey::from_bytes(&public.to_bytes())?, public);
        assert_eq!(
            NodeOprfPublicKey::from_text(&"0".repeat(64)),
            Err(OprfError::PublicKeyFormat)
        );
        let id = key.key_id();
        assert_eq!(id.to_string().len(), 16);
        assert_eq!(id.to_string().parse::<OprfKeyId>()?, id);
        Ok(())
    }
}
