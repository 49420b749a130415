//! Residual-leak tests (Guarantee 7): what a requester that holds the secret key
//! can learn from answers about the node's entries that do not match its query.
//!
//! The requester sees more than the decrypted count: with the secret key it
//! computes each answer's exact phase error (to the answer modulus 2^32), and it
//! sees the mask. These tests play that requester.
//!
//! What they establish, and what they do not:
//! - The mask of an answer is fresh: two answers to the same query share no
//!   mask structure, and neither resembles the un-re-randomised mask, which
//!   for a full bucket is a deterministic function of the query and the table
//!   ([`answer_masks_are_fresh_and_uncorrelated`]).
//! - Generic two-sample tests (Kolmogorov–Smirnov, means, variances) on the
//!   phase errors of a few hundred answers cannot tell two tables apart that
//!   differ only in entries that do not match the query, whether the query is
//!   replayed or freshly encrypted; the same tests do tell them apart once the
//!   table-dependent part of the noise is B/2, which calibrates their
//!   resolution (~B/2^2.8 at these sample sizes, for flooding on [-B, B])
//!   ([`generic_distinguishers_do_not_separate_non_matching_tables`], three
//!   nodes: B = 2^59). With the encoding for 64 nodes (B = 2^49) the same tests
//!   came close (measured 2026-12-02: z of the means 2.6 and 3.2 against the
//!   4.4 that rejects): a few thousand answers would separate the tables by
//!   their means alone.
//! - They do NOT establish circuit privacy. The flooding is partial: uniform
//!   noise of width W = 2B (B from 2^49 at 64 nodes to 2^61 at one, see
//!   [`super::params::CountEncoding`]) over an evaluation noise of ~2^45.4, and a
//!   requester that can name the two candidate tables computes both evaluation
//!   noises itself (it holds the key and its own GGSWs; a bucket at or above
//!   the padding has no dummies, so the evaluation is deterministic). An answer
//!   then identifies the table whenever it falls outside the other table's
//!   flooding band, which happens with probability |e0 - e1| / W per answer
//!   (for tables differing in one entry, measured 2026-12-03 with format 2
//!   tags: 449 of 8,000 answers at 64 nodes, 1 of 8,000 at three; format 1's
//!   larger noise gave 979 and 2): at 64 nodes a few dozen
//!   answers to one bucket, replayed or fresh, tell the tables apart; at
//!   three, tens of thousands. [`known_table_distinguisher_gains_exactly_the_flooding_ratio`]
//!   checks that the leak is this and no more (it fails if the flooding shrinks,
//!   disappears, or anything else in the answer carries table information);
//!   [`known_candidate_tables_cannot_be_told_apart`] states the full
//!   guarantee, fails today, and is ignored until the flooding is statistical.
//!
//! All statistical bounds are set so that a correct implementation fails a
//! test with probability below ~10^-4 per run (union bound; the figures are
//! given next to each bound). Keys are generated once for the module.

use std::sync::OnceLock;
use std::time::Instant;

use tfhe::core_crypto::prelude::*;

use super::params::{ANSWER_MODULUS_LOG, PARAMETERS};
use super::*;
use crate::fingerprint::Tag;

const TAG_BITS: u8 = 28;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;

/// The federation the answers are measured for, unless a test names another:
/// three nodes, as in the integration tests (flooding 2^59).
fn encoding() -> CountEncoding {
    CountEncoding::for_nodes(3).expect("three nodes")
}

/// Half-width B of `encoding`'s flooding noise: TUniform(b) is uniform on
/// [-B, B] with B = 2^b.
fn flood(encoding: CountEncoding) -> i64 {
    1 << encoding.flood_bound_log2()
}
/// Slack around the flooding band for the other fresh noise of an answer: the
/// public-key encryption (standard deviation ~2^21) and the rounding of the
/// switch to 2^32 (standard deviation ~2^35.2, from 2048 mask coefficients
/// rounded by up to 2^31 and a binary key). 2^40 is ~28 standard deviations.
const SLACK: i64 = 1 << 40;

