//! Criterion benchmarks of the per-node OPRF (RFC 9497 VOPRF, ristretto255):
//! the node's direct evaluation at import (one item on one thread, and a
//! rayon-parallel batch of 100,000 to extrapolate a 1,000,000-identifier
//! import), the client's blinding and finalising, and the node's blinded
//! evaluation with its batch proof, for the usual batch of 48 items.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use fedq_crypto::oprf::{
    evaluate_blinded, node_fingerprint, node_fingerprints, BlindedItems, NodeOprfKey,
};
use fedq_crypto::{normalise, IdentifierKind, NormalForm};

/// Items of one lookup batch sent to one node.
const BATCH: usize = 48;
/// Items of the parallel import benchmark.
const IMPORT: usize = 100_000;

fn phones(count: usize) -> Vec<NormalForm> {
    (0..count)
        .map(|i| normalise(IdentifierKind::Phone, &format!("+336{:08}", i)).expect("valid phone"))
        .collect()
}

fn items(normals: &[NormalForm]) -> Vec<(IdentifierKind, &NormalForm)> {
    normals
        .iter()
        .map(|normal| (IdentifierKind::Phone, normal))
        .collect()
}

fn oprf(c: &mut Criterion) {
    let key = NodeOprfKey::generate();
    let public = key.public_key().clone();
    let mut group = c.benchmark_group("oprf");
    group.sample_size(10);

    let one = phones(1).remove(0);
    group.throughput(Throughput::Elements(1));
    group.bench_function("node_direct_item", |b| {
        b.iter(|| {
            black_box(node_fingerprint(
                &key,
                IdentifierKind::Phone,
                black_box(&one),
            ))
        })
    });

    let import = phones(IMPORT);
    let import_items = items(&import);
    group.throughput(Throughput::Elements(IMPORT as u64));
    group.bench_function("node_direct_parallel_100k", |b| {
        b.iter(|| black_box(node_fingerprints(&key, black_box(&import_items))))
    });

    let lookup = phones(BATCH);
    let lookup_items = items(&lookup);
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("client_blind_48", |b| {
        b.iter(|| black_box(BlindedItems::blind(black_box(&lookup_items)).expect("blinds")))
    });

    let (_, blinded) = BlindedItems::blind(&lookup_items).expect("blinds");
    group.bench_function("node_evaluate_blinded_48", |b| {
        b.iter(|| black_box(evaluate_blinded(&key, black_box(&blinded)).expect("evaluates")))
    });

    group.bench_function("client_finalize_48", |b| {
        b.iter_batched(
            || {
                let (state, blinded) = BlindedItems::blind(&lookup_items).expect("blinds");
                let answer = evaluate_blinded(&key, &blinded).expect("evaluates");
                (state, answer)
            },
            |(state, answer)| {
                black_box(
                    state
                        .finalize(&public, &answer.elements, &answer.proof)
                        .expect("verifies"),
                )
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, oprf);
criterion_main!(benches);
