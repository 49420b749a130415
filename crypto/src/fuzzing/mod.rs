//! Fuzz target bodies: one per decoder of untrusted bytes in this crate.
//!
//! `crypto/fuzz` (cargo-fuzz) calls them on generated inputs, and
//! `tests/fuzz_corpus.rs` replays every committed corpus and crash file through
//! them ([`corpus`]), so each body exists once. A body only goes through the public decode
//! API, never panics on its own account, and asserts what must hold of
//! anything a decoder accepts (a canonical re-encoding, an evaluation that
//! runs): a panic anywhere is a crash to fix.
//!
//! Bodies return whether the decoder accepted the input, so that the honest
//! [`seeds`] can be checked to be accepted.

pub mod corpus;
mod seeds;
mod targets;

pub use seeds::{seeds, Seed};
pub use targets::{
    envelope, identifier, lookup_answer, lookup_group, lookup_keys, lookup_tag, oprf_blinded,
    oprf_evaluation, oprf_keys,
};

/// A fuzz target body: feeds `data` to one decoder; true if it accepted it.
pub type Body = fn(&[u8]) -> bool;

/// Every target, by the name of its cargo-fuzz binary and corpus folder.
pub const TARGETS: &[(&str, Body)] = &[
    ("lookup_tag", lookup_tag),
    ("lookup_group", lookup_group),
    ("lookup_keys", lookup_keys),
    ("lookup_answer", lookup_answer),
    ("oprf_blinded", oprf_blinded),
    ("oprf_evaluation", oprf_evaluation),
    ("oprf_keys", oprf_keys),
    ("envelope", envelope),
    ("identifier", identifier),
];

/// Splits `data` into records, each a little-endian length (`prefix` bytes,
/// 1 or 2) and that many bytes; the last may be cut short. At most
/// `data.len()` records, so a list decoder still sees every count up to its
/// limit without the input having to be as large as the list.
pub fn records(data: &[u8], prefix: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() >= prefix {
        let (head, tail) = rest.split_at(prefix);
        let len = head
            .iter()
            .rev()
            .fold(0usize, |acc, &byte| (acc << 8) | usize::from(byte));
        let (record, tail) = tail.split_at(len.min(tail.len()));
        out.push(record);
        rest = tail;
    }
    out
}

/// Writes `records` in the layout [`records`] reads back.
pub fn join_records<B: AsRef<[u8]>>(records: &[B], prefix: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for record in records {
        let record = record.as_ref();
        out.extend_from_slice(&record.len().to_le_bytes()[..prefix]);
        out.extend_from_slice(record);
    }
    out
}

/// Expands a compact encoding of one of tfhe's objects whose first field is a
/// vector of `u64`: `version, length (u64), rest` becomes `version, length,
/// min(length, cap) zero values, rest`. The values are what an honest peer
/// may set freely, and a ciphertext's are tens of kilobytes: leaving them out
/// of the input lets the fuzzer spend its mutations on the length and the
/// parameter fields, which are what the decoder must judge.
pub fn expand_values(compact: &[u8], cap: usize) -> Vec<u8> {
    const HEAD: usize = 1 + 8;
    if compact.len() < HEAD {
        return compact.to_vec();
    }
    let mut length = [0u8; 8];
    length.copy_from_slice(&compact[1..HEAD]);
    let values = usize::try_from(u64::from_le_bytes(length))
        .unwrap_or(usize::MAX)
        .min(cap);
    let mut out = Vec::with_capacity(compact.len() + values * 8);
    out.extend_from_slice(&compact[..HEAD]);
    out.resize(HEAD + values * 8, 0);
    out.extend_from_slice(&compact[HEAD..]);
    out
}

/// Drops the values of a full encoding: the compact form [`expand_values`]
/// reads (with zero values in their place).
pub fn compact_values(encoded: &[u8]) -> Option<Vec<u8>> {
    let length = encoded.get(1..9)?;
    let values = u64::from_le_bytes(length.try_into().ok()?);
    let end = usize::try_from(values)
        .ok()?
        .checked_mul(8)?
        .checked_add(9)?;
    encoded.get(9..end)?;
    Some([&encoded[..9], &encoded[end..]].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_cut_the_last_short() {
        let parts: [&[u8]; 3] = [b"abc", b"", &[7u8; 300]];
        assert_eq!(records(&join_records(&parts, 2), 2), parts);
        assert_eq!(records(&[5, 1, 2], 1), vec![&[1u8, 2][..]]);
        assert_eq!(records(&[0, 0, 0], 1), vec![&[0u8; 0][..]; 3]);
        assert!(records(&[9], 2).is_empty());
    }

    #[test]
    fn values_expand_up_to_the_cap() {
        let mut compact = vec![1u8];
        compact.extend_from_slice(&3u64.to_le_bytes());
        compact.extend_from_slice(b"tail");
        let full = expand_values(&compact, 10);
        assert_eq!(full.len(), 9 + 24 + 4);
        assert_eq!(compact_values(&full), Some(compact.clone()));
        let mut written = full.clone();
        written[9..33].fill(0xAB);
        assert_eq!(compact_values(&written), Some(compact.clone()));
        assert_eq!(compact_values(&full[..20]), None);
        assert_eq!(expand_values(&compact, 2).len(), 9 + 16 + 4);
        let mut huge = compact.clone();
        huge[1..9].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(expand_values(&huge, 4).len(), 9 + 32 + 4);
        assert_eq!(expand_values(&[1, 2], 4), vec![1u8, 2]);
    }
}