/// Two-sided tail probability of each statistical bound in the generic tests.
const ALPHA: f64 = 1e-5;
/// Standard normal quantile for a two-sided `ALPHA`.
const Z_ALPHA: f64 = 4.4172;

fn keys() -> &'static (FheSecretKey, FhePublicKey) {
    static KEYS: OnceLock<(FheSecretKey, FhePublicKey)> = OnceLock::new();
    KEYS.get_or_init(generate_keys)
}

/// `count` distinct 28-bit tags, none equal to `QUERY`.
fn table(count: u64, seed: u64) -> Vec<u64> {
    let tags: Vec<u64> = (0..count)
        .map(|i| (i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed) & TAG_MASK)
        .collect();
    assert!(!tags.contains(&QUERY));
    tags
}

const QUERY: u64 = 0x0ABC_DEF1 & TAG_MASK;

/// A fresh encryption of `tag`, as the node receives and prepares it.
fn query(tag: u64) -> PreparedTag {
    let (secret, _) = keys();
    let encrypted = EncryptedTag::encrypt(secret, Tag(tag), TAG_BITS);
    let received = EncryptedTag::from_bytes(&encrypted.to_bytes(), TAG_BITS).expect("honest");
    PreparedTag::prepare(received)
}

/// A fresh packed (format 4) encryption of `tag` in the middle slot of a
/// group of three, expanded as the node expands it.
fn packed_query(tag: u64) -> PreparedTag {
    let (secret, _) = keys();
    let tags = [Tag(tag ^ 0x5A5A), Tag(tag), Tag(tag ^ 0x0F0F_0000)];
    let sent = PackedTags::encrypt(secret, &tags, TAG_BITS).to_item_bytes();
    let items: Vec<&[u8]> = sent.iter().map(Vec::as_slice).collect();
    let received = PackedTags::from_items(&items, TAG_BITS).expect("honest");
    PreparedTag::prepare_packed(received, expansion_key()).swap_remove(1)
}

/// A tag format's name and how a fresh query of it reaches the tree.
type Format = (&'static str, fn(u64) -> PreparedTag);

/// The requester's expansion key as a node prepares it (one for the module).
fn expansion_key() -> &'static PreparedExpansionKey {
    static KEY: OnceLock<PreparedExpansionKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let bytes = ExpansionKey::generate(&keys().0).to_bytes();
        PreparedExpansionKey::from_bytes(&bytes).expect("honest key")
    })
}

/// A fresh compressed (format 3) encryption of `tag`, expanded as the node
/// expands it.
fn compressed_query(tag: u64) -> PreparedTag {
    let (secret, _) = keys();
    let sent = CompressedTag::encrypt(secret, Tag(tag), TAG_BITS).to_bytes();
    let received = CompressedTag::from_bytes(&sent, TAG_BITS).expect("honest");
    PreparedTag::prepare_compressed(received, expansion_key())
}

/// What the node sends for one item: a fresh evaluation (fresh dummies),
/// re-randomised. `shift` is added to the raw phase first (controls only).
fn answer(
    query: &PreparedTag,
    candidates: &[u64],
    (pad_to, shift): (usize, u64),
    encoding: CountEncoding,
) -> EncryptedCount {
    let (_, public) = keys();
    let (mut raw, _) = evaluate(query, candidates, pad_to, encoding).expect("evaluation");
    let body = raw.get_mut_body();
    *body.data = body.data.wrapping_add(shift);
    EncryptedCount::rerandomise(raw, public, encoding)
}

/// The exact signed distance of a raw (2^64) result's phase to the nearest
/// multiple of Δ: its evaluation noise, as the key holder computes it.
fn raw_error(raw: &LweCiphertextOwned<u64>, encoding: CountEncoding) -> i64 {
    let (secret, _) = keys();
    let phase = decrypt_lwe_ciphertext(&secret.lwe_view(), raw).0;
    let delta = encoding.delta();
    let nearest = phase.wrapping_add(delta / 2) & !(delta - 1);
    phase.wrapping_sub(nearest) as i64
}

