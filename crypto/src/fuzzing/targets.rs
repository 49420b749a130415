//! The bodies. Each is named after its cargo-fuzz target.

use std::borrow::Cow;
use std::sync::OnceLock;

use tfhe::core_crypto::prelude::LweCiphertext;

use super::{expand_values, records};
use crate::envelope::{self, SignedEnvelope, SigningKey, VerifyingKey};
use crate::identifier::{normalise, IdentifierKind, NormalForm};
use crate::lookup::keys::danger;
use crate::lookup::params::{LOW_TAG_BITS, PARAMETERS};
use crate::lookup::{
    evaluate, packed, CompressedTag, CountEncoding, EncryptedCount, EncryptedTag, ExpansionKey,
    FhePublicKey, FheSecretKey, KeyId, PackedTags, PreparedExpansionKey, PreparedTag,
};
use crate::oprf::{
    evaluate_blinded, BlindedItems, NodeOprfKey, NodeOprfPublicKey, OprfKeyId, MAX_BATCH,
};

/// Tag width of compact tags: the smallest a node evaluates, so that an
/// accepted input costs the least to prepare and evaluate.
pub(super) const COMPACT_TAG_BITS: u8 = LOW_TAG_BITS + 1;
/// The fuzz node's OPRF key: RFC 9497 A.1.2's, a canonical scalar.
pub(super) const OPRF_KEY_HEX: &str =
    "e6f73f344b79b379f1a0dd37e07ff62e38d9f71345ce62ae3a9bc60b04ccd909";
/// The fuzz requester's Ed25519 signing key.
pub(super) const SIGNING_KEY_HEX: &str =
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
/// Most items the evaluation target blinds: enough to see counts differ.
const MAX_BLINDED: usize = 8;

/// Values in one seeded GGSW: (k+1) · levels · N.
fn ggsw_values() -> usize {
    crate::lookup::query::ggsw_bytes() / 8
}

/// Values of a compact public key (a GLWE of dimension 1 over k·N), and of
/// a GLWE secret key (k·N).
fn key_values() -> (usize, usize) {
    let lwe = PARAMETERS.lwe_dimension().0;
    (2 * lwe, lwe)
}

fn text(data: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(data)
}

pub(super) fn oprf_key() -> &'static NodeOprfKey {
    static KEY: OnceLock<NodeOprfKey> = OnceLock::new();
    KEY.get_or_init(|| {
        NodeOprfKey::from_text(&format!(
            "fedq-oprf-key v1 ristretto255-sha512 voprf {OPRF_KEY_HEX}"
        ))
        .expect("a valid fixed key")
    })
}

pub(super) fn signing_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey::from_text(SIGNING_KEY_HEX).expect("a valid fixed key"))
}

/// Normal forms the evaluation target blinds.
pub(super) fn blinded_items() -> &'static [(IdentifierKind, NormalForm)] {
    static ITEMS: OnceLock<Vec<(IdentifierKind, NormalForm)>> = OnceLock::new();
    ITEMS.get_or_init(|| {
        (0..MAX_BLINDED)
            .map(|i| {
                let raw = format!("user{i}@example.org");
                let normal = normalise(IdentifierKind::Email, &raw).expect("a valid address");
                (IdentifierKind::Email, normal)
            })
            .collect()
    })
}

/// A lookup query item's encrypted tag, as a node decodes it.
///
/// First byte: bit 0 set, the rest is a compact encoding (see
/// [`expand_values`]) of a tag of [`COMPACT_TAG_BITS`]; clear, the rest is a
/// full encoding and the byte's other bits are the node's `tag_bits`.
pub fn lookup_tag(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let (bytes, bits) = if mode & 1 == 1 {
        let cap = (usize::from(COMPACT_TAG_BITS) + 1) * ggsw_values();
        (expand_values(rest, cap), COMPACT_TAG_BITS)
    } else {
        (rest.to_vec(), mode >> 1)
    };
    let Ok(tag) = EncryptedTag::from_bytes(&bytes, bits) else {
        return false;
    };
    assert_eq!(tag.bit_count(), usize::from(bits));
    assert_eq!(tag.to_bytes(), bytes, "an accepted tag re-encodes as sent");
    // Where tfhe used to panic: mask regeneration, FFT, the evaluation.
    let prepared = PreparedTag::prepare(tag);
    assert_eq!(prepared.bit_count(), usize::from(bits));
    evaluate(&prepared, &[0, 1], 2, CountEncoding::LARGEST).expect("an accepted tag evaluates");
    true
}

/// Tag width of the grouped target: the default, three items to a group.
pub(super) const GROUP_TAG_BITS: u8 = 28;

