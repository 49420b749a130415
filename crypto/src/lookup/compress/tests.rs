use std::sync::OnceLock;

use rand::Rng;
use tfhe::core_crypto::prelude::*;

use super::*;
use crate::lookup::params::CountEncoding;
use crate::lookup::{evaluate, generate_keys, EncryptedCount, FhePublicKey};

const TAG_BITS: u8 = 28;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;

pub(crate) struct Keys {
    pub(crate) secret: FheSecretKey,
    pub(crate) public: FhePublicKey,
    pub(crate) expansion: PreparedExpansionKey,
}

/// One requester for every test here and in `packed`: the expansion key, as
/// a node decodes it from the requester's bytes.
pub(crate) fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let (secret, public) = generate_keys();
        let bytes = ExpansionKey::generate(&secret).to_bytes();
        assert_eq!(bytes.len(), ExpansionKey::encoded_len());
        let expansion = PreparedExpansionKey::from_bytes(&bytes).expect("honest key");
        Keys {
            secret,
            public,
            expansion,
        }
    })
}

pub(crate) fn decrypt(glwe: &Glwe) -> Vec<u64> {
    let mut plain = PlaintextList::new(0u64, PlaintextCount(n()));
    decrypt_glwe_ciphertext(&keys().secret.glwe, glwe, &mut plain);
    plain.into_container()
}

fn received(tag: u64, tag_bits: u8) -> CompressedTag {
    let sent = CompressedTag::encrypt(&keys().secret, Tag(tag), tag_bits).to_bytes();
    assert_eq!(sent.len(), CompressedTag::encoded_len());
    CompressedTag::from_bytes(&sent, tag_bits).expect("honest tag")
}

/// Signed distance, in units of 2^64.
pub(crate) fn distance(a: u64, b: u64) -> u64 {
    (a.wrapping_sub(b) as i64).unsigned_abs()
}

#[test]
fn sizes_meet_the_upload_targets() {
    assert_eq!(CompressedTag::encoded_len(), 24_609);
    assert!(CompressedTag::encoded_len() <= 32 * 1024);
    assert_eq!(ExpansionKey::encoded_len(), 3_407_905);
    assert!(ExpansionKey::encoded_len() <= 4 * 1024 * 1024);
    // Widths up to 32 bits (the default is 28) fit one packed GLWE; wider
    // tags travel in format 2.
    for bits in LOW_TAG_BITS + 1..=crate::fingerprint::MAX_TAG_BITS {
        assert_eq!(CompressedTag::supports(bits), bits <= 32, "{bits}");
        assert_eq!(check_compressed_bits(bits).is_ok(), bits <= 32, "{bits}");
    }
}

/// Many random tags: each expanded GLWE decrypts to its packed value as a
/// constant polynomial, the other coefficients to noise.
#[test]
fn expansion_returns_each_packed_value_as_a_constant() {
    let key = &keys().expansion;
    let mut rng = rand::thread_rng();
    let mut worst = 0u64;
    for _ in 0..8 {
        let tag = rng.gen::<u64>() & TAG_MASK;
        let expected = tree_values(
            (LOW_TAG_BITS..TAG_BITS).map(|b| (tag >> b) & 1),
            COMPRESSION,
        );
        let compressed = received(tag, TAG_BITS);
        let expanded = key.expand(
            compressed.packed.decompress_into_glwe_ciphertext(),
            expected.len(),
            COMPRESSION.expansion_levels,
        );
        assert_eq!(expanded.len(), expected.len());
        for (glwe, &value) in expanded.iter().zip(&expected) {
            let phase = decrypt(glwe);
            worst = worst.max(distance(phase[0], value));
            worst = phase[1..].iter().fold(worst, |w, &c| w.max(distance(c, 0)));
        }
    }
    // Measured σ ≈ 2^28-2^29; the smallest packed factor is 2^40.
    assert!(
        worst < 1 << 34,
        "expansion noise up to 2^{:.1}",
        (worst as f64).log2()
    );
}

