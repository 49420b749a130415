//! Name plus date of birth: a phonetic, order-free name key and an ISO date.
//!
//! The name is folded (NFKD, combining marks dropped, transliterated to ASCII,
//! lowercased), split into words, and every word replaced by its Double Metaphone
//! primary code (at most 4 characters); the codes are sorted so that word order does
//! not matter. Pairs that meet this way (checked in the tests): "Müller" / "Mueller" /
//! "MULLER" (`MLR`), "Jean-Pierre Dupont" / "DUPONT Jean Pierre", "Mohammed" /
//! "Muhammad" / "Mohamed" (`MHMT`), "José Álvarez" / "Jose ALVAREZ". Pairs that do
//! not meet, and are not forced to: "Schmidt" (`XMT`) / "Smith" (`SM0`), since Double
//! Metaphone keeps the German "sch" apart from "s"; only the primary code is used,
//! so names that meet only through an alternate code (e.g. "Schmidt" / "Smit") stay
//! apart too, which keeps false matches down.
//!
//! Why the normal form starts with `dm:`: Double Metaphone is not idempotent (the code
//! of a code is not the code), so a normal form cannot be fed back through the raw
//! path. The prefix marks input that is already a normal form; it is checked for shape
//! instead of being encoded again. A raw name never starts with `dm:` in practice, and
//! if one does it is refused, never silently mis-encoded.

use chrono::{Datelike, NaiveDate, Utc};
use rphonetic::{DoubleMetaphone, Encoder};
use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::{IdentifierError, IdentifierKind};

/// Marks a normal form; see the module documentation.
const NORMAL_PREFIX: &str = "dm:";
/// Double Metaphone's default and standard code length.
const MAX_CODE_LEN: usize = 4;
/// Earliest accepted year of birth; older dates are typos, not people.
const MIN_YEAR: i32 = 1900;
/// A single word (a first name alone) matches far too many people.
const MIN_WORDS: usize = 2;

fn invalid(reason: &'static str) -> IdentifierError {
    IdentifierError::invalid(IdentifierKind::NameDob, reason)
}

/// Normalises a trimmed, non-empty `<name>;<date>` / `<name>|<date>`, or checks a
/// `dm:` normal form.
pub(super) fn normalise(raw: &str) -> Result<String, IdentifierError> {
    if let Some(normal) = raw.strip_prefix(NORMAL_PREFIX) {
        return check_normal_form(normal);
    }
    let (name, date) = raw
        .split_once([';', '|'])
        .ok_or_else(|| invalid("name and date of birth are not separated by ';' or '|'"))?;
    let date = parse_date(date.trim())?;
    let codes = name_codes(name)?;
    Ok(format_normal(&codes, date))
}

fn format_normal(codes: &[String], date: NaiveDate) -> String {
    format!(
        "{NORMAL_PREFIX}{}|{}",
        codes.join(" "),
        date.format("%Y-%m-%d")
    )
}

/// Folds, splits and phonetically encodes a name; returns the sorted codes.
fn name_codes(name: &str) -> Result<Vec<String>, IdentifierError> {
    let stripped: String = name.nfkd().filter(|c| !is_combining_mark(*c)).collect();
    // deunicode maps what NFKD leaves (ß, Ø, Cyrillic, CJK, ...) to ASCII, so that the
    // encoder, which slices by byte, only ever sees ASCII letters.
    let ascii = deunicode::deunicode(&stripped).to_ascii_lowercase();
    let encoder = DoubleMetaphone::new(Some(MAX_CODE_LEN));
    let mut codes: Vec<String> = ascii
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter(|word| !word.is_empty())
        .map(|word| encoder.encode(word))
        // Some words have no consonant sound Double Metaphone keeps (e.g. "h").
        .filter(|code| !code.is_empty())
        .collect();
    if codes.len() < MIN_WORDS {
        return Err(invalid("name has fewer than two words"));
    }
    codes.sort();
    Ok(codes)
}

/// Parses `YYYY-MM-DD`, `DD/MM/YYYY` or `DD.MM.YYYY` (day and month may have one
/// digit) and checks it is a plausible date of birth.
fn parse_date(text: &str) -> Result<NaiveDate, IdentifierError> {
    let not_a_date = || invalid("date of birth is not yyyy-mm-dd, dd/mm/yyyy or dd.mm.yyyy");
    let (sep, year_first) = if text.contains('-') {
        ('-', true)
    } else if text.contains('/') {
        ('/', false)
    } else if text.contains('.') {
        ('.', false)
    } else {
        return Err(not_a_date());
    };
    let parts: Vec<&str> = text.split(sep).collect();
    let [a, b, c] = parts.as_slice() else {
        return Err(not_a_date());
    };
    let (year, month, day) = if year_first { (a, b, c) } else { (c, b, a) };
    let digits_in = |s: &str, lens: std::ops::RangeInclusive<usize>| {
        lens.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits_in(year, 4..=4) || !digits_in(month, 1..=2) || !digits_in(day, 1..=2) {
        return Err(not_a_date());
    }
    let (Ok(year), Ok(month), Ok(day)) = (year.parse(), month.parse(), day.parse()) else {
        return Err(not_a_date());
    };
    let date = NaiveDate::from_ymd_opt(year, month, day)
        .ok_or_else(|| invalid("date of birth is not a calendar date"))?;
    check_date(date)?;
    Ok(date)
}

fn check_date(date: NaiveDate) -> Result<(), IdentifierError> {
    if date.year() < MIN_YEAR {
        return Err(invalid("date of birth is before 1900"));
    }
    if date > Utc::now().date_naive() {
        return Err(invalid("date of birth is in the future"));
    }
    Ok(())
}

/// Checks the part after `dm:` has exactly the shape `format_normal` produces.
fn check_normal_form(normal: &str) -> Result<String, IdentifierError> {
    let malformed = || invalid("phonetic name form is malformed");
    let (codes, date) = normal.split_once('|').ok_or_else(malformed)?;
    let codes: Vec<String> = codes.split(' ').map(str::to_string).collect();
    let well_formed = codes.len() >= MIN_WORDS
        && codes.iter().all(|code| {
            (1..=MAX_CODE_LEN).contains(&code.len())
                && code.bytes().all(|b| b.is_ascii_uppercase() || b == b'0')
        })
        && codes.windows(2).all(|pair| pair[0] <= pair[1]);
    let iso_date = date.len() == 10 && date.as_bytes()[4] == b'-' && date.as_bytes()[7] == b'-';
    if !well_formed || !iso_date {
        return Err(malformed());
    }
    let date = parse_date(date)?;
    Ok(format_normal(&codes, date))
}
