//! Lookup protocol tests with the real 128-bit parameters.

use std::sync::OnceLock;

use super::*;
use crate::fingerprint::Tag;
use params::MAX_NODES;

const TAG_BITS: u8 = 28;

/// The encoding of the three-node federation these answers are added in.
fn encoding() -> CountEncoding {
    CountEncoding::for_nodes(3).expect("three nodes")
}

fn keys() -> &'static (FheSecretKey, FhePublicKey) {
    static KEYS: OnceLock<(FheSecretKey, FhePublicKey)> = OnceLock::new();
    KEYS.get_or_init(generate_keys)
}

fn lookup(
    tag: u64,
    candidates: &[u64],
    pad_to: usize,
) -> Result<(EncryptedCount, EvalStats), LookupError> {
    let (secret, public) = keys();
    let encrypted = EncryptedTag::encrypt(secret, Tag(tag), TAG_BITS);
    let decoded = EncryptedTag::from_bytes(&encrypted.to_bytes(), TAG_BITS)?;
    let prepared = PreparedTag::prepare(decoded);
    let (raw, stats) = evaluate(&prepared, candidates, pad_to, encoding())?;
    Ok((EncryptedCount::rerandomise(raw, public, encoding()), stats))
}

fn spread_tags(count: u64, seed: u64) -> Vec<u64> {
    (0..count)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed) & ((1 << TAG_BITS) - 1))
        .collect()
}

#[test]
fn present_tag_hits_and_absent_tag_misses() -> Result<(), LookupError> {
    let (secret, _) = keys();
    let candidates = spread_tags(40, 7);
    let (hit, stats) = lookup(candidates[17], &candidates, 64)?;
    assert_eq!(hit.decrypt(secret, encoding()), 1);
    assert_eq!(stats.padded_candidates, 64);
    let absent = (candidates[17] + 1) & ((1 << TAG_BITS) - 1);
    assert!(!candidates.contains(&absent));
    let (miss, _) = lookup(absent, &candidates, 64)?;
    assert_eq!(miss.decrypt(secret, encoding()), 0);
    Ok(())
}

#[test]
fn both_formats_answer_alike_at_every_federation_size() -> Result<(), LookupError> {
    let (secret, public) = keys();
    let candidates = spread_tags(40, 11);
    let tag = Tag(candidates[5]);
    let encrypted = EncryptedTag::encrypt(secret, tag, TAG_BITS);
    let rounded = encrypted.to_bytes();
    assert_eq!(rounded.len(), EncryptedTag::encoded_len(TAG_BITS));
    assert_eq!(rounded.len(), 430_113);
    let received = EncryptedTag::from_bytes(&rounded, TAG_BITS)?;
    assert_eq!(received.bit_count(), usize::from(TAG_BITS));
    assert_eq!(received.to_bytes(), rounded);
    // The rounding moves each body coefficient by at most 2^15, and the
    // masks (from the seeds) not at all.
    let (sent_glwe, _) = encrypted.low.as_ref().expect("format 2");
    let (received_glwe, _) = received.low.as_ref().expect("format 2");
    let moved = encrypted
        .ggsws
        .as_ref()
        .iter()
        .chain(sent_glwe.as_ref())
        .zip(received.ggsws.as_ref().iter().chain(received_glwe.as_ref()))
        .map(|(sent, got)| (got.wrapping_sub(*sent) as i64).unsigned_abs())
        .max()
        .expect("bodies");
    assert!(moved <= 1 << 15, "a coefficient moved by {moved}");

    let full = EncryptedTag::encrypt_bitwise(secret, tag, TAG_BITS).to_bytes();
    assert_eq!(full.len(), 917_613);
    assert!(EncryptedTag::max_encoded_len(TAG_BITS) >= full.len());
    let prepared = [
        PreparedTag::prepare(received),
        PreparedTag::prepare(EncryptedTag::from_bytes(&full, TAG_BITS)?),
    ];
    for nodes in [1, 3, 8, MAX_NODES] {
        let encoding = CountEncoding::for_nodes(nodes)?;
        for query in &prepared {
            assert_eq!(query.bit_count(), usize::from(TAG_BITS));
            let (raw, _) = evaluate(query, &candidates, 64, encoding)?;
            let answer = EncryptedCount::rerandomise(raw, public, encoding);
            assert_eq!(answer.decrypt(secret, encoding), 1, "{nodes} nodes");
            let (raw, _) = evaluate(query, &candidates[6..], 64, encoding)?;
            let answer = EncryptedCount::rerandomise(raw, public, encoding);
            assert_eq!(answer.decrypt(secret, encoding), 0, "{nodes} nodes");
        }
    }
    Ok(())
}

