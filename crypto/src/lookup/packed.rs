//! Format 4: packed groups, 3,421 bytes per item and node with 28-bit tags.
//!
//! In a batch, the requester packs every bit of two or three items (all 28 of
//! each, once per level of the tree's gadget: 84 values apiece) into one
//! seeded GLWE. The node expands it over eight levels with the same
//! expansion key as format 3 ([`super::compress`]) and rebuilds each bit's
//! GGSW. The 11 low bits come back as GGSWs too: they rotate the tree's
//! result by `X^-low` (format 1's blind rotation, 11 CMuxes) instead of
//! travelling as a 12 KB GLWE of their own per item, and the tree's leaves
//! become plaintexts.
//!
//! The body travels rounded to 40 bits: the expansion's key switching adds
//! ~2^24 of noise at every level, next to which the rounding's ~2^21 does
//! not show (`compress::experiment` measures both roundings alike).
//!
//! On the wire a group is spread over its items, so that each item keeps its
//! place in the request (and the payload hash covers what it did): the first
//! item carries the GLWE and how many items it holds, each following one a
//! two-byte reference to its slot. A lone item left over at the end of a
//! batch travels in format 3, whose six-level expansion costs a third.
//!
//! Noise: eight expansion levels and the rotation's CMuxes put the
//! evaluation at σ ≈ 2^49.3, against format 3's 2^47.6
//! ([`super::params::EVALUATION_NOISE_STD_LOG2`] has the budget).

use std::ops::Range;

use rayon::prelude::*;
use tfhe::core_crypto::commons::math::random::Seed;
use tfhe::core_crypto::prelude::*;

use super::compress::{n, tree_values};
use super::evaluate::{FourierGgsw, PreparedTag};
use super::keys::FheSecretKey;
use super::params::{CompressionParams, COMPRESSION, LOW_TAG_BITS, PARAMETERS};
use super::query::{push_rounded, rounded_values, seeded_glwe};
use super::wire::{self, check_fixed, seed_at};
use super::{CompressedTag, LookupError, PreparedExpansionKey};
use crate::fingerprint::Tag;

const WHAT: &str = "packed tags";
/// Top bits of each body coefficient that travel.
const KEPT_BYTES: usize = 5;
/// Format byte, item count and seed before the body.
const HEADER: usize = 1 + 1 + 16;
/// A following item's encoding: format byte and slot.
const SLOT_LEN: usize = 2;

/// Up to [`PackedTags::capacity`] items' tags in one GLWE, as the client
/// sends them.
pub struct PackedTags {
    glwe: SeededGlweCiphertextOwned<u64>,
    seed: Seed,
    count: usize,
    tag_bits: u8,
}

/// Values one item packs: every bit, once per tree gadget level.
fn values_per_item(tag_bits: u8, p: CompressionParams) -> usize {
    usize::from(tag_bits) * p.tree.1
}

impl PackedTags {
    /// Items one group holds with `tag_bits`-bit tags: 256 values over 3
    /// per bit, so 3 at the default 28 bits (4 to 7 for 21 bits down to 12),
    /// 2 at 29 to 32; 0 for widths format 3 does not carry either (their
    /// noise has not been measured).
    pub fn capacity(tag_bits: u8) -> usize {
        if !CompressedTag::supports(tag_bits) {
            return 0;
        }
        (1 << COMPRESSION.packing_levels) / values_per_item(tag_bits, COMPRESSION)
    }

    /// Encrypts the low `tag_bits` bits of each of `tags`. Panics unless
    /// there are 2 to [`Self::capacity`] of them.
    pub fn encrypt(secret: &FheSecretKey, tags: &[Tag], tag_bits: u8) -> Self {
        assert!(
            (2..=Self::capacity(tag_bits)).contains(&tags.len()),
            "a group of 2 to capacity items"
        );
        Self::encrypt_with(secret, tags, tag_bits, COMPRESSION)
    }

