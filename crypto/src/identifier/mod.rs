//! Identifier kinds and their canonical normal forms, the input of every fingerprint.
//!
//! Two jurisdictions only find each other's records if they turn the same person's
//! identifier into the same bytes, so every kind has exactly one normal form and
//! `normalise` is idempotent: a normal form is itself accepted input and maps to itself.
//!
//! Accepted input per kind:
//!
//! - `phone`: international numbers with `+` or a leading `00`, separators ` -./()`,
//!   an optional trunk `(0)`; normal form E.164 `+33612345678`.
//! - `passport`, `national_id`: `<country><sep><number>`, country ISO 3166 alpha-2 or
//!   alpha-3, sep the first of `: / - space`; normal form `FR:12AB34567`.
//! - `email`: a plain address (no display name, comments, quotes or domain literal);
//!   normal form the lowercase address.
//! - `iban`: electronic or paper format, any case, optional `IBAN` prefix; normal form
//!   the electronic format.
//! - `crypto_wallet`: `<chain>:<address>`, chain `btc`/`bitcoin` or `eth`/`ethereum`;
//!   normal forms `btc:<base58check or lowercase bech32>`, `eth:0x<lowercase hex>`.
//! - `name_dob`: `<name>;<date>` or `<name>|<date>`; normal form
//!   `dm:<phonetic codes, sorted>|YYYY-MM-DD` (the `name_dob` submodule says why).
//!
//! Nothing here logs, and no error carries the identifier: errors reach logs and other
//! jurisdictions, so they hold only the kind and a static reason.

mod document;
mod email;
mod iban;
mod name_dob;
mod phone;
mod wallet;

#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

pub use wallet::{encode_btc_p2pkh, encode_eth_eip55};

/// Longest raw identifier accepted, in bytes; longer input is refused before parsing.
pub const MAX_IDENTIFIER_BYTES: usize = 256;

/// The kinds of identifier a lookup can carry.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierKind {
    /// Passport: issuing country and document number.
    Passport,
    /// National identity document: country and number.
    NationalId,
    /// Phone number, E.164.
    Phone,
    /// Email address.
    Email,
    /// International bank account number.
    Iban,
    /// Crypto-currency wallet: chain and address.
    CryptoWallet,
    /// Name and date of birth, matched phonetically.
    NameDob,
}

impl IdentifierKind {
    /// Every kind, in code order.
    pub const ALL: [IdentifierKind; 7] = [
        IdentifierKind::Passport,
        IdentifierKind::NationalId,
        IdentifierKind::Phone,
        IdentifierKind::Email,
        IdentifierKind::Iban,
        IdentifierKind::CryptoWallet,
        IdentifierKind::NameDob,
    ];

    /// The snake_case name used in configuration, CSV files and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierKind::Passport => "passport",
            IdentifierKind::NationalId => "national_id",
            IdentifierKind::Phone => "phone",
            IdentifierKind::Email => "email",
            IdentifierKind::Iban => "iban",
            IdentifierKind::CryptoWallet => "crypto_wallet",
            IdentifierKind::NameDob => "name_dob",
        }
    }

    /// Stable code (1..=7) that goes into fingerprints and onto the wire; never reuse one.
    pub fn code(self) -> u8 {
        match self {
            IdentifierKind::Passport => 1,
            IdentifierKind::NationalId => 2,
            IdentifierKind::Phone => 3,
            IdentifierKind::Email => 4,
            IdentifierKind::Iban => 5,
            IdentifierKind::CryptoWallet => 6,
            IdentifierKind::NameDob => 7,
        }
    }

    /// The kind with this code, if any.
    pub fn from_code(code: u8) -> Option<Self> {
        IdentifierKind::ALL.into_iter().find(|k| k.code() == code)
    }
}

impl fmt::Display for IdentifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IdentifierKind {
    type Err = IdentifierError;

    /// Accepts the [`IdentifierKind::as_str`] names, case-insensitive, `-` for `_`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('-', "_");
        IdentifierKind::ALL
            .into_iter()
            .find(|k| k.as_str() == wanted)
            .ok_or_else(|| IdentifierError::UnknownKind(loggable_kind_name(s)))
    }
}

/// Keeps a rejected kind name only if it looks like a kind name, so that an identifier
/// pasted into the wrong field cannot reach the logs through this error.
fn loggable_kind_name(s: &str) -> String {
    let s = s.trim();
    let plausible = s.len() <= 32
        && s.chars()
            .all(|c| c.is_ascii_alphabetic() || c == '_' || c == '-');
    if plausible {
        s.to_string()
    } else {
        "<redacted>".to_string()
    }
}

/// Why an identifier was refused. Messages never contain the identifier itself.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentifierError {
    /// The kind name is not one of [`IdentifierKind::ALL`] (redacted unless it looks
    /// like a kind name).
    #[error("unknown identifier kind {0:?}")]
    UnknownKind(String),
    /// The identifier is empty or only whitespace.
    #[error("identifier is empty")]
    Empty,
    /// The identifier is longer than [`MAX_IDENTIFIER_BYTES`].
    #[error("identifier is longer than 256 bytes")]
    TooLong,
    /// The identifier is not a valid identifier of its kind.
    #[error("invalid {kind}: {reason}")]
    Invalid {
        /// The kind it was checked against.
        kind: IdentifierKind,
        /// Static description of the problem, free of the identifier's content.
        reason: &'static str,
    },
}

impl IdentifierError {
    /// Shorthand for [`IdentifierError::Invalid`].
    pub(crate) fn invalid(kind: IdentifierKind, reason: &'static str) -> Self {
        IdentifierError::Invalid { kind, reason }
    }
}

/// Canonical normal form of an identifier, the only thing fingerprints are computed from.
///
/// Deliberately has no `Display` and a redacting `Debug`: the content is personal data
/// and must never end up in a log line.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NormalForm(String);

impl NormalForm {
    /// The normal form as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normal form as bytes, as fed to the fingerprint.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// A normal form read back from a node's own store, where only the output
    /// of [`normalise`] is ever written (re-normalising is not idempotent for
    /// every kind, so the stored text is taken as is).
    pub fn from_stored(text: String) -> Self {
        Self(text)
    }
}

impl fmt::Debug for NormalForm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NormalForm(..)")
    }
}

/// Turns a raw identifier of `kind` into its normal form, or says why it is refused.
pub fn normalise(kind: IdentifierKind, raw: &str) -> Result<NormalForm, IdentifierError> {
    if raw.len() > MAX_IDENTIFIER_BYTES {
        return Err(IdentifierError::TooLong);
    }
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(IdentifierError::Empty);
    }
    let normal = match kind {
        IdentifierKind::Passport | IdentifierKind::NationalId => {
            document::normalise(kind, trimmed)?
        }
        IdentifierKind::Phone => phone::normalise(trimmed)?,
        IdentifierKind::Email => email::normalise(trimmed)?,
        IdentifierKind::Iban => iban::normalise(trimmed)?,
        IdentifierKind::CryptoWallet => wallet::normalise(trimmed)?,
        IdentifierKind::NameDob => name_dob::normalise(trimmed)?,
    };
    Ok(NormalForm(normal))
}
