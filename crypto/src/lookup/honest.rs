//! The one gate between a peer's bytes and tfhe objects.
//!
//! tfhe's entities trust their fields. What tfhe 1.8.2 does with each field of
//! the objects a peer sends us, if nothing checked it first:
//!
//! - seeded GGSW list (an encrypted tag): `par_decompress_*` rebuilds the
//!   masks from `compression_seed` and `unwrap`s the generator fork. A seed
//!   that starts (`first_index`) near the end of its stream leaves too few
//!   bytes (`ForkError::ForkTooLarge`: measured, it aborted the node), and an
//!   empty list cannot be forked at all (`ZeroChildrenCount`: measured too).
//!   Other starts, byte indices past their AES block (an invariant tfhe-csprng
//!   only asserts in its constructor) and XOF seeds decompress without a
//!   panic today, into masks no honest client uses. `ggsw_ciphertext_count`
//!   divides by a product of `glwe_size`, `polynomial_size` and the level
//!   count (zero: division by zero; huge: overflow), `from_container` asserts
//!   a native or power-of-two modulus, and the Fourier conversion and external
//!   products assert that shapes and decomposition match the node's own.
//! - compact public key: `from_container` asserts a power-of-two length and
//!   the encryption asserts the key's dimension and modulus against the
//!   ciphertext's.
//! - GLWE secret key (the requester's own file): `glwe_dimension` divides by
//!   `polynomial_size` (a zero made the old check panic), `from_container`
//!   asserts a non-empty, divisible container.
//!
//! Rather than trusting tfhe's conformance checks to cover each of these
//! (they ignore the seed entirely), no tfhe object is ever deserialised from
//! a peer: the bytes decode into plain mirrors of tfhe's serde layout (so the
//! encoding, which tfhe itself still writes, is unchanged), [`Honest::check`]
//! compares every field with the one value an honest peer sends, and only then
//! is the tfhe object built, from [`PARAMETERS`] and the checked data.

use serde::{Deserialize, Serialize};
use tfhe::core_crypto::commons::math::random::Seed;
use tfhe::core_crypto::prelude::*;

use super::params::PARAMETERS;
use super::LookupError;

/// A decoded-but-unchecked object: a mirror of a tfhe type's serde layout.
pub(crate) trait Honest: serde::de::DeserializeOwned {
    /// The tfhe object built once every field has been checked.
    type Object;
    /// What the caller expects beyond [`PARAMETERS`] (a GGSW count).
    type Shape: Copy;
    /// The object's name in errors.
    const WHAT: &'static str;

    /// Most encoded bytes an honest peer sends, checked before decoding.
    fn limit(shape: Self::Shape) -> u64;

    /// Refuses any field that is not the honest value, then builds the object.
    fn check(self, shape: Self::Shape) -> Result<Self::Object, LookupError>;
}

fn field(object: &'static str, field: &'static str) -> LookupError {
    LookupError::UnexpectedField { object, field }
}

/// Refuses `value` unless it is `honest`.
fn expect<T: PartialEq>(
    object: &'static str,
    name: &'static str,
    value: T,
    honest: T,
) -> Result<(), LookupError> {
    if value == honest {
        Ok(())
    } else {
        Err(field(object, name))
    }
}

/// `CiphertextModulus` as tfhe serialises it (`SerializableCiphertextModulus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireModulus {
    /// 0 for the native modulus 2^64.
    modulus: u128,
    scalar_bits: u64,
}

impl WireModulus {
    fn honest() -> Self {
        let modulus = PARAMETERS.ciphertext_modulus;
        Self {
            modulus: if modulus.is_native_modulus() {
                0
            } else {
                modulus.get_custom_modulus()
            },
            scalar_bits: u64::from(u64::BITS),
        }
    }
}

/// `SeedKind` as tfhe-csprng serialises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireSeedKind {
    /// `Ctr(Seed)`: AES-CTR keyed by the seed; what [`new_seeder`] gives.
    Ctr(u128),
    /// `Xof(XofSeed)`: a key and start derived from arbitrary bytes.
    Xof(Vec<u8>),
}

/// `TableIndex`: a position in the generator's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireTableIndex {
    aes_index: u128,
    byte_index: u64,
}

/// `CompressionSeed` (an `AesCtrParams`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireCompressionSeed {
    seed: WireSeedKind,
    first_index: WireTableIndex,
}

impl WireCompressionSeed {
    /// The seed value, if the seed is what `Seed::into()` makes: AES-CTR from
    /// the very first byte of its stream. The node regenerates every mask
    /// from there, so any other start is refused, not only those tfhe would
    /// fail on.
    fn honest_seed(&self, object: &'static str) -> Result<Seed, LookupError> {
        let WireSeedKind::Ctr(seed) = self.seed else {
            return Err(field(object, "compression seed kind"));
        };
        expect(
            object,
            "compression seed start",
            self.first_index,
            WireTableIndex {
                aes_index: 0,
                byte_index: 0,
            },
        )?;
        Ok(Seed(seed))
    }
}