/// An answer's phase error in the same (2^64) units. Exact: the error is a
/// multiple of 2^32 below 2^62, which an f64 holds.
fn answer_error(answer: &EncryptedCount, encoding: CountEncoding) -> i64 {
    let (secret, _) = keys();
    (answer.phase_error(secret, encoding) * encoding.delta() as f64) as i64
}

/// An answer's mask (k·N values mod 2^32), from its wire encoding.
fn mask_of(answer: &EncryptedCount) -> Vec<u32> {
    let bytes = answer.to_bytes();
    let mut words: Vec<u32> = bytes[1..]
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    words.pop(); // the body
    words
}

/// The mask a node would send without re-randomising (switched to 2^32 only).
fn unrandomised_mask(raw: &LweCiphertextOwned<u64>) -> Vec<u32> {
    lwe_ciphertext_modulus_switch::<u64, u32, _>(
        raw.clone(),
        CiphertextModulusLog(ANSWER_MODULUS_LOG as usize),
    )
    .mask()
    .collect()
}

// ----------------------------------------------------------------- statistics

fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

/// Two-sample Kolmogorov–Smirnov statistic sup |F_a - F_b|.
fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let t = a[i].min(b[j]);
        while i < a.len() && a[i] <= t {
            i += 1;
        }
        while j < b.len() && b[j] <= t {
            j += 1;
        }
        d = d.max((i as f64 / a.len() as f64 - j as f64 / b.len() as f64).abs());
    }
    d
}

/// Asymptotic critical value of the two-sample KS statistic at level `ALPHA`:
/// c(α)·sqrt((n+m)/(nm)) with c(α) = sqrt(-ln(α/2)/2) (2.470 for α = 10^-5).
fn ks_critical(n: usize, m: usize) -> f64 {
    let c = (-(ALPHA / 2.0).ln() / 2.0).sqrt();
    c * ((n + m) as f64 / (n * m) as f64).sqrt()
}

/// What a generic two-sample distinguisher sees between two samples of
/// phase errors.
#[derive(Debug)]
struct Verdict {
    ks: f64,
    ks_critical: f64,
    /// Welch z of the difference of means.
    z_mean: f64,
    /// z of the difference of variances (fourth moments estimated).
    z_var: f64,
}

impl Verdict {
    fn of(a: &[i64], b: &[i64], encoding: CountEncoding) -> Self {
        // Units of the flooding bound keep the moments well inside f64.
        let unit = flood(encoding) as f64;
        let a: Vec<f64> = a.iter().map(|&v| v as f64 / unit).collect();
        let b: Vec<f64> = b.iter().map(|&v| v as f64 / unit).collect();
        let (ma, va) = mean_var(&a);
        let (mb, vb) = mean_var(&b);
        let (na, nb) = (a.len() as f64, b.len() as f64);
        let m4 =
            |x: &[f64], m: f64| x.iter().map(|v| (v - m).powi(4)).sum::<f64>() / x.len() as f64;
        let var_of_var = |x: &[f64], m: f64, v: f64, n: f64| (m4(x, m) - v * v) / n;
        Self {
            ks: ks_statistic(&a, &b),
            ks_critical: ks_critical(a.len(), b.len()),
            z_mean: (ma - mb) / (va / na + vb / nb).sqrt(),
            z_var: (va - vb) / (var_of_var(&a, ma, va, na) + var_of_var(&b, mb, vb, nb)).sqrt(),
        }
    }

    /// Whether any of the three tests rejects "same distribution" at `ALPHA`.
    /// Under the null the probability is at most 3·ALPHA (union bound).
    fn tells_apart(&self) -> bool {
        self.ks > self.ks_critical || self.z_mean.abs() > Z_ALPHA || self.z_var.abs() > Z_ALPHA
    }
}

/// Pearson correlation of two masks read as centred values in [-2^31, 2^31).
fn correlation(a: &[u32], b: &[u32]) -> f64 {
    let a: Vec<f64> = a.iter().map(|&v| f64::from(v as i32)).collect();
    let b: Vec<f64> = b.iter().map(|&v| f64::from(v as i32)).collect();
    let (ma, va) = mean_var(&a);
    let (mb, vb) = mean_var(&b);
    let cov = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / (a.len() as f64 - 1.0);
    cov / (va * vb).sqrt()
}

