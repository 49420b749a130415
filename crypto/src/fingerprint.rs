//! Keyed fingerprints: a node's fingerprint of an identifier is its OPRF
//! output under that node's key ([`crate::oprf`]), which the requester obtains
//! blinded.
//!
//! The first `bucket_bits` bits of a fingerprint are the bucket (sent in clear to
//! the node: the one declared leak), the next `tag_bits` bits the tag (compared
//! under encryption). Fingerprints of one identifier at two nodes are unrelated.

use std::fmt;

use crate::lookup::params::LOW_TAG_BITS;

/// Most bucket bits a federation may use: 16 bits already means tiny buckets.
pub const MAX_BUCKET_BITS: u8 = 16;
/// Most tag bits: the tag is read from a `u64` window after the bucket.
pub const MAX_TAG_BITS: u8 = 40;

/// Errors about fingerprint parameters.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FingerprintError {
    /// The bucket width is outside 0..=16 bits.
    #[error("bucket_bits must be between 0 and {MAX_BUCKET_BITS}")]
    BucketBits,
    /// The tag width cannot hold the leaf index or is too wide.
    #[error("tag_bits must be between {} and {MAX_TAG_BITS}", LOW_TAG_BITS + 1)]
    TagBits,
}

/// A keyed fingerprint. Its `Debug` never prints the bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fingerprint(..)")
    }
}

impl Fingerprint {
    /// Rebuilds a fingerprint from its stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The bytes, for the node's own store only.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn leading_u64(&self) -> u64 {
        let mut head = [0u8; 8];
        head.copy_from_slice(&self.0[..8]);
        u64::from_be_bytes(head)
    }

    /// The bucket: the first `bucket_bits` bits.
    pub fn bucket(&self, params: FingerprintParams) -> Bucket {
        if params.bucket_bits == 0 {
            return Bucket(0);
        }
        Bucket((self.leading_u64() >> (64 - u32::from(params.bucket_bits))) as u32)
    }

    /// The tag: the `tag_bits` bits after the bucket.
    pub fn tag(&self, params: FingerprintParams) -> Tag {
        let shifted = self.leading_u64() << params.bucket_bits;
        Tag(shifted >> (64 - u32::from(params.tag_bits)))
    }
}

/// Bucket index, sent in clear with a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bucket(pub u32);

/// Tag of a fingerprint, compared under encryption only. `Debug` hides it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(pub u64);

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tag(..)")
    }
}

/// How a fingerprint splits into bucket and tag; federation-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FingerprintParams {
    bucket_bits: u8,
    tag_bits: u8,
}

impl FingerprintParams {
    /// Checks the widths: the tag must cover the leaf index (11 bits) plus at
    /// least one tree level.
    pub fn new(bucket_bits: u8, tag_bits: u8) -> Result<Self, FingerprintError> {
        if bucket_bits > MAX_BUCKET_BITS {
            return Err(FingerprintError::BucketBits);
        }
        if tag_bits <= LOW_TAG_BITS || tag_bits > MAX_TAG_BITS {
            return Err(FingerprintError::TagBits);
        }
        Ok(Self {
            bucket_bits,
            tag_bits,
        })
    }

    /// Bits of the bucket.
    pub fn bucket_bits(self) -> u8 {
        self.bucket_bits
    }

    /// Bits of the tag.
    pub fn tag_bits(self) -> u8 {
        self.tag_bits
    }

    /// Number of buckets.
    pub fn bucket_count(self) -> u32 {
        1u32 << self.bucket_bits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_and_tag_partition_the_leading_bits() -> Result<(), Box<dyn std::error::Error>> {
        let params = FingerprintParams::new(12, 28)?;
        let fp = Fingerprint::from_bytes([0xAB; 32]);
        let head = u64::from_be_bytes([0xAB; 8]);
        assert_eq!(u64::from(fp.bucket(params).0), head >> 52);
        assert_eq!(fp.tag(params).0, (head >> 24) & ((1 << 28) - 1));
        Ok(())
    }

    #[test]
    fn params_are_validated() {
        assert_eq!(
            FingerprintParams::new(17, 28),
            Err(FingerprintError::BucketBits)
        );
        assert_eq!(
            FingerprintParams::new(12, 11),
            Err(FingerprintError::TagBits)
        );
        assert!(FingerprintParams::new(12, 28).is_ok());
    }
}