/// The rebuilt GGSWs against GGSWs that tfhe encrypts directly with the same
/// gadget, row by row: the same plaintexts, up to noise.
#[test]
fn rebuilt_ggsws_decrypt_like_directly_encrypted_ones() {
    let Keys {
        secret, expansion, ..
    } = keys();
    let levels = COMPRESSION.tree.1;
    let mut rng = rand::thread_rng();
    let mut seeder = new_seeder();
    let mut generator =
        EncryptionRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed(), seeder.as_mut());
    let mut worst = 0u64;
    for _ in 0..6 {
        let tag = rng.gen::<u64>() & TAG_MASK;
        let bits: Vec<u64> = (LOW_TAG_BITS..TAG_BITS).map(|b| (tag >> b) & 1).collect();
        let compressed = received(tag, TAG_BITS);
        let expanded = expansion.expand(
            compressed.packed.decompress_into_glwe_ciphertext(),
            bits.len() * levels,
            COMPRESSION.expansion_levels,
        );
        for (&bit, glwes) in bits.iter().zip(expanded.chunks(levels)) {
            let mut direct = zero_ggsw(COMPRESSION.tree);
            encrypt_constant_ggsw_ciphertext(
                &secret.glwe,
                &mut direct,
                Cleartext(bit),
                PARAMETERS.noise,
                &mut generator,
            );
            let key_rows = expansion.key_rows(glwes);
            for (index, matrix) in direct.iter().enumerate() {
                let rows = matrix.as_glwe_list();
                let rebuilt = [&key_rows[index], &glwes[index]];
                for (row, rebuilt) in rows.iter().zip(rebuilt) {
                    let direct_row = GlweCiphertext::from_container(
                        row.as_ref().to_vec(),
                        PARAMETERS.polynomial_size,
                        PARAMETERS.ciphertext_modulus,
                    );
                    let (want, got) = (decrypt(&direct_row), decrypt(rebuilt));
                    worst = want
                        .iter()
                        .zip(&got)
                        .fold(worst, |w, (&a, &b)| w.max(distance(a, b)));
                }
            }
        }
    }
    // The `-s · bit` rows carry ~2^36 (params.rs); a wrong row is off by
    // ~2^58 (a gadget factor of 2^40 times the key).
    assert!(
        worst < 1 << 40,
        "rows differ by up to 2^{:.1}",
        (worst as f64).log2()
    );
}

fn evaluate_compressed(tag: u64, candidates: &[u64], encoding: CountEncoding) -> u32 {
    let Keys {
        secret,
        public,
        expansion,
    } = keys();
    let prepared = PreparedTag::prepare_compressed(received(tag, TAG_BITS), expansion);
    let (raw, _) =
        evaluate(&prepared, candidates, candidates.len() + 4, encoding).expect("evaluation");
    EncryptedCount::rerandomise(raw, public, encoding).decrypt(secret, encoding)
}

#[test]
fn a_compressed_tag_counts_a_match_and_nothing_else() {
    let mut rng = rand::thread_rng();
    for nodes in [1, 3, 32, 64] {
        let encoding = CountEncoding::for_nodes(nodes).expect("federation size");
        let table: Vec<u64> = (0..24).map(|_| rng.gen::<u64>() & TAG_MASK).collect();
        // First and last entries, and the leaf's first and last coefficients.
        for tag in [table[0], table[23], table[5] & !0x7ff, table[7] | 0x7ff] {
            let mut candidates = table.clone();
            candidates.push(tag);
            assert_eq!(
                evaluate_compressed(tag, &candidates, encoding),
                1,
                "{nodes} nodes"
            );
        }
        let missing = (table[3] ^ (1 << 20)) & TAG_MASK;
        assert!(!table.contains(&missing));
        assert_eq!(
            evaluate_compressed(missing, &table, encoding),
            0,
            "{nodes} nodes"
        );
        // One bit off in the low part: the same leaf, another coefficient.
        let near = table[4] ^ 1;
        if !table.contains(&near) {
            assert_eq!(
                evaluate_compressed(near, &table, encoding),
                0,
                "{nodes} nodes"
            );
        }
    }
}

