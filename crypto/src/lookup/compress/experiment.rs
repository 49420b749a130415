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
        CompressionParams {
            key_switch: (2, 24),
            ..base
        },
        COMPRESSION,
        CompressionParams {
            tree: (4, 6),
            ..COMPRESSION
        },
    ]
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
    let samples = 24;
    let (mut errors, mut prepare, mut eval) = (Vec::new(), 0.0, 0.0);
    for _ in 0..samples {
        let encrypted = EncryptedTag::encrypt(&secret, Tag(tag), TAG_BITS);
        let start = Instant::now();
        let prepared = PreparedTag::prepare(encrypted);
        prepare += start.elapsed().as_secs_f64();
        let start = Instant::now();
        let (raw, _) = evaluate(&prepared, &table, 320, encoding).expect("evaluation");
        eval += start.elapsed().as_secs_f64();
        errors.push(raw_error(&raw));
    }
    println!(
        "format 2: σ = 2^{:.2}; preparation {:.1} ms, evaluation {:.1} ms per item",
        std_log2(&errors),
        prepare * 1e3 / samples as f64,
        eval * 1e3 / samples as f64
    );
    for p in candidates() {
        let bytes = ExpansionKey::generate_with(&secret, p).to_bytes();
        let key = PreparedExpansionKey::from_bytes_with(&bytes, p).expect("honest");
        let (mut errors, mut prepare, mut eval) = (Vec::new(), 0.0, 0.0);
        for _ in 0..samples {
            let compressed = CompressedTag::encrypt_with(&secret, Tag(tag), TAG_BITS, p);
            let start = Instant::now();
            let prepared = PreparedTag::prepare_compressed(compressed, &key);
            prepare += start.elapsed().as_secs_f64();
            let start = Instant::now();
            let (raw, _) = evaluate(&prepared, &table, 320, encoding).expect("evaluation");
            eval += start.elapsed().as_secs_f64();
            errors.push(raw_error(&raw));
        }
        println!(
            "{p:?}: σ = 2^{:.2}; expansion and conversion {:.1} ms, evaluation {:.1} ms per item; key {} bytes",
            std_log2(&errors),
            prepare * 1e3 / samples as f64,
            eval * 1e3 / samples as f64,
            bytes.len()
        );
    }
}