    pub(crate) fn encrypt_with(
        secret: &FheSecretKey,
        tags: &[Tag],
        tag_bits: u8,
        p: CompressionParams,
    ) -> Self {
        let values: Vec<u64> = tags
            .iter()
            .flat_map(|tag| tree_values((0..tag_bits).map(|bit| (tag.0 >> bit) & 1), p))
            .collect();
        assert!(
            values.len() <= 1 << p.packing_levels,
            "more values than slots"
        );
        let mut plaintext = PlaintextList::new(0u64, PlaintextCount(n()));
        for (slot, value) in plaintext.as_mut().iter_mut().zip(values) {
            *slot = value >> p.packing_levels;
        }
        let (glwe, seed) = seeded_glwe(secret, &plaintext);
        Self {
            glwe,
            seed,
            count: tags.len(),
            tag_bits,
        }
    }

    /// Whether untrusted tag bytes claim to be the first item of a group
    /// (then they need the requester's expansion key).
    pub fn is_packed(bytes: &[u8]) -> bool {
        bytes.first() == Some(&wire::FORMAT_PACKED_TAGS)
    }

    /// Bytes of the first item's encoding, which carries the GLWE.
    pub fn leader_len() -> usize {
        HEADER + n() * KEPT_BYTES
    }

    /// The encodings of the group's items, in order: the first carries the
    /// GLWE, the others their slot in it.
    pub fn to_item_bytes(&self) -> Vec<Vec<u8>> {
        let mut leader = Vec::with_capacity(Self::leader_len());
        leader.push(wire::FORMAT_PACKED_TAGS);
        leader.push(u8::try_from(self.count).expect("a group holds at most 7 items"));
        leader.extend_from_slice(&self.seed.0.to_le_bytes());
        push_rounded(&mut leader, self.glwe.as_ref(), KEPT_BYTES);
        let followers = (1..self.count).map(|slot| vec![wire::FORMAT_PACKED_SLOT, slot as u8]);
        std::iter::once(leader).chain(followers).collect()
    }

    /// Decodes an untrusted group: `items` are the encodings of its items,
    /// as [`groups`] delimited them. The format bytes, lengths, count and
    /// slots are the fields (any 16 bytes are a seed that starts where an
    /// honest client's does).
    pub fn from_items(items: &[&[u8]], tag_bits: u8) -> Result<Self, LookupError> {
        let count = check_group(items, tag_bits)?;
        let leader = items[0];
        let seed = seed_at(leader, 2);
        let glwe = SeededGlweCiphertext::from_container(
            rounded_values(&leader[HEADER..], KEPT_BYTES).collect(),
            PARAMETERS.glwe_size(),
            seed.into(),
            PARAMETERS.ciphertext_modulus,
        );
        Ok(Self {
            glwe,
            seed,
            count,
            tag_bits,
        })
    }
}

fn unexpected(field: &'static str) -> LookupError {
    LookupError::UnexpectedField {
        object: WHAT,
        field,
    }
}

/// Every field of a group but its body: the width, the first item's format
/// and length, a count of 2 to [`PackedTags::capacity`] that is the group's
/// size, and each following item's slot. Returns the count. A group of one
/// is refused: clients send a lone item in format 3, and eight expansion
/// levels for one item would cost a node 2.5 times a group's share.
fn check_group(items: &[&[u8]], tag_bits: u8) -> Result<usize, LookupError> {
    let capacity = PackedTags::capacity(tag_bits);
    if capacity == 0 {
        return Err(LookupError::WrongParameters(WHAT));
    }
    let Some((leader, followers)) = items.split_first() else {
        return Err(LookupError::Malformed(WHAT));
    };
    check_fixed(
        leader,
        wire::FORMAT_PACKED_TAGS,
        PackedTags::leader_len(),
        WHAT,
    )?;
    let count = usize::from(leader[1]);
    if count < 2 || count > capacity || count != items.len() {
        return Err(unexpected("item count"));
    }
    for (slot, follower) in (1..).zip(followers) {
        if *follower != [wire::FORMAT_PACKED_SLOT, slot] {
            return Err(unexpected("slot"));
        }
    }
    Ok(count)
}

