//! Criterion benchmarks of the lookup primitives: client encryption of one
//! item, node evaluation at several padded bucket sizes, answer
//! re-randomisation and decoding of an untrusted query.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use fedq_crypto::lookup::{
    evaluate, generate_keys, CountEncoding, EncryptedCount, EncryptedTag, PreparedTag,
};
use fedq_crypto::Tag;

const TAG_BITS: u8 = 28;

fn tags(count: usize) -> Vec<u64> {
    (0..count as u64)
        .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 36)
        .collect()
}

fn lookup(c: &mut Criterion) {
    let (secret, public) = generate_keys();
    let mut group = c.benchmark_group("lookup");
    group.sample_size(10);

    group.bench_function("client_encrypt_item", |b| {
        b.iter(|| {
            black_box(EncryptedTag::encrypt(
                &secret,
                Tag(black_box(12_345)),
                TAG_BITS,
            ))
        })
    });

    let bytes = EncryptedTag::encrypt(&secret, Tag(7), TAG_BITS).to_bytes();
    group.bench_function("decode_and_prepare_item", |b| {
        b.iter(|| {
            PreparedTag::prepare(
                EncryptedTag::from_bytes(black_box(&bytes), TAG_BITS).expect("valid"),
            )
        })
    });

    for padded in [16usize, 256, 320, 1024] {
        let candidates = tags(padded);
        let query =
            PreparedTag::prepare(EncryptedTag::from_bytes(&bytes, TAG_BITS).expect("valid"));
        group.throughput(Throughput::Elements(padded as u64));
        group.bench_with_input(
            BenchmarkId::new("node_evaluate_item", padded),
            &candidates,
            |b, candidates| {
                b.iter(|| {
                    black_box(
                        evaluate(&query, candidates, padded, CountEncoding::LARGEST)
                            .expect("evaluates"),
                    )
                })
            },
        );
    }

    let query = PreparedTag::prepare(EncryptedTag::from_bytes(&bytes, TAG_BITS).expect("valid"));
    let (raw, _) = evaluate(&query, &tags(16), 16, CountEncoding::LARGEST).expect("evaluates");
    group.throughput(Throughput::Elements(1));
    group.bench_function("rerandomise_answer", |b| {
        b.iter(|| {
            black_box(EncryptedCount::rerandomise(
                raw.clone(),
                &public,
                CountEncoding::LARGEST,
            ))
        })
    });
    group.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