/// `SeededGgswCiphertextList<Vec<u64>>`: an encrypted tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireSeededGgswList {
    data: Vec<u64>,
    glwe_size: u64,
    polynomial_size: u64,
    decomp_base_log: u64,
    decomp_level_count: u64,
    compression_seed: WireCompressionSeed,
    ciphertext_modulus: WireModulus,
}

/// Number of GGSWs of an encrypted tag: its tag bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TagBits(pub(crate) u8);

fn seeded_ggsw_len() -> usize {
    seeded_ggsw_ciphertext_size(
        PARAMETERS.glwe_size(),
        PARAMETERS.polynomial_size,
        PARAMETERS.level_count,
    )
}

/// Encoded bytes besides the values: version, length prefix and the fields
/// after the data (100 bytes for a `Ctr` seed), rounded up.
const HEADER_ALLOWANCE: u64 = 1024;

impl Honest for WireSeededGgswList {
    type Object = (SeededGgswCiphertextListOwned<u64>, Seed);
    type Shape = TagBits;
    const WHAT: &'static str = "encrypted tag";

    fn limit(TagBits(bits): TagBits) -> u64 {
        (usize::from(bits) * seeded_ggsw_len() * 8) as u64 + HEADER_ALLOWANCE
    }

    fn check(self, TagBits(bits): TagBits) -> Result<Self::Object, LookupError> {
        let what = Self::WHAT;
        // Zero GGSWs cannot even be decompressed.
        super::query::check_tag_bits(bits)?;
        let p = &PARAMETERS;
        expect(what, "glwe size", self.glwe_size, p.glwe_size().0 as u64)?;
        expect(
            what,
            "polynomial size",
            self.polynomial_size,
            p.polynomial_size.0 as u64,
        )?;
        expect(
            what,
            "decomposition base log",
            self.decomp_base_log,
            p.base_log.0 as u64,
        )?;
        expect(
            what,
            "decomposition level count",
            self.decomp_level_count,
            p.level_count.0 as u64,
        )?;
        expect(
            what,
            "ciphertext modulus",
            self.ciphertext_modulus,
            WireModulus::honest(),
        )?;
        let seed = self.compression_seed.honest_seed(what)?;
        if self.data.len() != usize::from(bits) * seeded_ggsw_len() {
            return Err(LookupError::WrongParameters(what));
        }
        let list = SeededGgswCiphertextList::from_container(
            self.data,
            p.glwe_size(),
            p.polynomial_size,
            p.base_log,
            p.level_count,
            seed.into(),
            p.ciphertext_modulus,
        );
        Ok((list, seed))
    }
}

/// `GlweCiphertext<Vec<u64>>`, inside a compact public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireGlwe {
    data: Vec<u64>,
    polynomial_size: u64,
    ciphertext_modulus: WireModulus,
}

/// `LweCompactPublicKey<Vec<u64>>`: the requester's public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireCompactPublicKey {
    glwe_ciphertext: WireGlwe,
}

impl Honest for WireCompactPublicKey {
    type Object = LweCompactPublicKeyOwned<u64>;
    type Shape = ();
    const WHAT: &'static str = "public key";

    fn limit((): ()) -> u64 {
        // A GLWE of dimension 1 over polynomials of size k·N.
        (2 * PARAMETERS.lwe_dimension().0 * 8) as u64 + HEADER_ALLOWANCE
    }

    fn check(self, (): ()) -> Result<Self::Object, LookupError> {
        let what = Self::WHAT;
        let glwe = self.glwe_ciphertext;
        let dimension = PARAMETERS.lwe_dimension().0;
        expect(
            what,
            "polynomial size",
            glwe.polynomial_size,
            dimension as u64,
        )?;
        expect(
            what,
            "ciphertext modulus",
            glwe.ciphertext_modulus,
            WireModulus::honest(),
        )?;
        if glwe.data.len() != 2 * dimension {
            return Err(LookupError::WrongParameters(what));
        }
        Ok(LweCompactPublicKey::from_container(
            glwe.data,
            PARAMETERS.ciphertext_modulus,
        ))
    }
}

/// `GlweSecretKey<Vec<u64>>`: the requester's key file.
#[derive(Serialize, Deserialize)]
pub(crate) struct WireGlweSecretKey {
    data: Vec<u64>,
    polynomial_size: u64,
}

impl Drop for WireGlweSecretKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.data);
    }
}

impl Honest for WireGlweSecretKey {
    type Object = GlweSecretKeyOwned<u64>;
    type Shape = ();
    const WHAT: &'static str = "secret key";

    fn limit((): ()) -> u64 {
        (PARAMETERS.lwe_dimension().0 * 8) as u64 + HEADER_ALLOWANCE
    }

    fn check(mut self, (): ()) -> Result<Self::Object, LookupError> {
        let what = Self::WHAT;
        let n = PARAMETERS.polynomial_size;
        expect(what, "polynomial size", self.polynomial_size, n.0 as u64)?;
        if self.data.len() != PARAMETERS.lwe_dimension().0 {
            return Err(LookupError::WrongParameters(what));
        }
        // A binary key: anything else is not a key this crate made.
        if self.data.iter().any(|&bit| bit > 1) {
            return Err(LookupError::WrongParameters(what));
        }
        let data = std::mem::take(&mut self.data);
        Ok(GlweSecretKey::from_container(data, n))
    }
}
