//! The wire layout of an encrypted lookup tag, for building hostile ones.
//!
//! An encrypted tag is `fedq_crypto`'s encoding of a tfhe seeded GGSW list:
//! a version byte, then bincode (fixed-width integers, little endian) of the
//! list: its data (`u64` length, then the bodies), followed by a tail of
//! parameters and the compression seed. The tail has a fixed size, so each of
//! its fields sits at a fixed offset from the end (see
//! `crypto/src/lookup/wire.rs` and `crypto/src/lookup/query.rs`).

/// A field of the tail of an encoded seeded GGSW list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagField {
    /// GLWE size (k + 1), `u64`.
    GlweSize,
    /// Polynomial size N, `u64`.
    PolynomialSize,
    /// Decomposition base log, `u64`.
    DecompBaseLog,
    /// Decomposition level count, `u64`.
    DecompLevelCount,
    /// Kind of compression seed (0: AES-CTR `Seed`, 1: XOF), `u32`.
    SeedKind,
    /// The 128-bit seed.
    Seed,
    /// Where in the seed's AES-CTR stream the masks start: the AES block...
    FirstAesIndex,
    /// ...and the byte inside it, `u64`. An honest list starts at (0, 0).
    FirstByteIndex,
    /// Ciphertext modulus (0: native 2^64), `u128`.
    Modulus,
    /// Bits of the modulus' scalar type, `u64`.
    ModulusScalarBits,
}

/// Bytes of the tail after the list's data.
pub const TAIL_BYTES: usize = 100;

impl TagField {
    /// Offset from the end of the encoding, and width in bytes.
    fn place(self) -> (usize, usize) {
        match self {
            Self::GlweSize => (100, 8),
            Self::PolynomialSize => (92, 8),
            Self::DecompBaseLog => (84, 8),
            Self::DecompLevelCount => (76, 8),
            Self::SeedKind => (68, 4),
            Self::Seed => (64, 16),
            Self::FirstAesIndex => (48, 16),
            Self::FirstByteIndex => (32, 8),
            Self::Modulus => (24, 16),
            Self::ModulusScalarBits => (8, 8),
        }
    }
}

/// Reads `field` of an encoded tag.
pub fn read(bytes: &[u8], field: TagField) -> u128 {
    let (from_end, width) = field.place();
    let start = bytes.len() - from_end;
    let mut le = [0u8; 16];
    le[..width].copy_from_slice(&bytes[start..start + width]);
    u128::from_le_bytes(le)
}

/// `bytes` with `field` set to `value` (truncated to the field's width).
pub fn with(bytes: &[u8], field: TagField, value: u128) -> Vec<u8> {
    let (from_end, width) = field.place();
    let mut out = bytes.to_vec();
    let start = out.len() - from_end;
    out[start..start + width].copy_from_slice(&value.to_le_bytes()[..width]);
    out
}

/// An encoding shaped like `honest` (same tail) but holding `count` GGSW
/// bodies of zeros, `ggsw_bytes` each.
pub fn with_ggsw_count(honest: &[u8], ggsw_bytes: usize, count: usize) -> Vec<u8> {
    let tail = &honest[honest.len() - TAIL_BYTES..];
    let mut out = vec![honest[0]];
    out.extend_from_slice(&((count * ggsw_bytes / 8) as u64).to_le_bytes());
    out.resize(out.len() + count * ggsw_bytes, 0);
    out.extend_from_slice(tail);
    out
}

/// `honest` with its seed replaced by an XOF seed of `len` bytes.
pub fn with_xof_seed(honest: &[u8], len: usize) -> Vec<u8> {
    let (seed_kind, _) = TagField::SeedKind.place();
    let (first_aes, _) = TagField::FirstAesIndex.place();
    let (start, end) = (honest.len() - seed_kind, honest.len() - first_aes);
    let mut xof = 1u32.to_le_bytes().to_vec();
    xof.extend_from_slice(&(len as u64).to_le_bytes());
    xof.resize(xof.len() + len, 7);
    [&honest[..start], &xof[..], &honest[end..]].concat()
}
