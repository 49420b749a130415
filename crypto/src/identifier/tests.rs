//! Tests of identifier normalisation: fixed examples per kind and property tests.

use proptest::prelude::*;

use super::IdentifierKind::*;
use super::*;

type TestResult = Result<(), IdentifierError>;

fn nf(kind: IdentifierKind, raw: &str) -> Result<String, IdentifierError> {
    normalise(kind, raw).map(|n| n.as_str().to_string())
}

/// (kind, normal form, spellings that must all give that normal form).
#[rustfmt::skip]
const SAME: &[(IdentifierKind, &str, &[&str])] = &[
    (Phone, "+33612345678", &["+33 6 12 34 56 78", "0033612345678", "+33612345678", "+33 (0)6 12-34-56-78", "+33.6.12.34.56.78", "00 33 6 12 34 56 78"]),
    (Phone, "+4915123456789", &["+49 151 23456789", "+49 (0)151 2345 6789", "0049-151-23456789"]),
    (Phone, "+14155552671", &["+1 (415) 555-2671", "001 415 555 2671"]),
    (Passport, "FR:12AB34567", &["FR:12AB34567", "fr/12ab34567", "FRA 12 AB 34567", "fra-12-AB-345.67", "FR : 12AB34567", "Fr - 12ab34567"]),
    (NationalId, "FR:12AB34567", &["FR:12AB34567", "fra/12 ab 345 67"]),
    (Passport, "DE:C01X00T47", &["DEU:C01X00T47", "de c01x00t47"]),
    (Email, "john.doe@example.com", &["John.Doe@Example.COM", " john.doe@example.com ", "JOHN.DOE@EXAMPLE.COM"]),
    (Email, "zoë@exämple.de", &["Zoë@exämple.de", "ZOË@EXÄMPLE.DE"]),
    (Email, "zoë@example.de", &["Zoe\u{308}@example.de"]),
    (Iban, "DE44500105175407324931", &["DE44 5001 0517 5407 3249 31", "de44500105175407324931", "IBAN DE44 5001 0517 5407 3249 31", "iban: de44 5001051754073249 31"]),
    (Iban, "NL91ABNA0417164300", &["nl91 abna 0417 1643 00", "NL91ABNA0417164300"]),
    // EIP-55 reference vector: checksummed, all lower and all upper spellings.
    (CryptoWallet, "eth:0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", &["eth:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "Ethereum: 0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "ETH:0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED"]),
    (CryptoWallet, "btc:1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", &["bitcoin:1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "BTC: 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"]),
    (CryptoWallet, "btc:3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", &["btc:3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"]),
    (CryptoWallet, "btc:bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", &["BTC:BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "btc:bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"]),
    (NameDob, "dm:HNS MLR|1980-01-02", &["Hans Müller;1980-01-02", "Hans Mueller;02/01/1980", "HANS MULLER|2.1.1980", "Müller, Hans ; 02.01.1980"]),
    (NameDob, "dm:JN PR TPNT|1975-07-14", &["Jean-Pierre Dupont;1975-07-14", "DUPONT Jean Pierre;14.07.1975", "dupont, jean-pierre | 14/07/1975"]),
    (NameDob, "dm:AL MHMT|1990-03-04", &["Mohammed Ali;1990-03-04", "Muhammad Ali;04/03/1990", "Mohamed ALI|1990-03-04"]),
    (NameDob, "dm:ALFR HS|1990-03-04", &["José Álvarez;1990-03-04", "Jose ALVAREZ;1990-03-04"]),
];

/// (kind, raw, the reason it is refused with).
#[rustfmt::skip]
const REFUSED: &[(IdentifierKind, &str, &str)] = &[
    (Phone, "06 12 34 56 78", "phone number has no country code"),
    (Phone, "+0 612345678", "phone number has no country code"),
    (Phone, "+33 6 12 34 ext 5", "phone number contains characters other than digits and separators"),
    (Phone, "+1234567890123456", "phone number is too long"),
    (Phone, "+33 6 12", "phone number is not valid for its country"),
    (Phone, "+33 7 00 00 00 00", "phone number is not valid for its country"),
    (Phone, "+999 123456789", "phone number has an unknown country code"),
    (Passport, "12AB34567", "document has no issuing country before a separator"),
    (Passport, "XX:12AB34567", "document has an unknown issuing country"),
    (Passport, "FRANCE:12AB34567", "document has an unknown issuing country"),
    (Passport, "FR:1234", "document number must have 5 to 20 letters or digits"),
    (Passport, "FR:123456789012345678901", "document number must have 5 to 20 letters or digits"),
    (Passport, "FR:12AB_34567", "document number contains characters other than letters and digits"),
    (NationalId, "FR:É2345", "document number contains characters other than letters and digits"),
    (Email, "john.doe", "email address is not well formed"),
    (Email, "john@localhost", "email address is not well formed"),
    (Email, "a@@b.com", "email address is not well formed"),
    (Email, "John <john@example.com>", "email address contains quoting, comments or a display name"),
    (Email, "\"j d\"@example.com", "email address contains quoting, comments or a display name"),
    (Email, "john@[127.0.0.1]", "email address contains quoting, comments or a display name"),
    (Iban, "DE45 5001 0517 5407 3249 31", "iban checksum does not match"),
    (Iban, "DE44-5001-0517-5407-3249-31", "iban contains characters other than letters and digits"),
    (Iban, "D", "iban does not follow the iban format"),
    (Iban, "DE44DE44DE44DE44DE44DE44DE44DE44DE44", "iban is longer than 34 characters"),
    // Valid checksum, but a German BBAN must have 18 digits.
    (Iban, "DE88 5001 0517 5407 3249 3", "iban account part does not follow its country format"),
    (CryptoWallet, "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "wallet address has no chain prefix"),
    (CryptoWallet, "doge:DH5yaieqoZN36fDVciNyRueRGvGLR3mr7L", "wallet chain is not supported"),
    (CryptoWallet, "eth:0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD", "ethereum address checksum does not match"),
    (CryptoWallet, "eth:5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", "ethereum address does not start with 0x"),
    (CryptoWallet, "eth:0x5aaeb6053f3e94c9b9a09f33669435e7ef1bea", "ethereum address does not have 40 hex digits"),
    (CryptoWallet, "btc:1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", "bitcoin address checksum does not match"),
    (CryptoWallet, "btc:1A1zP1eP5QGefi2DMPTfTL5SLmv7Divf0a", "bitcoin address is not valid base58check"),
    (CryptoWallet, "btc:bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", "bitcoin segwit address is not valid"),
    (CryptoWallet, "btc:bc1qW508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "bitcoin segwit address is not valid"),
    // Testnet P2PKH, version byte 0x6f.
    (CryptoWallet, "btc:mfWyW5fc9NUj75YAnFgoRLrjxgLDn2MMth", "bitcoin address is not a mainnet p2pkh or p2sh address"),
    (NameDob, "Jean Dupont 1980-01-02", "name and date of birth are not separated by ';' or '|'"),
    (NameDob, "Dupont;1980-01-02", "name has fewer than two words"),
    (NameDob, "Jean Dupont;31/02/1980", "date of birth is not a calendar date"),
    (NameDob, "Jean Dupont;1899-12-31", "date of birth is before 1900"),
    (NameDob, "Jean Dupont;2999-01-01", "date of birth is in the future"),
    (NameDob, "Jean Dupont;02-01-1980", "date of birth is not yyyy-mm-dd, dd/mm/yyyy or dd.mm.yyyy"),
    (NameDob, "Jean Dupont;yesterday", "date of birth is not yyyy-mm-dd, dd/mm/yyyy or dd.mm.yyyy"),
    (NameDob, "dm:JN|1980-01-02", "phonetic name form is malformed"),
    (NameDob, "dm:TPNT JN|1980-01-02", "phonetic name form is malformed"),
    (NameDob, "dm:JN TPNT|02/01/1980", "phonetic name form is malformed"),
];

#[test]
fn spelling_variants_meet_one_normal_form() -> TestResult {
    for (kind, want, spellings) in SAME {
        for raw in *spellings {
            assert_eq!(nf(*kind, raw)?, *want, "{kind} {raw:?}");
        }
        assert_eq!(
            nf(*kind, want)?,
            *want,
            "{kind} normal form is not idempotent"
        );
    }
    Ok(())
}

#[test]
fn invalid_identifiers_are_refused_with_their_reason() {
    for (kind, raw, reason) in REFUSED {
        let got = normalise(*kind, raw);
        let want = IdentifierError::Invalid {
            kind: *kind,
            reason,
        };
        assert_eq!(got, Err(want.clone()), "{kind} {raw:?}");
        // Errors travel to logs and other jurisdictions: never the value, fixed style.
        let message = want.to_string();
        assert!(
            !message.contains(raw) && message == message.to_lowercase() && !message.ends_with('.')
        );
    }
}

#[test]
fn name_variants_that_do_not_meet() -> TestResult {
    // Double Metaphone keeps the German "sch" (X) apart from the English "s" and "th" (0).
    assert_eq!(
        nf(NameDob, "Anna Schmidt;1980-01-02")?,
        "dm:AN XMT|1980-01-02"
    );
    assert_eq!(
        nf(NameDob, "Anna Smith;1980-01-02")?,
        "dm:AN SM0|1980-01-02"
    );
    Ok(())
}

#[test]
fn kind_names_and_codes_round_trip() -> TestResult {
    for kind in IdentifierKind::ALL {
        assert_eq!(kind.as_str().parse::<IdentifierKind>()?, kind);
        assert_eq!(IdentifierKind::from_code(kind.code()), Some(kind));
        assert_eq!(kind.to_string(), kind.as_str());
    }
    let codes: Vec<u8> = IdentifierKind::ALL.iter().map(|k| k.code()).collect();
    assert_eq!(codes, [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!("Crypto-Wallet".parse::<IdentifierKind>()?, CryptoWallet);
    assert_eq!(" NAME_DOB ".parse::<IdentifierKind>()?, NameDob);
    assert_eq!(IdentifierKind::from_code(0), None);
    assert_eq!(IdentifierKind::from_code(8), None);
    let unknown = |s: &str| s.parse::<IdentifierKind>().err();
    assert_eq!(
        unknown("ssn"),
        Some(IdentifierError::UnknownKind("ssn".into()))
    );
    // Something that looks like an identifier is not echoed.
    assert_eq!(
        unknown("+33612345678"),
        Some(IdentifierError::UnknownKind("<redacted>".into()))
    );
    Ok(())
}

#[test]
fn common_limits_apply_to_every_kind() {
    for kind in IdentifierKind::ALL {
        assert_eq!(normalise(kind, ""), Err(IdentifierError::Empty));
        assert_eq!(normalise(kind, " \t\n"), Err(IdentifierError::Empty));
        assert_eq!(
            normalise(kind, &"1".repeat(257)),
            Err(IdentifierError::TooLong)
        );
    }
}

#[test]
fn normal_form_debug_is_redacted() -> TestResult {
    let n = normalise(Phone, "+33612345678")?;
    assert_eq!(format!("{n:?}"), "NormalForm(..)");
    assert_eq!(n.as_bytes(), b"+33612345678");
    Ok(())
}

#[test]
fn wallet_encoders_match_reference_vectors() -> TestResult {
    let hex_20 = |s: &str| -> [u8; 20] {
        let mut out = [0_u8; 20];
        hex::decode_to_slice(s, &mut out).expect("test vector is 20 hex bytes");
        out
    };
    let eth = encode_eth_eip55(&hex_20("5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"));
    assert_eq!(eth, "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
    let btc = encode_btc_p2pkh(&hex_20("62e907b15cbf27d5425399ebf6f0fb50ebb88f18"));
    assert_eq!(btc, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa");
    assert_eq!(
        nf(CryptoWallet, &format!("btc:{btc}"))?,
        format!("btc:{btc}")
    );
    Ok(())
}

/// Inserts a space before character `i` where `gaps[i]` is set.
fn spaced(s: &str, gaps: &[bool]) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && gaps.get(i).copied().unwrap_or(false) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Uppercases character `i` where `upper[i]` is set, lowercases the others.
fn mixed_case(s: &str, upper: &[bool]) -> String {
    let case = |(i, c): (usize, char)| match upper.get(i) {
        Some(true) => c.to_ascii_uppercase(),
        _ => c.to_ascii_lowercase(),
    };
    s.chars().enumerate().map(case).collect()
}

const FR_MOBILE: &str = "+33612345678";
#[rustfmt::skip]
const IBANS: [&str; 4] = ["DE44500105175407324931", "NL91ABNA0417164300", "FR1420041010050500013M02606", "BE68539007547034"];

fn any_kind() -> impl Strategy<Value = IdentifierKind> {
    prop::sample::select(IdentifierKind::ALL.to_vec())
}

fn flags(n: usize) -> impl Strategy<Value = Vec<bool>> {
    prop::collection::vec(any::<bool>(), n)
}

/// Raw inputs of every kind in varied spellings; all valid except that a name may
/// fold to words Double Metaphone drops entirely (e.g. "h").
fn raw_input() -> impl Strategy<Value = (IdentifierKind, String)> {
    let name = "[A-Za-zéüçøß]{1,12}";
    prop_oneof![
        // French mobile ranges in which every number is valid.
        ("(6[0-24-8]|7[3-9])", "[0-9]{7}").prop_map(|(a, b)| (Phone, format!("+33 {a}{b}"))),
        ("[a-z0-9]{1,10}", "[a-z]{2,8}").prop_map(|(l, d)| (Email, format!("{l}@{d}.EU"))),
        prop::sample::select(IBANS.to_vec()).prop_map(|i| (Iban, i.to_lowercase())),
        ("(fr|FRA|de|nld)", "[-:/ ]", "[a-zA-Z0-9]{5,12}")
            .prop_map(|(c, s, n)| (Passport, format!("{c}{s}{n}"))),
        "[0-9a-f]{40}".prop_map(|h| (CryptoWallet, format!("eth:0x{h}"))),
        (name, name, 1900..2020_i32, 1..=12_u32, 1..=28_u32)
            .prop_map(|(a, b, y, m, d)| (NameDob, format!("{a} {b};{d:02}/{m:02}/{y}"))),
    ]
}

proptest! {
    #[test]
    fn normalise_is_idempotent((kind, raw) in raw_input()) {
        if let Ok(first) = normalise(kind, &raw) {
            prop_assert_eq!(normalise(kind, first.as_str()), Ok(first));
        } else {
            prop_assert_eq!(kind, NameDob);
        }
    }

    #[test]
    fn phone_spacing_does_not_matter(gaps in flags(12), double_zero in any::<bool>()) {
        let body = spaced(&FR_MOBILE[1..], &gaps);
        let raw = if double_zero { format!("00{body}") } else { format!("+{body}") };
        prop_assert_eq!(nf(Phone, &raw), Ok(FR_MOBILE.to_string()));
    }

    #[test]
    fn iban_spacing_and_case_do_not_matter(
        iban in prop::sample::select(IBANS.to_vec()), gaps in flags(34), upper in flags(34),
    ) {
        let raw = spaced(&mixed_case(iban, &upper), &gaps);
        prop_assert_eq!(nf(Iban, &raw), Ok(iban.to_string()));
    }

    #[test]
    fn email_case_does_not_matter(local in "[a-z0-9_]{0,10}", domain in "[a-z]{1,10}", upper in flags(32)) {
        let address = format!("a{local}@{domain}.org");
        let raw = format!(" {} ", mixed_case(&address, &upper));
        prop_assert_eq!(nf(Email, &raw), Ok(address));
    }

    #[test]
    fn document_spelling_does_not_matter(
        number in "[A-Z0-9]{5,12}", gaps in flags(12), upper in flags(16),
        sep in "[-:/ ]", alpha3 in any::<bool>(),
    ) {
        let country = mixed_case(if alpha3 { "nld" } else { "nl" }, &upper);
        let raw = format!("{country}{sep}{}", spaced(&mixed_case(&number, &upper), &gaps));
        prop_assert_eq!(nf(NationalId, &raw), Ok(format!("NL:{number}")));
    }

    #[test]
    fn garbage_never_panics(kind in any_kind(), raw in "\\PC{0,300}") {
        let _ = normalise(kind, &raw);
    }

    #[test]
    fn near_valid_garbage_never_panics_and_stays_idempotent(
        kind in any_kind(), raw in "(\\+|00|eth:0x|btc:bc1|btc:1|dm:|FR:|DE44)[ -~]{0,60}",
    ) {
        if let Ok(first) = normalise(kind, &raw) {
            prop_assert_eq!(normalise(kind, first.as_str()), Ok(first));
        }
    }
}