/// How a batch's items are grouped: each range is one format 4 group, or
/// one item of another format. Every field but the ciphertexts' bodies of
/// formats 3 and 4 is checked here, before any work; formats 1 and 2 are
/// [`super::EncryptedTag::from_bytes`]'s. The error names the item at fault.
pub fn groups(items: &[&[u8]], tag_bits: u8) -> Result<Vec<Range<usize>>, (usize, LookupError)> {
    let mut groups = Vec::new();
    let mut i = 0;
    while i < items.len() {
        let len = match items[i].first() {
            Some(&wire::FORMAT_PACKED_TAGS) => {
                let count = items[i]
                    .get(1)
                    .map(|&c| usize::from(c))
                    .ok_or((i, LookupError::Malformed(WHAT)))?;
                let group = items
                    .get(i..i + count)
                    .ok_or((i, unexpected("item count")))?;
                check_group(group, tag_bits).map_err(|e| (i, e))?
            }
            Some(&wire::FORMAT_COMPRESSED_TAG) => {
                CompressedTag::check(items[i], tag_bits).map_err(|e| (i, e))?;
                1
            }
            Some(&wire::FORMAT_PACKED_SLOT) => {
                return Err((
                    i,
                    LookupError::UnexpectedField {
                        object: WHAT,
                        field: "slot outside a group",
                    },
                ))
            }
            _ => 1,
        };
        groups.push(i..i + len);
        i += len;
    }
    Ok(groups)
}

/// Items per group a client sends: a group's capacity when it packs, else
/// one (every item in format 3).
fn group_len(tag_bits: u8, pack: bool) -> usize {
    if pack {
        PackedTags::capacity(tag_bits).max(1)
    } else {
        1
    }
}

/// The encodings a client sends for `tags` (one request's items, in order):
/// with `pack`, groups of [`PackedTags::capacity`] in format 4 and a lone
/// last item in format 3; without, every item in format 3. Needs widths that
/// format 3 carries.
pub fn encrypt_items(
    secret: &FheSecretKey,
    tags: &[Tag],
    tag_bits: u8,
    pack: bool,
) -> Vec<Vec<u8>> {
    tags.par_chunks(group_len(tag_bits, pack))
        .map(|group| match group {
            [tag] => vec![CompressedTag::encrypt(secret, *tag, tag_bits).to_bytes()],
            _ => PackedTags::encrypt(secret, group, tag_bits).to_item_bytes(),
        })
        .flatten()
        .collect()
}

/// Bytes [`encrypt_items`] produces for `items` items: what a client sizes
/// its requests by.
pub fn encoded_items_len(items: usize, tag_bits: u8, pack: bool) -> usize {
    let capacity = group_len(tag_bits, pack);
    let group = |len: usize| match len {
        0 => 0,
        1 => CompressedTag::encoded_len(),
        _ => PackedTags::leader_len() + (len - 1) * SLOT_LEN,
    };
    items / capacity * group(capacity) + group(items % capacity)
}

impl PreparedTag {
    /// Expands a format 4 group with its requester's key into each item's
    /// GGSWs, in the Fourier domain, on the caller's rayon pool.
    pub fn prepare_packed(tags: PackedTags, key: &PreparedExpansionKey) -> Vec<Self> {
        let p = key.params;
        let bits = usize::from(tags.tag_bits);
        let expanded = key.expand(
            tags.glwe.decompress_into_glwe_ciphertext(),
            tags.count * values_per_item(tags.tag_bits, p),
            p.packing_levels,
        );
        let ggsws: Vec<FourierGgsw> = expanded
            .par_chunks(p.tree.1)
            .map(|glwes| key.convert(glwes))
            .collect();
        let mut ggsws = ggsws.into_iter();
        (0..tags.count)
            .map(|_| {
                let low = ggsws.by_ref().take(usize::from(LOW_TAG_BITS)).collect();
                let high = ggsws
                    .by_ref()
                    .take(bits - usize::from(LOW_TAG_BITS))
                    .collect();
                Self::from_bits(high, low)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