/// One requester's expansion key, as the node prepares it (made once).
fn expansion_key() -> &'static PreparedExpansionKey {
    static KEY: OnceLock<PreparedExpansionKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let (secret, _) = crate::lookup::generate_keys();
        PreparedExpansionKey::from_bytes(&ExpansionKey::generate(&secret).to_bytes())
            .expect("an honest key")
    })
}

/// A record that starts a group or a compressed tag and stops within its
/// header, padded with zero body bytes to the full length: the body is what
/// an honest requester sets freely, and leaving it out lets the fuzzer spend
/// its mutations on formats, counts and slots.
fn padded(record: &[u8]) -> Cow<'_, [u8]> {
    let full = match record.first() {
        Some(&4) if record.len() <= 18 => PackedTags::leader_len(),
        Some(&3) if record.len() <= 33 => CompressedTag::encoded_len(),
        _ => return Cow::Borrowed(record),
    };
    let mut bytes = record.to_vec();
    bytes.resize(full, 0);
    Cow::Owned(bytes)
}

/// A lookup's items' tags as a node groups and decodes them, formats 3 and
/// 4 ([`packed::groups`], [`PackedTags::from_items`],
/// [`CompressedTag::from_bytes`]), with [`GROUP_TAG_BITS`]-bit tags.
///
/// The input is records with 2-byte lengths, one per item (see
/// [`super::records`]), each [`padded`].
pub fn lookup_group(data: &[u8]) -> bool {
    let items: Vec<Cow<'_, [u8]>> = super::records(data, 2).into_iter().map(padded).collect();
    let items: Vec<&[u8]> = items.iter().map(|item| item.as_ref()).collect();
    let Ok(groups) = packed::groups(&items, GROUP_TAG_BITS) else {
        return false;
    };
    let mut accepted = !groups.is_empty();
    for group in groups {
        let tags = &items[group.clone()];
        let prepared = if PackedTags::is_packed(tags[0]) {
            let Ok(packed) = PackedTags::from_items(tags, GROUP_TAG_BITS) else {
                accepted = false;
                continue;
            };
            assert_eq!(
                packed.to_item_bytes(),
                tags,
                "an accepted group re-encodes as sent"
            );
            PreparedTag::prepare_packed(packed, expansion_key())
        } else if CompressedTag::is_compressed(tags[0]) {
            let Ok(tag) = CompressedTag::from_bytes(tags[0], GROUP_TAG_BITS) else {
                accepted = false;
                continue;
            };
            assert_eq!(
                tag.to_bytes(),
                tags[0],
                "an accepted tag re-encodes as sent"
            );
            vec![PreparedTag::prepare_compressed(tag, expansion_key())]
        } else {
            // Formats 1 and 2 are `lookup_tag`'s.
            accepted = false;
            continue;
        };
        assert_eq!(prepared.len(), group.len(), "one tag per item");
        for tag in &prepared {
            assert_eq!(tag.bit_count(), usize::from(GROUP_TAG_BITS));
            evaluate(tag, &[0, 1], 2, CountEncoding::LARGEST).expect("an accepted tag evaluates");
        }
    }
    accepted
}

/// The requester's public key, secret key file and key id.
///
/// First byte modulo 5: 0 and 1 a compact public key or secret key file (see
/// [`expand_values`]), 2 and 3 a full one, 4 a key id's text.
pub fn lookup_keys(data: &[u8]) -> bool {
    let Some((&mode, rest)) = data.split_first() else {
        return false;
    };
    let (public_values, secret_values) = key_values();
    match mode % 5 {
        0 => public_key(&expand_values(rest, public_values + 1)),
        1 => secret_key(&expand_values(rest, secret_values + 1)),
        2 => public_key(rest),
        3 => secret_key(rest),
        _ => match KeyId::parse(&text(rest)) {
            Ok(id) => {
                assert_eq!(KeyId::parse(id.as_str()).as_ref(), Ok(&id));
                true
            }
            Err(_) => false,
        },
    }
}

fn public_key(bytes: &[u8]) -> bool {
    let Ok(key) = FhePublicKey::from_bytes(bytes) else {
        return false;
    };
    assert_eq!(key.to_bytes(), bytes, "an accepted key re-encodes as sent");
    // Where tfhe asserts on the key: a re-randomisation under it.
    let zero = LweCiphertext::new(
        0u64,
        PARAMETERS.lwe_dimension().to_lwe_size(),
        PARAMETERS.ciphertext_modulus,
    );
    let _ = EncryptedCount::rerandomise(zero, &key, CountEncoding::LARGEST);
    true
}

fn secret_key(bytes: &[u8]) -> bool {
    let Ok(key) = FheSecretKey::from_file_bytes(bytes) else {
        return false;
    };
    assert_eq!(danger::secret_key_to_file_bytes(&key).as_slice(), bytes);
    assert_eq!(
        EncryptedCount::zero().decrypt(&key, CountEncoding::LARGEST),
        0
    );
    true
}

