//! Byte encodings of lookup objects, with a version byte and size limits.
//!
//! Everything a peer sends is untrusted: decoding is bounded by an explicit
//! limit before any allocation, rejects trailing bytes, and goes through
//! [`Honest`]: a peer's bytes never become a tfhe object before every field
//! has been checked against [`super::params::PARAMETERS`].

use bincode::Options;
use serde::Serialize;

use tfhe::core_crypto::commons::math::random::Seed;

use super::honest::Honest;
use super::LookupError;

/// Version byte of every encoding below; bump it with any layout change.
pub(crate) const FORMAT_V1: u8 = 1;

/// Version byte of an encrypted tag with rounded bodies, which has its own
/// layout ([`super::query`]): never a value of [`FORMAT_V1`]'s series.
pub(crate) const FORMAT_ROUNDED_TAG: u8 = 2;

/// Version byte of a compressed tag (format 3, [`super::compress`]).
pub(crate) const FORMAT_COMPRESSED_TAG: u8 = 3;

/// Version byte of the first item of a packed group (format 4,
/// [`super::packed`]), which carries the group's GLWE.
pub(crate) const FORMAT_PACKED_TAGS: u8 = 4;

/// Version byte of the group's other items: a slot in the first one's GLWE.
pub(crate) const FORMAT_PACKED_SLOT: u8 = 5;

/// Version byte of a requester's expansion key ([`super::compress`]).
pub(crate) const FORMAT_EXPANSION_KEY: u8 = 1;

/// Refuses an untrusted encoding unless its format byte is `format` and its
/// length `expected` (format 3's objects have fixed sizes).
pub(crate) fn check_fixed(
    bytes: &[u8],
    format: u8,
    expected: usize,
    what: &'static str,
) -> Result<(), LookupError> {
    match bytes.first() {
        Some(&f) if f == format => {}
        Some(_) => return Err(LookupError::UnsupportedFormat(what)),
        None => return Err(LookupError::Malformed(what)),
    }
    match bytes.len() {
        len if len > expected => Err(LookupError::TooLarge(what)),
        len if len < expected => Err(LookupError::Malformed(what)),
        _ => Ok(()),
    }
}

/// The seed of 16 little-endian bytes at `at` (a length already checked).
pub(crate) fn seed_at(bytes: &[u8], at: usize) -> Seed {
    let mut le = [0u8; 16];
    le.copy_from_slice(&bytes[at..at + 16]);
    Seed(u128::from_le_bytes(le))
}

fn options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
        .with_limit(limit)
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_V1];
    options(u64::MAX)
        .serialize_into(&mut out, value)
        .expect("serialising into a Vec cannot fail");
    out
}

/// Decodes an untrusted encoding of `H`'s object, expected to have `shape`.
pub(crate) fn decode<H: Honest>(bytes: &[u8], shape: H::Shape) -> Result<H::Object, LookupError> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(LookupError::Malformed(H::WHAT));
    };
    if version != FORMAT_V1 {
        return Err(LookupError::UnsupportedFormat(H::WHAT));
    }
    let limit = H::limit(shape);
    if body.len() as u64 > limit {
        return Err(LookupError::TooLarge(H::WHAT));
    }
    let mirror: H = options(limit)
        .deserialize(body)
        .map_err(|_| LookupError::Malformed(H::WHAT))?;
    mirror.check(shape)
}
