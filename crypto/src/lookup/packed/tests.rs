use rand::Rng;

use super::*;
use crate::lookup::compress::tests::{decrypt, distance, keys, refuses_other_shapes, Keys};
use crate::lookup::params::CountEncoding;
use crate::lookup::{evaluate, EncryptedCount};

const TAG_BITS: u8 = 28;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;

/// What a node decodes from the items a client sends for `tags`.
fn received(tags: &[u64], tag_bits: u8) -> PackedTags {
    let tags: Vec<Tag> = tags.iter().map(|&t| Tag(t)).collect();
    let sent = PackedTags::encrypt(&keys().secret, &tags, tag_bits).to_item_bytes();
    assert_eq!(sent.len(), tags.len());
    assert_eq!(sent[0].len(), PackedTags::leader_len());
    let items: Vec<&[u8]> = sent.iter().map(Vec::as_slice).collect();
    let whole = 0..tags.len();
    assert_eq!(groups(&items, tag_bits), Ok(vec![whole]));
    PackedTags::from_items(&items, tag_bits).expect("honest group")
}

#[test]
fn sizes_meet_the_batched_upload_target() {
    assert_eq!(PackedTags::capacity(28), 3);
    assert_eq!(PackedTags::capacity(32), 2);
    assert_eq!(PackedTags::capacity(33), 0);
    assert_eq!(PackedTags::capacity(12), 7);
    assert_eq!(PackedTags::leader_len(), 10_258);
    // A full group of three, and a batch of 64: 21 groups and a lone item
    // in format 3.
    assert_eq!(encoded_items_len(3, 28, true), 10_262);
    assert!(encoded_items_len(3, 28, true) / 3 <= 4096);
    assert!(encoded_items_len(64, 28, true) / 64 <= 4096);
    assert_eq!(
        encoded_items_len(64, 28, true),
        21 * 10_262 + CompressedTag::encoded_len()
    );
    assert_eq!(encoded_items_len(1, 28, true), CompressedTag::encoded_len());
    let (secret, tags) = (&keys().secret, [Tag(1), Tag(2), Tag(3), Tag(4)]);
    for len in 1..=4 {
        for pack in [true, false] {
            let sent = encrypt_items(secret, &tags[..len], 28, pack);
            assert_eq!(sent.len(), len);
            let bytes: usize = sent.iter().map(Vec::len).sum();
            assert_eq!(bytes, encoded_items_len(len, 28, pack), "{len} items");
        }
    }
    // Unpacked, every item is format 3's.
    assert_eq!(
        encoded_items_len(64, 28, false),
        64 * CompressedTag::encoded_len()
    );
}

/// Eight levels of expansion: every value of a full group comes back as a
/// constant, within the noise the budget expects of it.
#[test]
fn eight_levels_return_each_packed_value() {
    let key = &keys().expansion;
    let mut rng = rand::thread_rng();
    let tags: Vec<u64> = (0..3).map(|_| rng.gen::<u64>() & TAG_MASK).collect();
    let expected: Vec<u64> = tags
        .iter()
        .flat_map(|&t| tree_values((0..TAG_BITS).map(|b| (t >> b) & 1), COMPRESSION))
        .collect();
    let packed = received(&tags, TAG_BITS);
    let expanded = key.expand(
        packed.glwe.decompress_into_glwe_ciphertext(),
        expected.len(),
        COMPRESSION.packing_levels,
    );
    assert_eq!(expanded.len(), 252);
    let mut worst = 0u64;
    for (glwe, &value) in expanded.iter().zip(&expected) {
        let phase = decrypt(glwe);
        worst = worst.max(distance(phase[0], value));
        worst = phase[1..].iter().fold(worst, |w, &c| w.max(distance(c, 0)));
    }
    // Measured σ ≈ 2^29; the smallest packed value is 2^40.
    assert!(
        worst < 1 << 35,
        "expansion noise up to 2^{:.1}",
        (worst as f64).log2()
    );
}

fn counts(tags: &[u64], candidates: &[u64], encoding: CountEncoding) -> Vec<u32> {
    let Keys {
        secret,
        public,
        expansion,
    } = keys();
    PreparedTag::prepare_packed(received(tags, TAG_BITS), expansion)
        .iter()
        .map(|prepared| {
            let (raw, _) =
                evaluate(prepared, candidates, candidates.len() + 4, encoding).expect("evaluation");
            EncryptedCount::rerandomise(raw, public, encoding).decrypt(secret, encoding)
        })
        .collect()
}

