//! "Did you mean …?": a near miss among a fixed list of valid names (kinds,
//! roles, catalog tables and columns), and the list itself, so that a
//! refusal says what would have been accepted.

/// The valid name closest to `given`, if it is close enough to be a typo.
pub fn near<'a>(given: &str, valid: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let given = given.trim().to_ascii_lowercase();
    valid
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(&given, candidate), candidate))
        // clap's threshold for subcommand suggestions.
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// `; did you mean "x"? (one of: a, b, c)` to append to an "unknown …" message.
pub fn hint<'a>(given: &str, valid: impl IntoIterator<Item = &'a str> + Clone) -> String {
    let list: Vec<&str> = valid.clone().into_iter().collect();
    match near(given, valid) {
        Some(guess) => format!("; did you mean {guess:?}? (one of: {})", list.join(", ")),
        None => format!(" (one of: {})", list.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_finds_its_name_and_nonsense_finds_none() {
        let kinds = ["passport", "phone", "email"];
        assert_eq!(near("phnoe", kinds), Some("phone"));
        assert_eq!(near("Emial", kinds), Some("email"));
        assert_eq!(near("zzz", kinds), None);
        assert_eq!(
            hint("pasport", kinds),
            "; did you mean \"passport\"? (one of: passport, phone, email)"
        );
        assert_eq!(hint("zzz", kinds), " (one of: passport, phone, email)");
    }
}