/// Whether two masks look independent: correlation within 5 standard errors
/// of 0 (1/sqrt(2048) each; probability 5.7·10^-7 to exceed for independent
/// uniform masks) and at most 2 equal coordinates (2048·2^-32 expected).
fn masks_look_independent(a: &[u32], b: &[u32]) -> bool {
    let r = correlation(a, b);
    let equal = a.iter().zip(b).filter(|(x, y)| x == y).count();
    r.abs() <= 5.0 / (a.len() as f64).sqrt() && equal <= 2
}

// ---------------------------------------------------------------------- tests

#[test]
fn answer_masks_are_fresh_and_uncorrelated() {
    let start = Instant::now();
    let (secret, public) = keys();
    // A full bucket (no dummies): the raw result is a function of the query
    // and the table only. (With dummies, the raw mask and noise also change
    // from one evaluation to the next: a dummy leaf turns a node x - b·x into
    // x + b·(0 - x), which differs when a coefficient of x sits exactly on a
    // rounding tie of the gadget decomposition: ties round up for x and -x
    // alike. That is no re-randomisation.)
    let candidates = table(12, 0x5EED);
    let q = query(QUERY);
    let (raw, _) = evaluate(&q, &candidates, candidates.len(), encoding()).expect("evaluation");
    let (raw_again, _) =
        evaluate(&q, &candidates, candidates.len(), encoding()).expect("evaluation");
    assert_eq!(
        raw, raw_again,
        "evaluation of a full bucket is deterministic"
    );

    // Without re-randomisation, two answers to the same query share their
    // mask: the independence check must fail on them (it can fail).
    let plain = unrandomised_mask(&raw);
    assert!(!masks_look_independent(
        &plain,
        &unrandomised_mask(&raw_again)
    ));
    assert_eq!(correlation(&plain, &unrandomised_mask(&raw_again)), 1.0);

    let first = EncryptedCount::rerandomise(raw.clone(), public, encoding());
    let second = EncryptedCount::rerandomise(raw, public, encoding());
    let (a, b) = (mask_of(&first), mask_of(&second));
    assert_eq!(a.len(), PARAMETERS.lwe_dimension().0);
    assert_ne!(a, plain, "the answer's mask is not the evaluation's");
    for (x, y, what) in [
        (&a, &b, "two answers to one query"),
        (&a, &plain, "first answer and the un-re-randomised mask"),
        (&b, &plain, "second answer and the un-re-randomised mask"),
    ] {
        assert!(
            masks_look_independent(x, y),
            "{what}: correlation {:.4}, {} equal coordinates",
            correlation(x, y),
            x.iter().zip(y.iter()).filter(|(u, v)| u == v).count()
        );
    }
    assert_eq!(first.decrypt(secret, encoding()), 0);
    assert_eq!(second.decrypt(secret, encoding()), 0);
    println!("mask test: {:?}", start.elapsed());
}

/// Phase errors and decrypted values of `n` answers to one query.
fn sample(
    q: &PreparedTag,
    candidates: &[u64],
    (pad_to, shift): (usize, u64),
    n: usize,
    encoding: CountEncoding,
) -> (Vec<i64>, Vec<u32>) {
    let (secret, _) = keys();
    (0..n)
        .map(|_| {
            let a = answer(q, candidates, (pad_to, shift), encoding);
            (answer_error(&a, encoding), a.decrypt(secret, encoding))
        })
        .unzip()
}

