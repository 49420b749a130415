//! Hostile encodings of the objects a node decodes: each is an honest encoding
//! with one field changed, and must be refused with an error before any tfhe
//! code runs on it (tfhe `unwrap`s and asserts on these fields on the node's
//! rayon pool, which aborts the process).

use std::sync::OnceLock;

use bincode::Options;

use super::honest::{WireCompactPublicKey, WireSeededGgswList};
use super::*;
use crate::fingerprint::Tag;

const BITS: u8 = 12;

fn keys() -> &'static (FheSecretKey, FhePublicKey) {
    static KEYS: OnceLock<(FheSecretKey, FhePublicKey)> = OnceLock::new();
    KEYS.get_or_init(generate_keys)
}

fn honest_tag() -> Vec<u8> {
    static TAG: OnceLock<Vec<u8>> = OnceLock::new();
    TAG.get_or_init(|| EncryptedTag::encrypt_bitwise(&keys().0, Tag(0x5A5), BITS).to_bytes())
        .clone()
}

/// tfhe's bincode layout of a seeded GGSW list after its data: field name,
/// offset from the end, width.
const TAG_TAIL: [(&str, usize, usize); 10] = [
    ("glwe_size", 100, 8),
    ("polynomial_size", 92, 8),
    ("decomp_base_log", 84, 8),
    ("decomp_level_count", 76, 8),
    ("seed_kind", 68, 4),
    ("seed", 64, 16),
    ("first_aes_index", 48, 16),
    ("first_byte_index", 32, 8),
    ("modulus", 24, 16),
    ("modulus_scalar_bits", 8, 8),
];

fn field(name: &str) -> (usize, usize) {
    let (_, from_end, width) = TAG_TAIL
        .iter()
        .find(|(n, _, _)| *n == name)
        .expect("known field");
    (*from_end, *width)
}

fn read(bytes: &[u8], name: &str) -> u128 {
    let (from_end, width) = field(name);
    let start = bytes.len() - from_end;
    let mut le = [0u8; 16];
    le[..width].copy_from_slice(&bytes[start..start + width]);
    u128::from_le_bytes(le)
}

fn with(mut bytes: Vec<u8>, name: &str, value: u128) -> Vec<u8> {
    let (from_end, width) = field(name);
    let start = bytes.len() - from_end;
    bytes[start..start + width].copy_from_slice(&value.to_le_bytes()[..width]);
    bytes
}

fn unexpected(field: &'static str) -> LookupError {
    LookupError::UnexpectedField {
        object: "encrypted tag",
        field,
    }
}

/// Decodes and, if accepted, prepares (where tfhe would panic): a hostile
/// encoding must come back as an error.
fn refused(bytes: &[u8], bits: u8) -> LookupError {
    match EncryptedTag::from_bytes(bytes, bits) {
        Err(error) => error,
        Ok(tag) => {
            PreparedTag::prepare(tag);
            panic!("a hostile encrypted tag was accepted");
        }
    }
}

#[test]
fn the_layout_the_hostile_tests_edit_is_tfhes() {
    let bytes = honest_tag();
    assert_eq!(read(&bytes, "glwe_size"), 2);
    assert_eq!(read(&bytes, "polynomial_size"), 2048);
    assert_eq!(read(&bytes, "decomp_level_count"), 1);
    assert_eq!(read(&bytes, "seed_kind"), 0);
    assert_eq!(read(&bytes, "first_aes_index"), 0);
    assert_eq!(read(&bytes, "first_byte_index"), 0);
    assert_eq!(read(&bytes, "modulus"), 0);
    assert_eq!(read(&bytes, "modulus_scalar_bits"), 64);
    let accepted = EncryptedTag::from_bytes(&bytes, BITS).expect("honest tag");
    assert_eq!(
        PreparedTag::prepare(accepted).bit_count(),
        usize::from(BITS)
    );
}

#[test]
fn seed_forked_from_the_end_of_its_stream_is_refused() {
    // tfhe: ForkTooLarge, unwrapped in par_decompress_seeded_ggsw_ciphertext_list.
    let hostile = with(honest_tag(), "first_aes_index", u128::MAX);
    assert_eq!(
        refused(&hostile, BITS),
        unexpected("compression seed start")
    );
}

#[test]
fn seed_forked_from_any_other_position_is_refused() {
    for position in [1u128, 1 << 64, u128::MAX - 4096] {
        let hostile = with(honest_tag(), "first_aes_index", position);
        assert_eq!(
            refused(&hostile, BITS),
            unexpected("compression seed start")
        );
    }
}

#[test]
fn seed_with_a_byte_index_past_its_block_is_refused() {
    for byte in [1u128, 15, 16, 127, u128::from(u64::MAX)] {
        let hostile = with(honest_tag(), "first_byte_index", byte);
        assert_eq!(
            refused(&hostile, BITS),
            unexpected("compression seed start")
        );
    }
}