/// Each item of a group counts its own match and nothing else: matches in
/// any slot, leaf-edge coefficients, a one-bit-off neighbour, at the largest
/// federation's Δ and smaller ones.
#[test]
fn each_item_of_a_group_counts_its_own_match() {
    let mut rng = rand::thread_rng();
    for nodes in [1, 3, 32, 64] {
        let encoding = CountEncoding::for_nodes(nodes).expect("federation size");
        let table: Vec<u64> = (0..24).map(|_| rng.gen::<u64>() & TAG_MASK).collect();
        let missing = (table[3] ^ (1 << 20)) & TAG_MASK;
        let near = table[4] ^ 1;
        assert!(!table.contains(&missing) && !table.contains(&near));
        let edges = [table[5] & !0x7ff, table[7] | 0x7ff];
        let mut candidates = table.clone();
        candidates.extend(edges);
        for group in [
            vec![table[0], missing, near],
            vec![near, table[23], edges[0]],
            vec![missing, edges[1]],
            vec![table[9], table[10]],
        ] {
            let expected: Vec<u32> = group
                .iter()
                .map(|t| u32::from(candidates.contains(t)))
                .collect();
            assert_eq!(
                counts(&group, &candidates, encoding),
                expected,
                "{nodes} nodes"
            );
        }
    }
}

/// Narrower tags pack more items: four 20-bit tags in one group.
#[test]
fn narrower_tags_pack_more_items() {
    let Keys {
        secret,
        public,
        expansion,
    } = keys();
    let bits = 20;
    assert_eq!(PackedTags::capacity(bits), 4);
    let mut rng = rand::thread_rng();
    let table: Vec<u64> = (0..16)
        .map(|_| rng.gen::<u64>() & ((1 << bits) - 1))
        .collect();
    let group = [table[2], table[5] ^ 0x800, table[11], table[7] ^ 1];
    let encoding = CountEncoding::LARGEST;
    let counts: Vec<u32> = PreparedTag::prepare_packed(received(&group, bits), expansion)
        .iter()
        .map(|prepared| {
            let (raw, _) = evaluate(prepared, &table, 20, encoding).expect("evaluation");
            EncryptedCount::rerandomise(raw, public, encoding).decrypt(secret, encoding)
        })
        .collect();
    let expected: Vec<u32> = group.iter().map(|t| u32::from(table.contains(t))).collect();
    assert_eq!(counts, expected);
}

/// 32 nodes' answers to one item of a packed group, each flooded as its
/// federation's encoding allows: the sum is the number of nodes holding it.
#[test]
fn thirty_two_nodes_add_up_exactly() {
    let Keys {
        secret,
        public,
        expansion,
    } = keys();
    let encoding = CountEncoding::for_nodes(32).expect("32 nodes");
    let mut rng = rand::thread_rng();
    for _ in 0..4 {
        let tags: Vec<u64> = (0..3).map(|_| rng.gen::<u64>() & TAG_MASK).collect();
        let holders = rng.gen_range(0..=32usize);
        let mut sums = [EncryptedCount::zero(), EncryptedCount::zero()];
        for node in 0..32 {
            let mut table: Vec<u64> = (0..12).map(|_| rng.gen::<u64>() & TAG_MASK).collect();
            table.retain(|t| !tags.contains(t));
            if node < holders {
                table.push(tags[1]);
            }
            let prepared = PreparedTag::prepare_packed(received(&tags, TAG_BITS), expansion);
            for (sum, item) in sums.iter_mut().zip(&prepared[1..]) {
                let (raw, _) = evaluate(item, &table, 16, encoding).expect("evaluation");
                sum.add_assign(&EncryptedCount::rerandomise(raw, public, encoding));
            }
        }
        assert_eq!(sums[0].decrypt(secret, encoding), holders as u32);
        assert_eq!(sums[1].decrypt(secret, encoding), 0);
    }
}