/// What generic two-sample tests see between two partly filled buckets that
/// differ only in entries that do not match the query, for answers flooded
/// as for `encoding`'s federation; and a control with a noise shift of half
/// the flooding bound, which they must see.
fn generic_verdicts(encoding: CountEncoding) -> (Vec<(&'static str, Verdict)>, Verdict) {
    // Partly filled buckets padded to 16 (fresh dummies in every evaluation):
    // different real tags and different numbers of real entries.
    const PAD: usize = 16;
    const N: usize = 600;
    const FRESH: usize = 150;
    let t0 = table(8, 0x1111);
    let t1 = table(5, 0x2222);
    // The same pair, each also holding the queried tag.
    let h0: Vec<u64> = t0.iter().copied().chain([QUERY]).collect();
    let h1: Vec<u64> = t1.iter().copied().chain([QUERY]).collect();

    let replayed = query(QUERY);
    let (miss0, v) = sample(&replayed, &t0, (PAD, 0), N, encoding);
    assert!(v.iter().all(|&c| c == 0));
    let (miss1, v) = sample(&replayed, &t1, (PAD, 0), N, encoding);
    assert!(v.iter().all(|&c| c == 0));
    let (hit0, v) = sample(&replayed, &h0, (PAD, 0), N, encoding);
    assert!(v.iter().all(|&c| c == 1));
    let (hit1, v) = sample(&replayed, &h1, (PAD, 0), N, encoding);
    assert!(v.iter().all(|&c| c == 1));

    // Fresh encryptions of the same tag: one answer per table each.
    let (mut fresh0, mut fresh1) = (Vec::new(), Vec::new());
    for _ in 0..FRESH {
        let q = query(QUERY);
        fresh0.push(answer_error(&answer(&q, &t0, (PAD, 0), encoding), encoding));
        fresh1.push(answer_error(&answer(&q, &t1, (PAD, 0), encoding), encoding));
    }

    // Calibration: the same tests on T0 with B/2 added to its evaluation
    // noise before re-randomisation (as if the tables' noises differed by
    // that much). The mean alone is then ~12 standard errors apart: the
    // tests must see it (probability of missing it < 10^-14).
    let shift = (flood(encoding) / 2) as u64;
    let (shifted0, _) = sample(&replayed, &t0, (PAD, shift), N / 2, encoding);
    let cases = vec![
        (
            "missing tag, replayed query",
            Verdict::of(&miss0, &miss1, encoding),
        ),
        (
            "present tag, replayed query",
            Verdict::of(&hit0, &hit1, encoding),
        ),
        (
            "missing tag, fresh queries",
            Verdict::of(&fresh0, &fresh1, encoding),
        ),
    ];
    (cases, Verdict::of(&shifted0, &miss1, encoding))
}

#[test]
fn generic_distinguishers_do_not_separate_non_matching_tables() {
    let start = Instant::now();
    // Under the null each verdict rejects with probability <= 3·10^-5; the
    // three that must not reject give a false-failure rate below 10^-4.
    // At these sizes the mean test resolves a noise difference of about
    // 4.4 · 2B/sqrt(12) · sqrt(2/600) ≈ B/2^2.8 (B/2^1.8 for the fresh
    // sample): 2^56.2 for three nodes (B = 2^59), far above the ~2^44-2^47 by
    // which these tables' evaluation noises differ. Passing says the flooding
    // hides the noise from such tests at this sample size, not that the noise
    // carries no information (see
    // `known_table_distinguisher_gains_exactly_the_flooding_ratio`).
    let (cases, control) = generic_verdicts(encoding());
    for (what, verdict) in &cases {
        println!("{what}: {verdict:?}");
        assert!(!verdict.tells_apart(), "{what}: {verdict:?}");
    }
    println!("control (T0 noise + B/2): {control:?}");
    assert!(
        control.tells_apart(),
        "the tests must see a shift of B/2: {control:?}"
    );
    println!("generic distinguisher test: {:?}", start.elapsed());
}

/// The best distinguisher for a requester that knows both candidate tables.
struct BandExperiment {
    answers: usize,
    /// Answers that fell outside the other table's flooding band, each of which
    /// tells the requester with certainty which table answered.
    identifying: usize,
    /// What partial flooding predicts for that count: the sum over answers of
    /// (|e0 - e1| - SLACK)^+ / W.
    expected: f64,
    /// Answers outside their own table's band (must never happen).
    outside_own_band: usize,
    /// log2 |e0 - e1| per query.
    gaps_log2: Vec<f64>,
    /// log2 of the error of the midrange of each (query, table)'s answers as
    /// an estimate of its evaluation noise: what a requester learns about the
    /// noise without any candidate table (expected ~W/(1.4·n)).
    midrange_error_log2: Vec<f64>,
}

/// For each of `queries` fresh encryptions of the absent tag, `n` answers from
/// each of two full buckets that differ in one non-matching entry. The
/// requester computes each table's exact evaluation noise itself (no dummies:
/// deterministic) and checks each answer against both flooding bands.
fn band_experiment(
    queries: usize,
    n: usize,
    encoding: CountEncoding,
    fresh: fn(u64) -> PreparedTag,
) -> BandExperiment {
    let (_, public) = keys();
    // Flooded as a node floods this format's answers.
    let encoding = encoding.with_noise(fresh(QUERY).noise());
    let flood = flood(encoding);
    let t0 = table(8, 0x3333);
    let mut t1 = t0.clone();
    t1[7] = table(1, 0x4444)[0];
    assert_ne!(t0, t1);
    let mut result = BandExperiment {
        answers: 0,
        identifying: 0,
        expected: 0.0,
        outside_own_band: 0,
        gaps_log2: Vec::new(),
        midrange_error_log2: Vec::new(),
    };
    for _ in 0..queries {
        let q = fresh(QUERY);
        // The requester's own computation of the two candidates' noise.
        let e = [
            raw_error(
                &evaluate(&q, &t0, t0.len(), encoding).expect("evaluation").0,
                encoding,
            ),
            raw_error(
                &evaluate(&q, &t1, t1.len(), encoding).expect("evaluation").0,
                encoding,
            ),
        ];
        let gap = (e[0] - e[1]).unsigned_abs();
        result.gaps_log2.push((gap as f64).log2());
        // An answer falls outside the other band with this probability (all
        // of them once the gap passes the band's width).
        let p = (gap.saturating_sub(SLACK as u64) as f64 / (2 * flood) as f64).min(1.0);
        for (b, candidates) in [&t0, &t1].into_iter().enumerate() {
            // The node's evaluation (replayed query: re-evaluated each time).
            let (raw, _) =
                evaluate(&q, candidates, candidates.len(), encoding).expect("evaluation");
            assert_eq!(
                raw_error(&raw, encoding),
                e[b],
                "a full bucket evaluates deterministically"
            );
            let (mut low, mut high) = (i64::MAX, i64::MIN);
            for _ in 0..n {
                let answer = EncryptedCount::rerandomise(raw.clone(), public, encoding);
                let x = answer_error(&answer, encoding);
                (low, high) = (low.min(x), high.max(x));
                let in_band = |e: i64| (x - e).abs() <= flood + SLACK;
                result.answers += 1;
                result.expected += p;
                if !in_band(e[b]) {
                    result.outside_own_band += 1;
                }
                if !in_band(e[1 - b]) {
                    result.identifying += 1;
                }
            }
            let midrange = low / 2 + high / 2;
            let error = (midrange - e[b]).unsigned_abs() as f64;
            result.midrange_error_log2.push(error.log2());
        }
    }
    result
}

#[test]
fn known_table_distinguisher_gains_exactly_the_flooding_ratio() {
    let start = Instant::now();
    // Three nodes (B = 2^59) and the largest encoding, 64 nodes (B = 2^49): the
    // latter is where a shrunk flood or table information would show most.
    // Both tag formats that clients send.
    let formats: [Format; 3] = [
        ("format 2", query),
        ("format 3", compressed_query),
        ("format 4", packed_query),
    ];
    for ((format, fresh), encoding) in formats
        .into_iter()
        .flat_map(|f| [(f, encoding()), (f, CountEncoding::LARGEST)])
    {
        let r = band_experiment(4, 1000, encoding, fresh);
        println!(
            "{format}, {} nodes (B = 2^{}): {} answers, {} identify the table (partial \
             flooding predicts {:.1}); |e0-e1| = 2^{:.1?}; midrange of 1,000 answers off the \
             noise by 2^{:.1?}",
            encoding.nodes(),
            encoding.with_noise(fresh(QUERY).noise()).flood_bound_log2(),
            r.answers,
            r.identifying,
            r.expected,
            r.gaps_log2,
            r.midrange_error_log2
        );
        // No answer ever leaves its own band: the flooding bound and the small
        // noises hold (the slack is ~27 standard deviations of the latter).
        assert_eq!(r.outside_own_band, 0);
        // The identifying answers are a sum of independent Bernoulli trials
        // with mean `expected` (variance below it). More than 5 standard
        // deviations (+3 for small means) off has probability below ~10^-5:
        // fewer would mean the noise gap is mis-measured; more, that the
        // answer carries table information beyond the flooding ratio (a shrunk
        // or missing flood, or structure in the mask): with no
        // re-randomisation all 8,000 would be.
        let tolerance = 5.0 * r.expected.sqrt() + 3.0;
        assert!(
            (r.identifying as f64 - r.expected).abs() <= tolerance,
            "{} nodes: {} identifying answers, {:.1} ± {:.1} expected",
            encoding.nodes(),
            r.identifying,
            r.expected,
            tolerance
        );
    }
    println!("known-table distinguisher test: {:?}", start.elapsed());
}

/// The full circuit-privacy guarantee against a requester that knows the two
/// candidate tables: statistically hidden (distance 2^-40 per answer), no
/// answer among 8,000 should identify the table (false failure < 2^-27).
///
/// It FAILS with the current parameters: with the encoding for 64 nodes the
/// flooding (2^49) is only ~2^3 times the evaluation noise, so about one
/// answer in 2^2-2^5 identifies the table with certainty; with three nodes
/// (2^59) about one in 2^12-2^15. Kept as the statement of what statistical
/// flooding must achieve; see the residual-leak section of `lookup`.
#[test]
#[ignore = "known residual leak: partial flooding (fails today, see lookup docs)"]
fn known_candidate_tables_cannot_be_told_apart() {
    let r = band_experiment(4, 1000, CountEncoding::LARGEST, query);
    assert_eq!(
        r.identifying, 0,
        "{} of {} answers identified the table (|e0-e1| = 2^{:.1?})",
        r.identifying, r.answers, r.gaps_log2
    );
}

/// The evaluation noise that each format's budget (`params::NoiseBudget`)
/// assumes against what evaluations give: the standard deviation of the raw
/// phase error over fresh queries of 28-bit tags, on a bucket as full as
/// one at 1,000,000 identifiers (244 real tags, padded to 320). The bucket
/// matters: every real tag in the query's leaf adds its indicator's noise.
/// 128 samples estimate σ to ~6% (0.09 bits).
#[test]
fn evaluation_noise_is_what_the_budget_assumes() {
    let encoding = CountEncoding::LARGEST;
    let candidates = table(244, 0x7777);
    let (secret, _) = keys();
    let formats: [(&str, &dyn Fn() -> PreparedTag); 4] = [
        ("format 4", &|| packed_query(QUERY)),
        ("format 3", &|| compressed_query(QUERY)),
        ("format 2", &|| query(QUERY)),
        ("format 1", &|| {
            let bitwise = EncryptedTag::encrypt_bitwise(secret, Tag(QUERY), TAG_BITS).to_bytes();
            PreparedTag::prepare(EncryptedTag::from_bytes(&bitwise, TAG_BITS).expect("honest"))
        }),
    ];
    for (format, fresh) in formats {
        let budget = fresh().noise().std_log2();
        let errors: Vec<f64> = (0..128)
            .map(|_| {
                let (raw, _) = evaluate(&fresh(), &candidates, 320, encoding).expect("evaluation");
                raw_error(&raw, encoding) as f64
            })
            .collect();
        let (_, variance) = mean_var(&errors);
        let sd = variance.sqrt();
        println!(
            "evaluation noise, {format}: σ = 2^{:.2} over {} fresh queries (budget assumes 2^{budget})",
            sd.log2(),
            errors.len(),
        );
        let assumed = 2f64.powf(budget);
        assert!(sd <= assumed, "{format}: σ = 2^{:.2}", sd.log2());
    }
}
