//! The inputs each corpus starts from: what an honest client, node or
//! requester sends, in each target's input layout, and a few known-hostile
//! variants (named `hostile-*`) that must stay refused.

use super::targets::{
    blinded_items, oprf_key, signing_key, COMPACT_TAG_BITS, GROUP_TAG_BITS, OPRF_KEY_HEX,
};
use super::{compact_values, join_records};
use crate::envelope::Envelope;
use crate::fingerprint::Tag;
use crate::identifier::IdentifierKind;
use crate::lookup::keys::danger;
use crate::lookup::params::PARAMETERS;
use crate::lookup::{generate_keys, CountEncoding, EncryptedCount, EncryptedTag};
use crate::oprf::{evaluate_blinded, BlindedItems, NodeOprfKey};

/// One corpus input.
pub struct Seed {
    /// The target it is for.
    pub target: &'static str,
    /// Its file name in the target's corpus, without the `seed-` prefix.
    pub name: &'static str,
    /// The input.
    pub bytes: Vec<u8>,
    /// Whether the target's decoder accepts it.
    pub accepted: bool,
}

fn seed(target: &'static str, name: &'static str, bytes: Vec<u8>, accepted: bool) -> Seed {
    Seed {
        target,
        name,
        bytes,
        accepted,
    }
}

/// Every seed (fresh keys and randomness each call).
pub fn seeds() -> Vec<Seed> {
    let mut all = lookup_seeds();
    all.extend(group_seeds());
    all.extend(oprf_seeds());
    all.push(envelope_seed());
    all.extend(identifier_seeds());
    all
}

/// Overwrites bytes with `value`, starting `from_end` bytes before the end.
fn overwrite(mut bytes: Vec<u8>, from_end: usize, value: &[u8]) -> Vec<u8> {
    let start = bytes.len() - from_end;
    bytes[start..start + value.len()].copy_from_slice(value);
    bytes
}

fn lookup_seeds() -> Vec<Seed> {
    let (secret, public) = generate_keys();
    let tag = EncryptedTag::encrypt_bitwise(&secret, Tag(0x5A5), COMPACT_TAG_BITS).to_bytes();
    // Format 2 is too long for an input whole: its header and first values.
    let rounded_cut =
        EncryptedTag::encrypt(&secret, Tag(0x5A5), COMPACT_TAG_BITS).to_bytes()[..64].to_vec();
    let compact_tag = compact_values(&tag).expect("a tag starts with its values");
    let mode = |byte: u8, rest: &[u8]| [&[byte][..], rest].concat();
    // tfhe's layout ends with: ..., seed start (u128 AES index, u64 byte
    // index), modulus (u128, u64 scalar bits).
    let forked_late = overwrite(compact_tag.clone(), 48, &u128::MAX.to_le_bytes());
    let mut empty_list = compact_tag.clone();
    empty_list[1..9].copy_from_slice(&0u64.to_le_bytes());

    let zero = tfhe::core_crypto::prelude::LweCiphertext::new(
        0u64,
        PARAMETERS.lwe_dimension().to_lwe_size(),
        PARAMETERS.ciphertext_modulus,
    );
    let answer = EncryptedCount::rerandomise(zero, &public, CountEncoding::LARGEST);
    let key_file = danger::secret_key_to_file_bytes(&secret);
    // Without its values, a key file holds no secret.
    let compact_secret = compact_values(&key_file).expect("a key starts with its values");
    let compact_public = compact_values(public.to_bytes()).expect("a key starts with its values");
    vec![
        seed("lookup_tag", "compact", mode(1, &compact_tag), true),
        seed(
            "lookup_tag",
            "hostile-forked-late",
            mode(1, &forked_late),
            false,
        ),
        seed(
            "lookup_tag",
            "hostile-rounded-cut",
            mode(COMPACT_TAG_BITS << 1, &rounded_cut),
            false,
        ),
        // A full encoding of zero GGSWs for a node configured with 0 tag bits.
        seed("lookup_tag", "hostile-empty", mode(0, &empty_list), false),
        seed(
            "lookup_keys",
            "public-compact",
            mode(0, &compact_public),
            true,
        ),
        seed(
            "lookup_keys",
            "secret-compact",
            mode(1, &compact_secret),
            true,
        ),
        seed(
            "lookup_keys",
            "key-id",
            mode(4, public.id().as_str().as_bytes()),
            true,
        ),
        seed(
            "lookup_answer",
            "zero",
            EncryptedCount::zero().to_bytes(),
            true,
        ),
        seed("lookup_answer", "rerandomised", answer.to_bytes(), true),
    ]
}