/// A node's answer, as the coordinator and the requester decode it.
pub fn lookup_answer(data: &[u8]) -> bool {
    let Ok(answer) = EncryptedCount::from_bytes(data) else {
        return false;
    };
    assert_eq!(
        answer.to_bytes(),
        data,
        "an accepted answer re-encodes as sent"
    );
    let mut sum = answer.clone();
    sum.add_assign(&EncryptedCount::zero());
    assert_eq!(sum, answer, "adding the neutral answer changes nothing");
    true
}

/// A requester's blinded elements, at the node: one-byte-length records.
pub fn oprf_blinded(data: &[u8]) -> bool {
    let elements = records(data, 1);
    let Ok(answer) = evaluate_blinded(oprf_key(), &elements) else {
        return false;
    };
    assert_eq!(answer.elements.len(), elements.len());
    assert!(elements.len() <= MAX_BATCH);
    true
}

/// A node's answer, at the client: one-byte-length records, the last of which
/// is the proof, for as many blinded items as there are elements (1 to 8).
pub fn oprf_evaluation(data: &[u8]) -> bool {
    let mut parts = records(data, 1);
    let proof = parts.pop().unwrap_or_default();
    let count = parts.len().clamp(1, MAX_BLINDED);
    let items: Vec<(IdentifierKind, &NormalForm)> = blinded_items()[..count]
        .iter()
        .map(|(kind, normal)| (*kind, normal))
        .collect();
    let (state, _) = BlindedItems::blind(&items).expect("fixed items blind");
    match state.finalize(oprf_key().public_key(), &parts, proof) {
        Ok(fingerprints) => {
            assert_eq!(fingerprints.len(), count);
            true
        }
        Err(_) => false,
    }
}

/// A node's OPRF key file text, public key (text and bytes) and key id.
pub fn oprf_keys(data: &[u8]) -> bool {
    let text = text(data);
    let mut accepted = false;
    if let Ok(key) = NodeOprfKey::from_text(&text) {
        let again = NodeOprfKey::from_text(&key.to_text()).expect("own text parses");
        assert_eq!(again.public_key(), key.public_key());
        accepted = true;
    }
    let publics = [
        NodeOprfPublicKey::from_text(&text),
        NodeOprfPublicKey::from_bytes(data),
    ];
    for public in publics.into_iter().flatten() {
        assert_eq!(
            NodeOprfPublicKey::from_bytes(&public.to_bytes()),
            Ok(public)
        );
        accepted = true;
    }
    if let Ok(id) = text.parse::<OprfKeyId>() {
        assert_eq!(id.to_string().parse::<OprfKeyId>(), Ok(id));
        accepted = true;
    }
    accepted
}

/// A signed request envelope: two-byte-length records, the JSON bytes, the
/// signature and a key text.
pub fn envelope(data: &[u8]) -> bool {
    let parts = records(data, 2);
    let part = |i: usize| parts.get(i).copied().unwrap_or_default();
    let _ = VerifyingKey::from_text(&text(part(2)));
    let _ = SigningKey::from_text(&text(part(2)));
    let signed = SignedEnvelope {
        bytes: part(0).to_vec(),
        signature: part(1).to_vec(),
    };
    let Ok(peeked) = signed.peek() else {
        assert!(signed.verify(&signing_key().verifying_key()).is_err());
        return false;
    };
    assert_eq!(peeked.check_shape(), Ok(()));
    // The node's time checks, on whatever time the requester wrote.
    const SKEW: i64 = 300;
    for now in [0, i64::MIN, i64::MAX, peeked.issued_at] {
        let _ = envelope::within_skew(peeked.issued_at, now, SKEW);
    }
    assert!(envelope::within_skew(
        peeked.issued_at,
        peeked.issued_at,
        SKEW
    ));
    assert!(envelope::expires_at(peeked.issued_at, SKEW) >= peeked.issued_at);
    match signed.verify(&signing_key().verifying_key()) {
        Ok(verified) => {
            assert_eq!(verified, peeked);
            true
        }
        Err(_) => false,
    }
}

/// A raw identifier, as a CSV import row or a requester gives it: first byte
/// the kind (modulo 7), the rest the text.
pub fn identifier(data: &[u8]) -> bool {
    let Some((&kind, rest)) = data.split_first() else {
        return false;
    };
    let raw = text(rest);
    let _ = raw.parse::<IdentifierKind>();
    let kind = IdentifierKind::ALL[usize::from(kind) % IdentifierKind::ALL.len()];
    let Ok(normal) = normalise(kind, &raw) else {
        return false;
    };
    assert_eq!(
        normalise(kind, normal.as_str()).as_ref(),
        Ok(&normal),
        "{kind} normal forms are fixed points"
    );
    let _ = crate::oprf::node_fingerprint(oprf_key(), kind, &normal);
    true
}