#[test]
fn the_first_and_last_coefficients_of_a_leaf_are_told_apart() -> Result<(), LookupError> {
    let (secret, _) = keys();
    let leaf = 0x0AB_CDE << 11;
    let candidates = [leaf, leaf | 0x7ff, leaf | 1];
    for (tag, present) in [
        (leaf, 1),
        (leaf | 0x7ff, 1),
        (leaf | 1, 1),
        (leaf | 2, 0),
        (leaf | 0x7fe, 0),
    ] {
        let (answer, _) = lookup(tag, &candidates, 8)?;
        assert_eq!(answer.decrypt(secret, encoding()), present, "{tag:#x}");
    }
    let (answer, _) = lookup(leaf | 0x7ff, &[leaf], 8)?;
    assert_eq!(answer.decrypt(secret, encoding()), 0);
    Ok(())
}

#[test]
fn tags_sharing_a_leaf_or_a_low_part_are_told_apart() -> Result<(), LookupError> {
    let (secret, _) = keys();
    // Same high part (same leaf), different low parts; and same low part, other leaf.
    let candidates = vec![
        0x0AB_CDE << 11 | 5,
        0x0AB_CDE << 11 | 6,
        0x01_2345 << 11 | 5,
    ];
    let (same_leaf_other_low, _) = lookup(0x0AB_CDE << 11 | 7, &candidates, 8)?;
    assert_eq!(same_leaf_other_low.decrypt(secret, encoding()), 0);
    let (other_leaf_same_low, _) = lookup(0x00_0001 << 11 | 5, &candidates, 8)?;
    assert_eq!(other_leaf_same_low.decrypt(secret, encoding()), 0);
    let (hit, _) = lookup(0x01_2345 << 11 | 5, &candidates, 8)?;
    assert_eq!(hit.decrypt(secret, encoding()), 1);
    Ok(())
}

/// The evaluation decides the low half of the high bits top-down into
/// indicators shared across leaves, and the rest by the tree: tags that
/// agree with the query on either half, or on both but the low bits, must
/// still miss, however many of them crowd the query's leaf.
#[test]
fn tags_sharing_an_indicator_or_a_tree_leaf_are_told_apart() -> Result<(), LookupError> {
    let (secret, _) = keys();
    // 17 high bits: the indicators take the low 8, the tree the other 9.
    let (top, pattern, low) = (0x1A5u64, 0x3Cu64, 0x2F1u64);
    let tag = |top: u64, pattern: u64, low: u64| (top << 8 | pattern) << 11 | low;
    let query = tag(top, pattern, low);
    let mut crowd = vec![
        tag(top, pattern, low ^ 1),
        tag(top ^ 1, pattern, low),
        tag(top, pattern ^ 0x80, low),
    ];
    // The query's leaf, crowded with every other pattern at the same low bits.
    crowd.extend((0..64u64).map(|p| tag(top, p, low)).filter(|&t| t != query));
    let formats: [(&str, &dyn Fn() -> PreparedTag); 2] = [
        ("format 2", &|| {
            let sent = EncryptedTag::encrypt(secret, Tag(query), TAG_BITS).to_bytes();
            PreparedTag::prepare(EncryptedTag::from_bytes(&sent, TAG_BITS).expect("honest"))
        }),
        ("format 1", &|| {
            let sent = EncryptedTag::encrypt_bitwise(secret, Tag(query), TAG_BITS).to_bytes();
            PreparedTag::prepare(EncryptedTag::from_bytes(&sent, TAG_BITS).expect("honest"))
        }),
    ];
    for (format, prepared) in formats {
        let (raw, _) = evaluate(&prepared(), &crowd, 128, encoding())?;
        let miss = EncryptedCount::rerandomise(raw, &keys().1, encoding());
        assert_eq!(miss.decrypt(secret, encoding()), 0, "{format}");
        let mut holding = crowd.clone();
        holding.extend([query, query]);
        let (raw, _) = evaluate(&prepared(), &holding, 128, encoding())?;
        let hit = EncryptedCount::rerandomise(raw, &keys().1, encoding());
        assert_eq!(hit.decrypt(secret, encoding()), 1, "{format}");
    }
    Ok(())
}

