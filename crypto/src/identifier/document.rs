//! Passport and national identity document numbers: issuing country plus number.

use isocountry::CountryCode;

use super::{IdentifierError, IdentifierKind};

/// Characters that may separate the country from the number; the first one wins.
const SEPARATORS: [char; 4] = [':', '/', '-', ' '];
/// Characters people put inside document numbers for readability.
const NUMBER_FILLERS: [char; 3] = [' ', '-', '.'];
const MIN_NUMBER_LEN: usize = 5;
const MAX_NUMBER_LEN: usize = 20;

/// Normalises a trimmed, non-empty `<country><sep><number>` to `CC:NUMBER`.
///
/// The country is part of the normal form because document numbers are only unique
/// per issuing state; alpha-3 input is mapped to alpha-2 so both spellings meet.
pub(super) fn normalise(kind: IdentifierKind, raw: &str) -> Result<String, IdentifierError> {
    let invalid = |reason| IdentifierError::invalid(kind, reason);
    let (country, number) = raw
        .split_once(SEPARATORS)
        .ok_or_else(|| invalid("document has no issuing country before a separator"))?;
    let country = parse_country(country.trim())
        .ok_or_else(|| invalid("document has an unknown issuing country"))?;
    // Tolerate "FR : 123" and "FR - 123", where the first separator is a space.
    let number = number.trim_start_matches(SEPARATORS);
    let mut compact = String::with_capacity(number.len());
    for c in number.chars() {
        if NUMBER_FILLERS.contains(&c) || c.is_whitespace() {
            continue;
        }
        if !c.is_ascii_alphanumeric() {
            return Err(invalid(
                "document number contains characters other than letters and digits",
            ));
        }
        compact.push(c.to_ascii_uppercase());
    }
    if !(MIN_NUMBER_LEN..=MAX_NUMBER_LEN).contains(&compact.len()) {
        return Err(invalid(
            "document number must have 5 to 20 letters or digits",
        ));
    }
    Ok(format!("{}:{compact}", country.alpha2()))
}

fn parse_country(code: &str) -> Option<CountryCode> {
    if !code.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    match code.len() {
        2 => CountryCode::for_alpha2_caseless(code).ok(),
        3 => CountryCode::for_alpha3_caseless(code).ok(),
        _ => None,
    }
}
