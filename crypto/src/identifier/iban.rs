//! IBANs: paper or electronic format to the electronic format (ISO 13616).

use iban::{Iban, IbanLike, ParseBaseIbanError, ParseIbanError};

use super::{IdentifierError, IdentifierKind};

/// Longest IBAN any country issues (ISO 13616).
const MAX_IBAN_LEN: usize = 34;

fn invalid(reason: &'static str) -> IdentifierError {
    IdentifierError::invalid(IdentifierKind::Iban, reason)
}

/// Normalises a trimmed, non-empty IBAN to its electronic format.
///
/// We compact and uppercase before parsing because iban_validate only accepts spaces in
/// exact groups of four and an uppercase country code, while people write both freely.
pub(super) fn normalise(raw: &str) -> Result<String, IdentifierError> {
    let mut compact = String::with_capacity(raw.len());
    for c in strip_label(raw).chars() {
        if c.is_whitespace() {
            continue;
        }
        if !c.is_ascii_alphanumeric() {
            return Err(invalid(
                "iban contains characters other than letters and digits",
            ));
        }
        compact.push(c.to_ascii_uppercase());
    }
    if compact.len() > MAX_IBAN_LEN {
        return Err(invalid("iban is longer than 34 characters"));
    }
    let iban: Iban = compact.parse().map_err(|e| match e {
        ParseIbanError::InvalidBaseIban {
            source: ParseBaseIbanError::InvalidChecksum,
        } => invalid("iban checksum does not match"),
        ParseIbanError::InvalidBaseIban {
            source: ParseBaseIbanError::InvalidFormat,
        } => invalid("iban does not follow the iban format"),
        ParseIbanError::InvalidBban(_) => {
            invalid("iban account part does not follow its country format")
        }
        ParseIbanError::UnknownCountry(_) => invalid("iban country is not in the iban registry"),
    })?;
    Ok(iban.electronic_str().to_string())
}

/// Drops a leading "IBAN" or "IBAN:" label as printed on statements; no country code is
/// "IB", so this cannot eat part of a real IBAN.
fn strip_label(raw: &str) -> &str {
    match raw.get(..4) {
        Some(label) if label.eq_ignore_ascii_case("iban") => {
            raw[4..].trim_start().trim_start_matches(':')
        }
        _ => raw,
    }
}