#[test]
fn empty_and_full_buckets() -> Result<(), LookupError> {
    let (secret, _) = keys();
    let (empty, stats) = lookup(12345, &[], 32)?;
    assert_eq!(empty.decrypt(secret, encoding()), 0);
    assert_eq!(stats.padded_candidates, 32);
    let full = spread_tags(400, 99);
    let (hit, stats) = lookup(full[399], &full, 256)?;
    assert_eq!(
        hit.decrypt(secret, encoding()),
        1,
        "a bucket above the padding still answers"
    );
    assert_eq!(stats.padded_candidates, 400);
    Ok(())
}

#[test]
fn duplicate_records_count_once_and_answers_add_up() -> Result<(), LookupError> {
    let (secret, _) = keys();
    let tag = 0x0123_4567;
    let (a, _) = lookup(tag, &[tag, tag, 99], 16)?;
    assert_eq!(a.decrypt(secret, encoding()), 1);
    let (b, _) = lookup(tag, &[tag], 16)?;
    let (c, _) = lookup(tag, &[1, 2, 3], 16)?;
    let mut sum = EncryptedCount::zero();
    for answer in [&a, &b, &c] {
        sum.add_assign(answer);
    }
    assert_eq!(sum.decrypt(secret, encoding()), 2);
    let round_trip = EncryptedCount::from_bytes(&sum.to_bytes())?;
    assert_eq!(round_trip.decrypt(secret, encoding()), 2);
    Ok(())
}

#[test]
fn answers_are_rerandomised_and_keep_a_noise_margin() -> Result<(), LookupError> {
    let (secret, public) = keys();
    let candidates = spread_tags(20, 3);
    let encrypted = EncryptedTag::encrypt(secret, Tag(candidates[3]), TAG_BITS);
    let prepared = PreparedTag::prepare(EncryptedTag::from_bytes(&encrypted.to_bytes(), TAG_BITS)?);
    let (raw, _) = evaluate(&prepared, &candidates, 32, encoding())?;
    let first = EncryptedCount::rerandomise(raw.clone(), public, encoding());
    let second = EncryptedCount::rerandomise(raw, public, encoding());
    assert_ne!(first.to_bytes(), second.to_bytes());
    assert_eq!(
        first.decrypt(secret, encoding()),
        second.decrypt(secret, encoding())
    );
    // Flooding of at most 2^59 against Δ = 2^62 for three nodes: 1/8 of Δ.
    assert!(first.phase_error(secret, encoding()).abs() < 0.13);
    Ok(())
}

#[test]
fn malformed_and_wrongly_sized_inputs_are_refused() {
    let (secret, _) = keys();
    let encrypted = EncryptedTag::encrypt(secret, Tag(5), 20);
    let bytes = encrypted.to_bytes();
    assert!(matches!(
        EncryptedTag::from_bytes(&bytes, TAG_BITS),
        Err(LookupError::TooLarge(_) | LookupError::Malformed(_) | LookupError::WrongParameters(_))
    ));
    assert!(EncryptedTag::from_bytes(&bytes[..bytes.len() / 2], 20).is_err());
    assert!(EncryptedTag::from_bytes(b"", 20).is_err());
    assert!(EncryptedTag::from_bytes(&[9, 1, 2, 3], 20).is_err());
    assert!(EncryptedCount::from_bytes(&[1, 0, 0]).is_err());
    // An answer of the fixed-Δ encoding (version 1) would decrypt to a wrong
    // count under the federation's encoding: refused, not misread.
    let mut old = EncryptedCount::zero().to_bytes();
    assert_eq!(old[0], 2);
    old[0] = 1;
    assert_eq!(
        EncryptedCount::from_bytes(&old),
        Err(LookupError::UnsupportedFormat("answer"))
    );
    // Message bits beyond the largest encoding (7) are no answer's.
    let mut wide = EncryptedCount::zero().to_bytes();
    wide[1] = 8;
    assert_eq!(
        EncryptedCount::from_bytes(&wide),
        Err(LookupError::WrongParameters("answer"))
    );
}