#[test]
fn parameters_other_than_the_lookups_are_refused() {
    let cases: [(&str, &'static str, &[u128]); 6] = [
        (
            "glwe_size",
            "glwe size",
            &[0u128, 1, 3, u128::from(u64::MAX)][..],
        ),
        (
            "polynomial_size",
            "polynomial size",
            &[0, 1, 1024, 4096, u128::from(u64::MAX)],
        ),
        (
            "decomp_base_log",
            "decomposition base log",
            &[0, 22, 24, 64, u128::from(u64::MAX)],
        ),
        (
            "decomp_level_count",
            "decomposition level count",
            &[0, 2, u128::from(u64::MAX)],
        ),
        (
            "modulus",
            "ciphertext modulus",
            &[1, 1 << 32, 1 << 63, u128::MAX],
        ),
        ("modulus_scalar_bits", "ciphertext modulus", &[0, 32, 128]),
    ];
    for (name, field, values) in cases {
        for &value in values {
            let hostile = with(honest_tag(), name, value);
            assert_eq!(
                refused(&hostile, BITS),
                unexpected(field),
                "{name} = {value}"
            );
        }
    }
    // Seed kinds tfhe-csprng does not have do not even decode.
    for kind in [2, u128::from(u32::MAX)] {
        let hostile = with(honest_tag(), "seed_kind", kind);
        assert_eq!(
            refused(&hostile, BITS),
            LookupError::Malformed("encrypted tag")
        );
    }
}

/// Replaces the bytes from `from_end(start)` to `from_end(end)` (offsets from
/// the end) by `middle`.
fn splice(bytes: &[u8], start_from_end: usize, end_from_end: usize, middle: &[u8]) -> Vec<u8> {
    let (start, end) = (bytes.len() - start_from_end, bytes.len() - end_from_end);
    [&bytes[..start], middle, &bytes[end..]].concat()
}

#[test]
fn xof_seeds_are_refused() {
    // The honest client seeds with `Seed` (AES-CTR from 0); an XOF seed is a
    // different mask stream, of any length.
    for data in [&[][..], &[7u8; 3][..], &[7u8; 16][..], &[7u8; 100][..]] {
        let mut kind = 1u32.to_le_bytes().to_vec();
        kind.extend_from_slice(&(data.len() as u64).to_le_bytes());
        kind.extend_from_slice(data);
        let hostile = splice(&honest_tag(), 68, 48, &kind);
        assert_eq!(refused(&hostile, BITS), unexpected("compression seed kind"));
    }
}

#[test]
fn wrong_ggsw_counts_are_refused() {
    let honest = honest_tag();
    let ggsw = query::ggsw_bytes();
    let body = usize::from(BITS) * ggsw;
    let tail = &honest[honest.len() - 100..];
    let with_count = |count: usize| {
        let mut bytes = vec![wire::FORMAT_V1];
        bytes.extend_from_slice(&((count * ggsw / 8) as u64).to_le_bytes());
        bytes.extend(std::iter::repeat_n(0u8, count * ggsw));
        bytes.extend_from_slice(tail);
        bytes
    };
    assert_eq!(with_count(usize::from(BITS)).len(), honest.len());
    assert_eq!(honest.len(), 1 + 8 + body + 100);
    let wrong = LookupError::WrongParameters("encrypted tag");
    // An empty list: tfhe unwraps ForkError::ZeroChildrenCount. Fewer bits
    // than the leaf index cannot be evaluated.
    for bits in [0u8, 1, 11] {
        assert_eq!(refused(&with_count(usize::from(bits)), bits), wrong);
    }
    // Node configurations that cannot be evaluated refuse even honest tags.
    for bits in [65u8, 255] {
        assert_eq!(refused(&with_count(usize::from(BITS)), bits), wrong);
    }
    assert_eq!(refused(&with_count(usize::from(BITS) - 1), BITS), wrong);
    assert_eq!(
        refused(&with_count(usize::from(BITS) + 1), BITS),
        LookupError::TooLarge("encrypted tag")
    );
    // A body that is not a whole number of GGSWs.
    let mut ragged = with_count(usize::from(BITS));
    ragged[1..9].copy_from_slice(&((body / 8 - 1) as u64).to_le_bytes());
    ragged.drain(9..17);
    assert_eq!(refused(&ragged, BITS), wrong);
    // A length prefix beyond the bytes sent.
    let mut overlong = with_count(usize::from(BITS));
    overlong[1..9].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(
        refused(&overlong, BITS),
        LookupError::Malformed("encrypted tag")
    );
}

#[test]
fn public_keys_with_other_parameters_are_refused() {
    let honest = keys().1.to_bytes().to_vec();
    // Layout: version, data (u64 length, values), polynomial size, modulus
    // (u128 value, u64 scalar bits).
    assert_eq!(read_at(&honest, 32, 8), 2048);
    assert_eq!(read_at(&honest, 24, 16), 0);
    assert_eq!(read_at(&honest, 8, 8), 64);
    for (from_end, width, value, field) in [
        (32, 8, 0u128, "polynomial size"),
        (32, 8, 1024, "polynomial size"),
        (32, 8, 4096, "polynomial size"),
        (32, 8, u128::from(u64::MAX), "polynomial size"),
        (24, 16, 1 << 32, "ciphertext modulus"),
        (24, 16, u128::MAX, "ciphertext modulus"),
        (8, 8, 32, "ciphertext modulus"),
    ] {
        let hostile = write_at(honest.clone(), from_end, width, value);
        assert_eq!(
            FhePublicKey::from_bytes(&hostile).map(|_| ()),
            Err(LookupError::UnexpectedField {
                object: "public key",
                field
            })
        );
    }
}

#[test]
fn secret_key_files_with_other_parameters_are_refused() {
    let honest = keys::danger::secret_key_to_file_bytes(&keys().0).to_vec();
    assert_eq!(read_at(&honest, 8, 8), 2048);
    // A zero polynomial size made tfhe divide by zero in `glwe_dimension`.
    for value in [0u128, 1, 1024, 4096, u128::from(u64::MAX)] {
        let hostile = write_at(honest.clone(), 8, 8, value);
        assert!(matches!(
            FheSecretKey::from_file_bytes(&hostile),
            Err(LookupError::UnexpectedField {
                object: "secret key",
                field: "polynomial size"
            })
        ));
    }
    // Not a binary key.
    let mut ternary = honest.clone();
    ternary[9..17].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        FheSecretKey::from_file_bytes(&ternary),
        Err(LookupError::WrongParameters("secret key"))
    ));
}

