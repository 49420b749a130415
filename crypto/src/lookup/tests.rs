//! Lookup protocol tests with the real 128-bit parameters.

use std::sync::OnceLock;

use super::*;
use crate::fingerprint::Tag;

const TAG_BITS: u8 = 28;

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
    let (raw, stats) = evaluate(&prepared, candidates, pad_to)?;
    Ok((EncryptedCount::rerandomise(raw, public), stats))
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
    assert_eq!(hit.decrypt(secret), 1);
    assert_eq!(stats.padded_candidates, 64);
    let absent = (candidates[17] + 1) & ((1 << TAG_BITS) - 1);
    assert!(!candidates.contains(&absent));
    let (miss, _) = lookup(absent, &candidates, 64)?;
    assert_eq!(miss.decrypt(secret), 0);
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
    assert_eq!(same_leaf_other_low.decrypt(secret), 0);
    let (other_leaf_same_low, _) = lookup(0x00_0001 << 11 | 5, &candidates, 8)?;
    assert_eq!(other_leaf_same_low.decrypt(secret), 0);
    let (hit, _) = lookup(0x01_2345 << 11 | 5, &candidates, 8)?;
    assert_eq!(hit.decrypt(secret), 1);
    Ok(())
}

#[test]
fn empty_and_full_buckets() -> Result<(), LookupError> {
    let (secret, _) = keys();
    let (empty, stats) = lookup(12345, &[], 32)?;
    assert_eq!(empty.decrypt(secret), 0);
    assert_eq!(stats.padded_candidates, 32);
    let full = spread_tags(400, 99);
    let (hit, stats) = lookup(full[399], &full, 256)?;
    assert_eq!(
        hit.decrypt(secret),
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
    assert_eq!(a.decrypt(secret), 1);
    let (b, _) = lookup(tag, &[tag], 16)?;
    let (c, _) = lookup(tag, &[1, 2, 3], 16)?;
    let mut sum = EncryptedCount::zero();
    for answer in [&a, &b, &c] {
        sum.add_assign(answer);
    }
    assert_eq!(sum.decrypt(secret), 2);
    let round_trip = EncryptedCount::from_bytes(&sum.to_bytes())?;
    assert_eq!(round_trip.decrypt(secret), 2);
    Ok(())
}

#[test]
fn answers_are_rerandomised_and_keep_a_noise_margin() -> Result<(), LookupError> {
    let (secret, public) = keys();
    let candidates = spread_tags(20, 3);
    let encrypted = EncryptedTag::encrypt(secret, Tag(candidates[3]), TAG_BITS);
    let prepared = PreparedTag::prepare(EncryptedTag::from_bytes(&encrypted.to_bytes(), TAG_BITS)?);
    let (raw, _) = evaluate(&prepared, &candidates, 32)?;
    let first = EncryptedCount::rerandomise(raw.clone(), public);
    let second = EncryptedCount::rerandomise(raw, public);
    assert_ne!(first.to_bytes(), second.to_bytes());
    assert_eq!(first.decrypt(secret), second.decrypt(secret));
    // Flooding noise is 2^54 against Δ/2 = 2^58: the error stays well inside 1/2.
    assert!(first.phase_error(secret).abs() < 0.1);
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
}