#[test]
fn an_answer_says_which_federation_size_it_counts_for() -> Result<(), LookupError> {
    let (secret, public) = keys();
    let (three, eight) = (CountEncoding::for_nodes(3)?, CountEncoding::for_nodes(8)?);
    let (hit, _) = lookup(0x0123_4567, &[0x0123_4567], 8)?;
    let decoded = EncryptedCount::from_bytes(&hit.to_bytes())?;
    assert_eq!(decoded, hit, "the encoding survives the wire");
    assert_eq!(decoded.check_encoding(three), Ok(()));
    // Decrypted as an eight-node answer, one jurisdiction would read as four.
    assert_eq!(
        decoded.check_encoding(eight),
        Err(LookupError::WrongParameters("answer's count encoding"))
    );
    assert_eq!(decoded.decrypt(secret, eight), 4);
    // Answers of different encodings do not add; zero adds to anything and
    // the sum takes the encoding of what was added.
    let (raw, _) = evaluate(
        &PreparedTag::prepare(EncryptedTag::encrypt(secret, Tag(9), TAG_BITS)),
        &[9],
        8,
        eight,
    )?;
    let other = EncryptedCount::rerandomise(raw, public, eight);
    assert!(!decoded.adds_to(&other));
    let mut sum = EncryptedCount::zero();
    assert!(sum.adds_to(&other) && sum.check_encoding(three).is_ok());
    sum.add_assign(&decoded);
    assert!(!sum.adds_to(&other));
    assert!(sum.check_encoding(eight).is_err());
    assert_eq!(sum.decrypt(secret, three), 1);
    Ok(())
}

#[test]
fn the_noise_budget_holds_for_every_federation_size() {
    let mut previous_bits = 0;
    for nodes in 1..=MAX_NODES {
        let encoding = CountEncoding::for_nodes(nodes).expect("within the limit");
        let bits = encoding.message_bits();
        assert!(
            nodes < 1 << bits,
            "{nodes} nodes: the count fits {bits} bits"
        );
        assert!(
            bits <= 1 || nodes >= 1 << (bits - 1),
            "{nodes} nodes: no wasted bit"
        );
        assert!(bits >= previous_bits);
        previous_bits = bits;
        // For each format's noise, what the budget reserves for the
        // evaluation noise must be left; a quieter format floods no less.
        let half_delta = (encoding.delta() / 2) as f64;
        let mut quieter = u32::MAX;
        for noise in [
            NoiseBudget::Fresh,
            NoiseBudget::Rebuilt,
            NoiseBudget::Packed,
        ] {
            let encoding = encoding.with_noise(noise);
            assert_eq!(
                encoding.delta(),
                CountEncoding::for_nodes(nodes).unwrap().delta()
            );
            let evaluation = 8.0 * 2f64.powf(noise.std_log2()) * (nodes as f64).sqrt();
            let worst = 2f64.powf(encoding.worst_flooding_log2());
            assert!(
                worst + evaluation <= half_delta,
                "{nodes} nodes, {noise:?}: 2^{:.2} + 2^{:.2} > 2^{:.2}",
                worst.log2(),
                evaluation.log2(),
                half_delta.log2()
            );
            // Each node floods at least 2^48, and a federation that fedq
            // supported before (at most 8 nodes) no less than the 2^54 it had.
            let flood = encoding.flood_bound_log2();
            assert!(flood >= 48, "{nodes} nodes: 2^{flood}");
            if nodes <= 8 {
                assert!(flood >= 54, "{nodes} nodes: 2^{flood}");
            }
            assert!(flood <= quieter, "{nodes} nodes, {noise:?}");
            quieter = flood;
        }
        // The default is the noisiest format's: it always decrypts.
        assert_eq!(encoding, encoding.with_noise(NoiseBudget::Packed));
    }
    assert_eq!(CountEncoding::LARGEST.flood_bound_log2(), 48);
    let largest = |noise| CountEncoding::LARGEST.with_noise(noise).flood_bound_log2();
    assert_eq!(largest(NoiseBudget::Rebuilt), 49);
    assert_eq!(largest(NoiseBudget::Fresh), 49);
    assert!(matches!(
        CountEncoding::for_nodes(0),
        Err(LookupError::FederationSize { .. })
    ));
    assert!(matches!(
        CountEncoding::for_nodes(MAX_NODES + 1),
        Err(LookupError::FederationSize { nodes: 65, max: 64 })
    ));
}

