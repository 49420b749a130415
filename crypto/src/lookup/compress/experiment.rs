//! The measurement behind `params.rs`'s compression budget: each candidate
//! gadget's noise in the rebuilt GGSWs and in the evaluation, against format
//! 2's fresh GGSWs, with the time of each step (ignored: run with
//! `cargo test --workspace --lib compress::experiment -- --ignored --nocapture`).

use std::time::Instant;

use rand::Rng;
use tfhe::core_crypto::prelude::*;

use super::*;
use crate::lookup::params::CountEncoding;
use crate::lookup::{evaluate, generate_keys, EncryptedTag};

const TAG_BITS: u8 = 28;

fn std_log2(errors: &[i64]) -> f64 {
    let n = errors.len() as f64;
    let mean = errors.iter().map(|&e| e as f64).sum::<f64>() / n;
    let var = errors
        .iter()
        .map(|&e| (e as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    var.sqrt().log2()
}

fn candidates() -> Vec<CompressionParams> {
    let base = CompressionParams {
        expansion_levels: 6,
        packing_levels: 6,
        key_switch: (4, 12),
        conversion: (6, 8),
        tree: (8, 3),
    };
    vec![
        base,
        CompressionParams {
            tree: (12, 2),
            ..base
        },
        COMPRESSION,
        // More levels take a seventh expansion level (more than 64 values).
        CompressionParams {
            expansion_levels: 7,
            packing_levels: 7,
            tree: (6, 4),
            ..COMPRESSION
        },
        CompressionParams {
            expansion_levels: 7,
            packing_levels: 7,
            tree: (4, 6),
            ..COMPRESSION
        },
    ]
}

/// Per fresh query (encrypted outside the clock): the evaluation's noise
/// (log2 of σ), and the milliseconds the node spends preparing the query and
/// evaluating the tree.
fn sample<T>(
    table: &[u64],
    encoding: CountEncoding,
    raw_error: &dyn Fn(&LweCiphertextOwned<u64>) -> i64,
    encrypt: impl Fn() -> T,
    prepare: impl Fn(T) -> PreparedTag,
) -> (f64, f64, f64) {
    let samples = 24;
    let (mut errors, mut preparing, mut evaluating) = (Vec::new(), 0.0, 0.0);
    for _ in 0..samples {
        let encrypted = encrypt();
        let start = Instant::now();
        let prepared = prepare(encrypted);
        preparing += start.elapsed().as_secs_f64();
        let start = Instant::now();
        let (raw, _) = evaluate(&prepared, table, 320, encoding).expect("evaluation");
        evaluating += start.elapsed().as_secs_f64();
        errors.push(raw_error(&raw));
    }
    let ms = |seconds: f64| seconds * 1e3 / f64::from(samples);
    (std_log2(&errors), ms(preparing), ms(evaluating))
}

#[test]
#[ignore]
fn measure_compression_candidates() {
    let (secret, _) = generate_keys();
    let encoding = CountEncoding::LARGEST;
    let tag: u64 = 0x0ABC_DEF1;
    let mut rng = rand::thread_rng();
    // A bucket at 1,000,000 identifiers and 4,096 buckets: ~244 tags, padded.
    let table: Vec<u64> = (0..300)
        .map(|_| rng.gen::<u64>() & ((1 << TAG_BITS) - 1))
        .filter(|&t| t != tag)
        .collect();
    let raw_error = |raw: &LweCiphertextOwned<u64>| {
        let phase = decrypt_lwe_ciphertext(&secret.lwe_view(), raw).0;
        let delta = encoding.delta();
        let nearest = phase.wrapping_add(delta / 2) & !(delta - 1);
        phase.wrapping_sub(nearest) as i64
    };
    let (sigma, preparing, evaluating) = sample(
        &table,
        encoding,
        &raw_error,
        || EncryptedTag::encrypt(&secret, Tag(tag), TAG_BITS),
        PreparedTag::prepare,
    );
    println!(
        "format 2: σ = 2^{sigma:.2}; preparation {preparing:.1} ms, evaluation {evaluating:.1} ms per item"
    );
    for p in candidates() {
        let bytes = ExpansionKey::generate_with(&secret, p).to_bytes();
        let key = PreparedExpansionKey::from_bytes_with(&bytes, p).expect("honest");
        let (sigma, preparing, evaluating) = sample(
            &table,
            encoding,
            &raw_error,
            || CompressedTag::encrypt_with(&secret, Tag(tag), TAG_BITS, p),
            |compressed| PreparedTag::prepare_compressed(compressed, &key),
        );
        println!(
            "{p:?}: σ = 2^{sigma:.2}; expansion and conversion {preparing:.1} ms, evaluation {evaluating:.1} ms per item; key {} bytes",
            bytes.len()
        );
    }
}

/// Format 4 against the same bucket: σ of the evaluation, and the node's
/// expansion and tree per item, over groups of three as clients send them.
#[test]
#[ignore]
fn measure_packed_groups() {
    use crate::lookup::PackedTags;
    let (secret, _) = generate_keys();
    let encoding = CountEncoding::LARGEST;
    let mut rng = rand::thread_rng();
    let table: Vec<u64> = (0..300)
        .map(|_| rng.gen::<u64>() & ((1 << TAG_BITS) - 1))
        .collect();
    let bytes = ExpansionKey::generate(&secret).to_bytes();
    let key = PreparedExpansionKey::from_bytes(&bytes).expect("honest");
    let (mut errors, mut preparing, mut evaluating) = (Vec::new(), 0.0, 0.0);
    let groups = 16;
    for _ in 0..groups {
        let tags: Vec<Tag> = (0..3)
            .map(|_| Tag(rng.gen::<u64>() & ((1 << TAG_BITS) - 1)))
            .collect();
        let sent = PackedTags::encrypt(&secret, &tags, TAG_BITS).to_item_bytes();
        let items: Vec<&[u8]> = sent.iter().map(Vec::as_slice).collect();
        let received = PackedTags::from_items(&items, TAG_BITS).expect("honest");
        let start = Instant::now();
        let prepared = PreparedTag::prepare_packed(received, &key);
        preparing += start.elapsed().as_secs_f64();
        for item in &prepared {
            let start = Instant::now();
            let (raw, _) = evaluate(item, &table, 320, encoding).expect("evaluation");
            evaluating += start.elapsed().as_secs_f64();
            let phase = decrypt_lwe_ciphertext(&secret.lwe_view(), &raw).0;
            let delta = encoding.delta();
            let nearest = phase.wrapping_add(delta / 2) & !(delta - 1);
            errors.push(phase.wrapping_sub(nearest) as i64);
        }
    }
    let ms = |seconds: f64| seconds * 1e3 / (3 * groups) as f64;
    println!(
        "format 4: σ = 2^{:.2}; expansion and conversion {:.1} ms, evaluation {:.1} ms per item",
        std_log2(&errors),
        ms(preparing),
        ms(evaluating)
    );
}
