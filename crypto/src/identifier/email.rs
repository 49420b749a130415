//! Email addresses: one lowercase spelling per address.

use email_address::{EmailAddress, Options};
use unicode_normalization::UnicodeNormalization;

use super::{IdentifierError, IdentifierKind};

fn invalid(reason: &'static str) -> IdentifierError {
    IdentifierError::invalid(IdentifierKind::Email, reason)
}

/// Normalises a trimmed, non-empty email address to lowercase.
///
/// The whole address is lowercased, local part included: RFC 5321 lets a server treat
/// the local part case-sensitively, but no large provider does, and a missed match
/// costs more here than the rare false one. Quoted local parts, comments, display names
/// and domain literals are refused because they give one mailbox many spellings.
pub(super) fn normalise(raw: &str) -> Result<String, IdentifierError> {
    if raw
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '(' | ')' | '<' | '>' | '[' | ']' | '\\'))
    {
        return Err(invalid(
            "email address contains quoting, comments or a display name",
        ));
    }
    // NFC first so that precomposed and decomposed accents in internationalised
    // addresses meet, and again after lowercasing, which can decompose.
    let lower: String = raw.nfc().collect::<String>().to_lowercase().nfc().collect();
    let options = Options::default()
        .with_required_tld()
        .without_display_text()
        .without_domain_literal();
    EmailAddress::parse_with_options(&lower, options)
        .map_err(|_| invalid("email address is not well formed"))?;
    Ok(lower)
}