#[test]
fn malformed_groups_are_refused() {
    let tags = [Tag(1), Tag(2), Tag(3)];
    let sent = PackedTags::encrypt(&keys().secret, &tags, TAG_BITS).to_item_bytes();
    let group = |leader: &[u8]| {
        let items: Vec<&[u8]> = [leader, &sent[1], &sent[2]].to_vec();
        PackedTags::from_items(&items, TAG_BITS).err()
    };
    refuses_other_shapes(&sent[0], (1, wire::FORMAT_COMPRESSED_TAG), WHAT, group);
    let unexpected = |field| {
        Some(LookupError::UnexpectedField {
            object: WHAT,
            field,
        })
    };
    let items = |leader: &[u8], followers: &[&[u8]]| -> Vec<Vec<u8>> {
        std::iter::once(leader.to_vec())
            .chain(followers.iter().map(|f| f.to_vec()))
            .collect()
    };
    let decode = |items: Vec<Vec<u8>>| {
        let items: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
        PackedTags::from_items(&items, TAG_BITS).err()
    };
    // A count that is not the group's, or more than a GLWE holds.
    for count in [0u8, 1, 2, 4, 255] {
        let mut leader = sent[0].clone();
        leader[1] = count;
        assert_eq!(
            decode(items(&leader, &[&sent[1], &sent[2]])),
            unexpected("item count"),
            "{count}"
        );
    }
    // Slots out of order, repeated, too long, or of another format.
    for followers in [
        [&[5u8, 2][..], &[5, 1][..]],
        [&[5, 1], &[5, 1]],
        [&[5, 1], &[5, 2, 0]],
        [&[5, 1], &[3, 2]],
    ] {
        assert_eq!(
            decode(items(&sent[0], &followers)),
            unexpected("slot"),
            "{followers:?}"
        );
    }
    // Widths format 4 does not carry.
    let all: Vec<&[u8]> = sent.iter().map(Vec::as_slice).collect();
    assert!(PackedTags::from_items(&all, 33).is_err());
    assert!(PackedTags::from_items(&all, LOW_TAG_BITS).is_err());
    assert_eq!(
        PackedTags::from_items(&[], TAG_BITS).err(),
        Some(LookupError::Malformed(WHAT))
    );
}

#[test]
fn groups_are_delimited_or_refused() {
    let sent = PackedTags::encrypt(&keys().secret, &[Tag(1), Tag(2)], TAG_BITS).to_item_bytes();
    let other = CompressedTag::encrypt(&keys().secret, Tag(3), TAG_BITS).to_bytes();
    let items: Vec<&[u8]> = vec![&other, &sent[0], &sent[1], &other];
    assert_eq!(groups(&items, TAG_BITS), Ok(vec![0..1, 1..3, 3..4]));
    // A slot without its group, a group that runs past the batch, a count
    // of zero, a leader cut to its format byte.
    let slot_first: Vec<&[u8]> = vec![&sent[1], &sent[0]];
    assert!(matches!(groups(&slot_first, TAG_BITS), Err((0, _))));
    let cut: Vec<&[u8]> = vec![&other, &sent[0]];
    assert!(matches!(groups(&cut, TAG_BITS), Err((1, _))));
    let zero = [wire::FORMAT_PACKED_TAGS, 0];
    assert!(matches!(groups(&[&zero[..]], TAG_BITS), Err((0, _))));
    let bare = [wire::FORMAT_PACKED_TAGS];
    assert_eq!(
        groups(&[&bare[..]], TAG_BITS),
        Err((0, LookupError::Malformed(WHAT)))
    );
    // The whole group is checked before any work: a bad slot, a short
    // leader, a group of one, and a compressed tag a byte short.
    let swapped: Vec<&[u8]> = vec![&sent[0], &[5, 2]];
    assert!(matches!(groups(&swapped, TAG_BITS), Err((0, _))));
    let short: Vec<&[u8]> = vec![&sent[0][..100], &sent[1]];
    assert_eq!(
        groups(&short, TAG_BITS),
        Err((0, LookupError::Malformed(WHAT)))
    );
    let mut one = sent[0].clone();
    one[1] = 1;
    assert!(matches!(groups(&[&one[..]], TAG_BITS), Err((0, _))));
    let cut_compressed: Vec<&[u8]> = vec![&other[..other.len() - 1]];
    assert!(matches!(groups(&cut_compressed, TAG_BITS), Err((0, _))));
}

/// A requester's bytes of the right shape are a ciphertext of something:
/// random ones expand and evaluate without a panic.
#[test]
fn random_bytes_of_the_right_shape_evaluate() {
    let mut rng = rand::thread_rng();
    let mut leader = vec![0u8; PackedTags::leader_len()];
    rng.fill(&mut leader[..]);
    leader[0] = wire::FORMAT_PACKED_TAGS;
    leader[1] = 3;
    let items: Vec<&[u8]> = vec![&leader, &[5, 1], &[5, 2]];
    let packed = PackedTags::from_items(&items, TAG_BITS).expect("shape");
    let table: Vec<u64> = (0..8).map(|_| rng.gen::<u64>() & TAG_MASK).collect();
    for prepared in PreparedTag::prepare_packed(packed, &keys().expansion) {
        evaluate(&prepared, &table, 12, CountEncoding::LARGEST).expect("evaluation");
    }
}
