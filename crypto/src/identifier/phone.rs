//! Phone numbers: international input to E.164, validated against libphonenumber metadata.

use phonenumber::{Mode, ParseError};

use super::{IdentifierError, IdentifierKind};

/// E.164 allows at most 15 digits after the `+`.
const MAX_E164_DIGITS: usize = 15;

fn invalid(reason: &'static str) -> IdentifierError {
    IdentifierError::invalid(IdentifierKind::Phone, reason)
}

/// Normalises a trimmed, non-empty phone number to E.164.
///
/// Only `+digits` ever reaches the phonenumber parser: we strip the separators ourselves,
/// so that free text (extensions, letters, RFC 3966 parameters) is refused instead of
/// being interpreted in ways that would give one number several normal forms.
pub(super) fn normalise(raw: &str) -> Result<String, IdentifierError> {
    // "+33 (0)6 ..." writes the national trunk prefix for readers dialling at home; it is
    // not part of the international number.
    let without_trunk = raw.replace("(0)", "");
    let mut digits = String::with_capacity(without_trunk.len());
    let mut plus = false;
    for (i, c) in without_trunk.char_indices() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if i == 0 => plus = true,
            ' ' | '-' | '.' | '/' | '(' | ')' => {}
            c if c.is_whitespace() => {}
            _ => {
                return Err(invalid(
                    "phone number contains characters other than digits and separators",
                ))
            }
        }
    }
    let international = if plus {
        digits.as_str()
    } else if let Some(rest) = digits.strip_prefix("00") {
        // 00 is the international call prefix throughout Europe and most of the world.
        rest
    } else {
        return Err(invalid("phone number has no country code"));
    };
    if international.is_empty() || international.starts_with('0') {
        return Err(invalid("phone number has no country code"));
    }
    if international.len() > MAX_E164_DIGITS {
        return Err(invalid("phone number is too long"));
    }
    let number = phonenumber::parse(None, format!("+{international}")).map_err(|e| match e {
        ParseError::InvalidCountryCode => invalid("phone number has an unknown country code"),
        ParseError::TooShortNsn | ParseError::TooShortAfterIdd | ParseError::TooLong => {
            invalid("phone number has the wrong length")
        }
        _ => invalid("phone number cannot be parsed"),
    })?;
    if !number.is_valid() {
        return Err(invalid("phone number is not valid for its country"));
    }
    Ok(number.format().mode(Mode::E164).to_string())
}