fn read_at(bytes: &[u8], from_end: usize, width: usize) -> u128 {
    let start = bytes.len() - from_end;
    let mut le = [0u8; 16];
    le[..width].copy_from_slice(&bytes[start..start + width]);
    u128::from_le_bytes(le)
}

fn write_at(mut bytes: Vec<u8>, from_end: usize, width: usize, value: u128) -> Vec<u8> {
    let start = bytes.len() - from_end;
    bytes[start..start + width].copy_from_slice(&value.to_le_bytes()[..width]);
    bytes
}

fn raw_options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
}

#[test]
fn honest_encodings_decode_to_what_was_encoded() {
    // The mirrors read tfhe's own layout: decoding and re-encoding one gives
    // the same bytes, and the checked object equals the one encrypted.
    let (secret, public) = keys();
    let tag = EncryptedTag::encrypt_bitwise(secret, Tag(0x5A5), BITS);
    let bytes = tag.to_bytes();
    let mirror: WireSeededGgswList = raw_options().deserialize(&bytes[1..]).expect("mirror");
    assert_eq!(wire::encode(&mirror), bytes);
    let decoded = EncryptedTag::from_bytes(&bytes, BITS).expect("honest tag");
    assert!(decoded.ggsws == tag.ggsws);

    let mirror: WireCompactPublicKey = raw_options()
        .deserialize(&public.to_bytes()[1..])
        .expect("mirror");
    assert_eq!(wire::encode(&mirror), public.to_bytes());
    let decoded = FhePublicKey::from_bytes(public.to_bytes()).expect("honest key");
    assert_eq!(decoded.key, public.key);

    let file = keys::danger::secret_key_to_file_bytes(secret);
    let decoded = FheSecretKey::from_file_bytes(&file).expect("honest key file");
    assert_eq!(decoded.glwe.as_ref(), secret.glwe.as_ref());
}

#[test]
fn rounded_tags_of_the_wrong_size_are_refused() {
    let rounded = EncryptedTag::encrypt(&keys().0, Tag(0x5A5), BITS).to_bytes();
    assert_eq!(rounded[0], wire::FORMAT_ROUNDED_TAG);
    assert_eq!(rounded.len(), EncryptedTag::encoded_len(BITS));
    let malformed = LookupError::Malformed("encrypted tag");
    let mut longer = rounded.clone();
    longer.push(0);
    assert_eq!(
        refused(&longer, BITS),
        LookupError::TooLarge("encrypted tag")
    );
    assert_eq!(refused(&rounded[..rounded.len() - 1], BITS), malformed);
    assert_eq!(refused(&rounded[..1], BITS), malformed);
    // Sized for 12 bits, read by a node that expects 13.
    assert_eq!(refused(&rounded, BITS + 1), malformed);
    // Tag sizes the evaluation cannot use, whatever the length.
    for bits in [0u8, 11, 65] {
        assert_eq!(
            refused(&rounded, bits),
            LookupError::WrongParameters("encrypted tag")
        );
    }
}