#[test]
fn sixty_four_answers_add_up_to_the_count() -> Result<(), LookupError> {
    let (secret, public) = keys();
    let encoding = CountEncoding::LARGEST;
    let tag = 0x0765_4321;
    let encrypted = EncryptedTag::encrypt(secret, Tag(tag), TAG_BITS);
    let prepared = PreparedTag::prepare(EncryptedTag::from_bytes(&encrypted.to_bytes(), TAG_BITS)?);
    let holding = [&[tag, 5, 9][..], &[tag][..]];
    let lacking = [&[][..], &[1, 2, 3][..]];
    // One in five nodes holds the tag: 13 of 64.
    let mut sum = EncryptedCount::zero();
    let mut expected = 0;
    for node in 0..MAX_NODES {
        let candidates = if node % 5 == 0 {
            expected += 1;
            holding[node % 2]
        } else {
            lacking[node % 2]
        };
        let (raw, _) = evaluate(&prepared, candidates, 8, encoding)?;
        let answer = EncryptedCount::rerandomise(raw, public, encoding);
        assert_eq!(answer.decrypt(secret, encoding), u32::from(node % 5 == 0));
        sum.add_assign(&EncryptedCount::from_bytes(&answer.to_bytes())?);
    }
    assert_eq!(expected, 13);
    assert_eq!(sum.decrypt(secret, encoding), expected);
    // 64 floods of at most 2^48 against Δ/2 = 2^56: under a quarter of it.
    assert!(sum.phase_error(secret, encoding).abs() < 0.26);

    // Every node holds it: the count at the top of what 64 answers reach.
    let (raw, _) = evaluate(&prepared, holding[1], 8, encoding)?;
    let mut all = EncryptedCount::zero();
    for _ in 0..MAX_NODES {
        all.add_assign(&EncryptedCount::rerandomise(raw.clone(), public, encoding));
    }
    assert_eq!(all.decrypt(secret, encoding), MAX_NODES as u32);
    Ok(())
}

/// The flooding is as large as the federation's size allows, not only
/// bounded: the answers to one evaluation differ by their flooding alone, and
/// the range of 64 of them exceeds the bound B unless all 64 fall in one
/// half-width window (probability below 2^-56).
#[test]
fn each_answer_is_flooded_as_much_as_its_federation_allows() -> Result<(), LookupError> {
    let (secret, public) = keys();
    let encrypted = EncryptedTag::encrypt(secret, Tag(77), TAG_BITS);
    let prepared = PreparedTag::prepare(EncryptedTag::from_bytes(&encrypted.to_bytes(), TAG_BITS)?);
    for nodes in [1, 3, 8, 48, MAX_NODES] {
        let encoding = CountEncoding::for_nodes(nodes)?;
        let (raw, _) = evaluate(&prepared, &[77, 78], 4, encoding)?;
        let bound = 2f64.powi(encoding.flood_bound_log2() as i32);
        let errors: Vec<f64> = (0..64)
            .map(|_| {
                let answer = EncryptedCount::rerandomise(raw.clone(), public, encoding);
                assert_eq!(answer.decrypt(secret, encoding), 1);
                answer.phase_error(secret, encoding) * encoding.delta() as f64
            })
            .collect();
        let range = errors.iter().copied().fold(f64::MIN, f64::max)
            - errors.iter().copied().fold(f64::MAX, f64::min);
        // At most 2B, plus the rounding and public-key noise of two answers.
        let slack = 2f64.powi(params::ROUNDING_BOUND_LOG2 as i32 + 1);
        assert!(
            range >= bound && range <= 2.0 * bound + slack,
            "{nodes} nodes: answers spread over 2^{:.2}, flooding bound 2^{}",
            range.log2(),
            encoding.flood_bound_log2()
        );
    }
    Ok(())
}