/// 32 nodes' answers, each flooded as its federation's encoding allows,
/// added as the coordinator adds them: the sum decrypts to the number of
/// nodes holding the tag, trial after trial.
#[test]
fn thirty_two_nodes_add_up_exactly() {
    let Keys {
        secret,
        public,
        expansion,
    } = keys();
    let encoding = CountEncoding::for_nodes(32).expect("32 nodes");
    let mut rng = rand::thread_rng();
    for _ in 0..6 {
        let tag = rng.gen::<u64>() & TAG_MASK;
        let holders = rng.gen_range(0..=32usize);
        let answers: Vec<EncryptedCount> = (0..32)
            .map(|node| {
                let mut table: Vec<u64> = (0..12).map(|_| rng.gen::<u64>() & TAG_MASK).collect();
                table.retain(|&t| t != tag);
                if node < holders {
                    table.push(tag);
                }
                let prepared = PreparedTag::prepare_compressed(received(tag, TAG_BITS), expansion);
                let (raw, _) = evaluate(&prepared, &table, 16, encoding).expect("evaluation");
                EncryptedCount::rerandomise(raw, public, encoding)
            })
            .collect();
        let mut sum = EncryptedCount::zero();
        answers.iter().for_each(|answer| sum.add_assign(answer));
        assert_eq!(sum.decrypt(secret, encoding), holders as u32);
    }
}

#[test]
fn an_expansion_key_is_told_apart_from_another_secrets() {
    let bytes = ExpansionKey::generate(&keys().secret).to_bytes();
    assert!(ExpansionKey::belongs_to(&keys().secret, &bytes));
    let (other, _) = generate_keys();
    assert!(!ExpansionKey::belongs_to(&other, &bytes));
    assert!(!ExpansionKey::belongs_to(
        &keys().secret,
        &bytes[..bytes.len() - 1]
    ));
}

#[test]
fn malformed_compressed_tags_and_keys_are_refused() {
    let tag = CompressedTag::encrypt(&keys().secret, Tag(5), TAG_BITS).to_bytes();
    refuses_other_shapes(&tag, (1, wire::FORMAT_ROUNDED_TAG), TAG, |bytes| {
        CompressedTag::from_bytes(bytes, TAG_BITS).err()
    });
    // Widths the evaluation cannot use.
    assert!(CompressedTag::from_bytes(&tag, LOW_TAG_BITS).is_err());
    assert!(CompressedTag::from_bytes(&tag, 64).is_err());

    let key = vec![wire::FORMAT_EXPANSION_KEY; ExpansionKey::encoded_len()];
    assert!(PreparedExpansionKey::from_bytes(&key).is_ok());
    refuses_other_shapes(&key, (8, 9), KEY, |bytes| {
        PreparedExpansionKey::from_bytes(bytes).err()
    });
}

/// Around `honest`, an accepted encoding of fixed length: `cut` bytes fewer,
/// one more, the format byte alone, nothing, and another format byte are
/// each refused as what they are.
pub(crate) fn refuses_other_shapes(
    honest: &[u8],
    (cut, other_format): (usize, u8),
    what: &'static str,
    refused: impl Fn(&[u8]) -> Option<LookupError>,
) {
    let short = &honest[..honest.len() - cut];
    assert_eq!(refused(short), Some(LookupError::Malformed(what)));
    let long = [honest, &[0]].concat();
    assert_eq!(refused(&long), Some(LookupError::TooLarge(what)));
    assert_eq!(refused(&honest[..1]), Some(LookupError::Malformed(what)));
    assert_eq!(refused(b""), Some(LookupError::Malformed(what)));
    let mut other = honest.to_vec();
    other[0] = other_format;
    assert_eq!(refused(&other), Some(LookupError::UnsupportedFormat(what)));
}

/// A requester's bytes of the right shapes are ciphertexts of something:
/// random ones expand and evaluate without a panic.
#[test]
fn random_bytes_of_the_right_shapes_evaluate() {
    let mut rng = rand::thread_rng();
    let mut key = vec![0u8; ExpansionKey::encoded_len()];
    rng.fill(&mut key[..]);
    key[0] = wire::FORMAT_EXPANSION_KEY;
    let key = PreparedExpansionKey::from_bytes(&key).expect("shape");
    let mut tag = vec![0u8; CompressedTag::encoded_len()];
    rng.fill(&mut tag[..]);
    tag[0] = wire::FORMAT_COMPRESSED_TAG;
    let tag = CompressedTag::from_bytes(&tag, TAG_BITS).expect("shape");
    let prepared = PreparedTag::prepare_compressed(tag, &key);
    let table: Vec<u64> = (0..8).map(|_| rng.gen::<u64>() & TAG_MASK).collect();
    assert!(evaluate(&prepared, &table, 8, CountEncoding::LARGEST).is_ok());
}
