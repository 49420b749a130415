//! Byte encodings of lookup objects, with a version byte and size limits.
//!
//! Everything a peer sends is untrusted: decoding is bounded by an explicit
//! limit before any allocation, rejects trailing bytes, and the caller then
//! checks the decoded object's parameters against [`super::params::PARAMETERS`].

use bincode::Options;
use serde::{de::DeserializeOwned, Serialize};

use super::LookupError;

/// Version byte of every encoding below; bump it with any layout change.
pub(crate) const FORMAT_V1: u8 = 1;

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

pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    limit: u64,
    what: &'static str,
) -> Result<T, LookupError> {
    let Some((&version, body)) = bytes.split_first() else {
        return Err(LookupError::Malformed(what));
    };
    if version != FORMAT_V1 {
        return Err(LookupError::UnsupportedFormat(what));
    }
    if body.len() as u64 > limit {
        return Err(LookupError::TooLarge(what));
    }
    options(limit)
        .deserialize(body)
        .map_err(|_| LookupError::Malformed(what))
}