/// A batch as an honest client sends it (a packed group of three and a lone
/// compressed item), the same with the group's body left out (padded back
/// by the target), and a group whose slots are swapped.
fn group_seeds() -> Vec<Seed> {
    use crate::lookup::packed::encrypt_items;
    use crate::lookup::PackedTags;
    let (secret, _) = generate_keys();
    let tags = [Tag(1), Tag(2), Tag(3), Tag(4)];
    let sent = encrypt_items(&secret, &tags, GROUP_TAG_BITS, true);
    let mut compact = sent.clone();
    compact[0].truncate(18);
    compact[3].truncate(33);
    let mut swapped = sent.clone();
    swapped.swap(1, 2);
    assert_eq!(sent[0].len(), PackedTags::leader_len());
    vec![
        seed("lookup_group", "batch", join_records(&sent, 2), true),
        seed("lookup_group", "compact", join_records(&compact, 2), true),
        seed(
            "lookup_group",
            "hostile-swapped-slots",
            join_records(&swapped, 2),
            false,
        ),
    ]
}

fn oprf_seeds() -> Vec<Seed> {
    let items: Vec<_> = blinded_items()[..3]
        .iter()
        .map(|(kind, normal)| (*kind, normal))
        .collect();
    let (_, blinded) = BlindedItems::blind(&items).expect("fixed items blind");
    let answer = evaluate_blinded(oprf_key(), &blinded).expect("honest elements");
    let mut evaluation: Vec<Vec<u8>> = answer.elements.iter().map(|e| e.to_vec()).collect();
    evaluation.push(answer.proof.to_vec());
    let key_text = format!("fedq-oprf-key v1 ristretto255-sha512 voprf {OPRF_KEY_HEX}");
    let other = NodeOprfKey::generate();
    vec![
        seed("oprf_blinded", "three", join_records(&blinded, 1), true),
        // Another blinding's answer: decodes, but the proof is not for these.
        seed(
            "oprf_evaluation",
            "three",
            join_records(&evaluation, 1),
            false,
        ),
        seed("oprf_keys", "key-file", key_text.into_bytes(), true),
        seed(
            "oprf_keys",
            "public-text",
            other.public_key().to_text().into_bytes(),
            true,
        ),
        seed(
            "oprf_keys",
            "public-bytes",
            other.public_key().to_bytes().to_vec(),
            true,
        ),
        seed(
            "oprf_keys",
            "key-id",
            other.key_id().to_string().into_bytes(),
            true,
        ),
    ]
}

fn envelope_seed() -> Seed {
    let envelope = Envelope::example();
    let signed = signing_key().sign(&envelope);
    let key = signing_key().verifying_key().to_text();
    let parts = [signed.bytes, signed.signature, key.into_bytes()];
    seed("envelope", "signed", join_records(&parts, 2), true)
}

fn identifier_seeds() -> Vec<Seed> {
    let raw = |kind: IdentifierKind, text: &str| {
        let index = IdentifierKind::ALL
            .iter()
            .position(|k| *k == kind)
            .expect("a listed kind");
        [&[index as u8][..], text.as_bytes()].concat()
    };
    vec![
        seed(
            "identifier",
            "passport",
            raw(IdentifierKind::Passport, "fra-12-AB-345.67"),
            true,
        ),
        seed(
            "identifier",
            "national-id",
            raw(IdentifierKind::NationalId, "de c01x00t47"),
            true,
        ),
        seed(
            "identifier",
            "phone",
            raw(IdentifierKind::Phone, "+33 (0)6 12 34 56 78"),
            true,
        ),
        seed(
            "identifier",
            "email",
            raw(IdentifierKind::Email, "Alice.Example@Example.org"),
            true,
        ),
        seed(
            "identifier",
            "iban",
            raw(IdentifierKind::Iban, "IBAN DE89 3704 0044 0532 0130 00"),
            true,
        ),
        seed(
            "identifier",
            "wallet-eth",
            raw(
                IdentifierKind::CryptoWallet,
                "eth:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
            ),
            true,
        ),
        seed(
            "identifier",
            "wallet-btc",
            raw(
                IdentifierKind::CryptoWallet,
                "btc:bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
            ),
            true,
        ),
        seed(
            "identifier",
            "name-dob",
            raw(IdentifierKind::NameDob, "Müller, Hans ; 02.01.1980"),
            true,
        ),
        seed(
            "identifier",
            "name-dob-normal",
            raw(IdentifierKind::NameDob, "dm:HNS MLR|1980-01-02"),
            true,
        ),
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_seed_gets_the_verdict_it_claims() {
        crate::fuzzing::corpus::check_seeds(&super::seeds(), crate::fuzzing::TARGETS);
    }
}
