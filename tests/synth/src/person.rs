//! Synthetic persons of the generator: country formats, name lists, and the varied
//! unnormalised spellings their identifiers are written in.

use anyhow::Context;
use chrono::{Datelike, Duration, NaiveDate};
use fedq_crypto::identifier::{encode_btc_p2pkh, encode_eth_eip55};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::rng;

/// Share of a jurisdiction's local persons from its own country, when it names one.
const HOME_SHARE: f64 = 0.7;

/// The index in [`COUNTRIES`] of the country a jurisdiction id names, if any.
pub(super) fn home_country(jurisdiction: &str) -> Option<usize> {
    COUNTRIES
        .iter()
        .position(|c| c.alpha2.eq_ignore_ascii_case(jurisdiction))
}

/// One synthetic person's identifiers, in canonical (not yet spelled) form.
pub(super) struct Person {
    country: &'static Country,
    given: Vec<&'static str>,
    surname: &'static str,
    dob: NaiveDate,
    phone: Option<String>,
    email: Option<String>,
    iban: Option<String>,
    passport: Option<String>,
    national_id: Option<String>,
    wallet: Option<Wallet>,
}

enum Wallet {
    Btc([u8; 20]),
    Eth([u8; 20]),
}

impl Person {
    /// Derives a person from the stream keyed by `parts`. Locals of a jurisdiction named
    /// after one of our countries mostly live there; pool persons are spread evenly.
    pub(super) fn derive(parts: &[u64], home: Option<usize>) -> anyhow::Result<Person> {
        let mut r = rng(parts);
        let country = match home {
            Some(home) if r.gen_bool(HOME_SHARE) => &COUNTRIES[home],
            _ => &COUNTRIES[r.gen_range(0..COUNTRIES.len())],
        };
        let given_count = if r.gen_bool(0.3) { 2 } else { 1 };
        let given = (0..given_count)
            .map(|_| pick(&mut r, country.given))
            .collect::<Vec<_>>();
        let surname = pick(&mut r, country.surnames);
        let epoch = NaiveDate::from_ymd_opt(1940, 1, 1).context("dob epoch")?;
        let dob = epoch + Duration::days(r.gen_range(0..24_000));
        let prefix = pick(&mut r, country.mobile_prefixes);
        let phone = format!(
            "{}{prefix}{}",
            country.dial,
            digits(&mut r, country.mobile_len - prefix.len())
        );
        let separator = pick(&mut r, &[".", "_", ""]);
        let number: u32 = r.gen_range(10..100_000);
        let email = format!(
            "{}{separator}{}{number}@{}",
            ascii_word(given[0]),
            ascii_word(surname),
            pick(&mut r, EMAIL_DOMAINS)
        );
        let iban = iban_for(country, &mut r);
        let wallet = if r.gen_bool(0.5) {
            Wallet::Btc(r.gen())
        } else {
            Wallet::Eth(r.gen())
        };
        Ok(Person {
            phone: r.gen_bool(0.85).then_some(phone),
            email: r.gen_bool(0.8).then_some(email),
            iban: r.gen_bool(0.6).then_some(iban),
            passport: r.gen_bool(0.5).then(|| fill(&mut r, country.passport)),
            national_id: r.gen_bool(0.7).then(|| national_id_for(country, &mut r)),
            wallet: r.gen_bool(0.1).then_some(wallet),
            country,
            given,
            surname,
            dob,
        })
    }

    /// Every identifier of the person as (kind, raw spelling); `r` picks the spelling.
    pub(super) fn spellings(&self, r: &mut ChaCha8Rng) -> Vec<(&'static str, String)> {
        let mut out = vec![("name_dob", self.spell_name_dob(r))];
        let c = self.country;
        if let Some(p) = &self.phone {
            let national = &p[c.dial.len()..];
            // Nine-digit plans (FR, NL, BE, ES) are written "6 12 34 56 78", the longer
            // ones (DE, IT) "171 2345678"; only FR, DE, NL and BE write a trunk "(0)".
            let (head, tail) = national.split_at(if c.mobile_len == 9 { 1 } else { 3 });
            let trunk = if c.trunk_zero { "(0)" } else { "" };
            let spelled = match r.gen_range(0..4) {
                0 => format!("+{p}"),
                1 => format!("00{p}"),
                2 if c.mobile_len == 9 => format!("+{} {head} {}", c.dial, group(tail, 2, ' ')),
                2 => format!("+{} {head} {tail}", c.dial),
                _ => format!("+{} {trunk}{head}-{}", c.dial, group(tail, 3, '-')),
            };
            out.push(("phone", spelled));
        }
        if let Some(e) = &self.email {
            out.push((
                "email",
                if r.gen_bool(0.3) {
                    e.to_uppercase()
                } else {
                    e.clone()
                },
            ));
        }
        if let Some(iban) = &self.iban {
            let paper = group(iban, 4, ' ');
            out.push((
                "iban",
                match r.gen_range(0..4) {
                    0 => iban.clone(),
                    1 => paper,
                    2 => paper.to_lowercase(),
                    _ => format!("IBAN {paper}"),
                },
            ));
        }
        for (kind, number) in [
            ("passport", &self.passport),
            ("national_id", &self.national_id),
        ] {
            if let Some(number) = number {
                let code = if r.gen_bool(0.5) { c.alpha2 } else { c.alpha3 };
                let code = if r.gen_bool(0.3) {
                    code.to_lowercase()
                } else {
                    code.to_string()
                };
                let number = if r.gen_bool(0.3) {
                    group(number, 3, ' ')
                } else {
                    number.clone()
                };
                out.push((
                    kind,
                    format!("{code}{}{number}", pick(r, &[":", "/", "-", " "])),
                ));
            }
        }
        match &self.wallet {
            Some(Wallet::Btc(hash)) => out.push((
                "crypto_wallet",
                format!(
                    "{}:{}",
                    pick(r, &["btc", "bitcoin", "BTC"]),
                    encode_btc_p2pkh(hash)
                ),
            )),
            Some(Wallet::Eth(bytes)) => {
                let address = encode_eth_eip55(bytes);
                let address = if r.gen_bool(0.5) {
                    address.to_lowercase()
                } else {
                    address
                };
                out.push((
                    "crypto_wallet",
                    format!("{}:{address}", pick(r, &["eth", "ethereum", "ETH"])),
                ));
            }
            None => {}
        }
        out
    }

    fn spell_name_dob(&self, r: &mut ChaCha8Rng) -> String {
        let given = self.given.join(pick(r, &[" ", "-"]));
        let name = match r.gen_range(0..4) {
            0 => format!("{given} {}", self.surname),
            1 => format!("{} {given}", self.surname.to_uppercase()),
            2 => format!("{}, {given}", self.surname),
            _ => ascii_fold(&format!("{given} {}", self.surname)).to_uppercase(),
        };
        let (d, m, y) = (self.dob.day(), self.dob.month(), self.dob.year());
        let date = match r.gen_range(0..3) {
            0 => format!("{y}-{m:02}-{d:02}"),
            1 => format!("{d:02}/{m:02}/{y}"),
            _ => format!("{d:02}.{m:02}.{y}"),
        };
        format!("{name}{}{date}", pick(r, &[";", "|"]))
    }
}

/// Country-specific formats: mobile ranges whose every number libphonenumber accepts,
/// BBAN and document patterns (`D` digit, `A` letter, `X` letter or digit), names.
struct Country {
    alpha2: &'static str,
    alpha3: &'static str,
    dial: &'static str,
    mobile_prefixes: &'static [&'static str],
    mobile_len: usize,
    trunk_zero: bool,
    bban: &'static str,
    passport: &'static str,
    national_id: &'static str,
    given: &'static [&'static str],
    surnames: &'static [&'static str],
}

#[rustfmt::skip]
const COUNTRIES: [Country; 6] = [
    Country { alpha2: "FR", alpha3: "FRA", dial: "33", mobile_prefixes: &["60", "61", "62", "64", "65", "66", "67", "68", "73", "75", "76", "77", "78"], mobile_len: 9, trunk_zero: true, bban: "DDDDDDDDDDDDDDDDDDDDDDD", passport: "DDAADDDDD", national_id: "DDDDDDDDDDDD",
        given: &["Jean", "Marie", "Pierre", "Élodie", "François", "Hélène", "Luc", "Chloé", "Théo", "Anaïs", "Jérôme", "Camille"], surnames: &["Dupont", "Lefèvre", "Martin", "Bernard", "Moreau", "Girard", "Rousseau", "Lambert", "Fontaine", "Chevalier", "Leroy", "Roux", "Faure", "Mercier", "Boucher", "Lemaître", "Gauthier", "Perrin", "Clément", "Brunet"] },
    Country { alpha2: "DE", alpha3: "DEU", dial: "49", mobile_prefixes: &["151", "152", "157", "160", "162", "163", "170", "171", "172", "173", "175", "176", "177", "178", "179"], mobile_len: 11, trunk_zero: true, bban: "DDDDDDDDDDDDDDDDDD", passport: "CXXXXXXXX", national_id: "LXXXXXXXX",
        given: &["Jürgen", "Anna", "Günter", "Lukas", "Sophie", "Jörg", "Maximilian", "Lena", "Björn", "Käthe"], surnames: &["Müller", "Schröder", "Weiß", "Groß", "Schmidt", "Fischer", "Köhler", "Krüger", "Hoffmann", "Wagner", "Becker", "Schulz", "Zimmermann", "Braun", "Hartmann", "Lange", "Vogel", "Jäger", "Böhm", "Kühn"] },
    Country { alpha2: "NL", alpha3: "NLD", dial: "31", mobile_prefixes: &["61", "62", "63", "64", "65", "68"], mobile_len: 9, trunk_zero: true, bban: "AAAADDDDDDDDDD", passport: "AAXXXXXXD", national_id: "DDDDDDDDD",
        given: &["Daan", "Sanne", "Bram", "Fleur", "Sem", "Lotte", "Ruben", "Eva", "Thijs", "Noëlle"], surnames: &["de Vries", "van Dijk", "Jansen", "Bakker", "Visser", "Smit", "Meijer", "de Boer", "Mulder", "van den Berg", "de Graaf", "Dekker", "Brouwer", "van Leeuwen", "Hendriks", "Kok", "Verhoeven", "Bos", "Vos", "Peters"] },
    Country { alpha2: "BE", alpha3: "BEL", dial: "32", mobile_prefixes: &["46", "47", "48", "49"], mobile_len: 9, trunk_zero: true, bban: "DDDDDDDDDD", passport: "AADDDDDDD", national_id: "DDDDDDDDDDD",
        given: &["Lucas", "Emma", "Louis", "Léa", "Arthur", "Zoé", "Noah", "Olivia", "Jules", "Inès"], surnames: &["Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens", "Wouters", "Dubois", "Lambrechts", "Dupuis", "Desmet", "Vandenberghe", "Lejeune", "Renard", "Hermans", "Michiels", "Segers", "Thys"] },
    Country { alpha2: "ES", alpha3: "ESP", dial: "34", mobile_prefixes: &["60", "61", "62", "63", "64", "65", "66", "67", "68", "69"], mobile_len: 9, trunk_zero: false, bban: "DDDDDDDDDDDDDDDDDDDD", passport: "AAADDDDDD", national_id: "DDDDDDDD",
        given: &["José", "María", "Álvaro", "Lucía", "Íñigo", "Sofía", "Javier", "Begoña", "Raúl", "Nuria"], surnames: &["García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez", "Gómez", "Muñoz", "Díaz", "Romero", "Navarro", "Torres", "Domínguez", "Vázquez", "Ramos", "Gil", "Serrano", "Ortiz"] },
    Country { alpha2: "IT", alpha3: "ITA", dial: "39", mobile_prefixes: &["32", "33", "34", "35", "36", "37", "38", "39"], mobile_len: 10, trunk_zero: false, bban: "ADDDDDDDDDDDDDDDDDDDDDD", passport: "AADDDDDDD", national_id: "AAAAAADDADDADDDA",
        given: &["Giuseppe", "Giulia", "Niccolò", "Chiara", "Luca", "Francesca", "Matteo", "Martina", "Andrea", "Alessia"], surnames: &["Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi", "Moretti"] },
];

#[rustfmt::skip]
const EMAIL_DOMAINS: &[&str] = &["gmail.com", "outlook.com", "proton.me", "orange.fr", "web.de", "gmx.de", "ziggo.nl", "telenet.be", "hotmail.es", "libero.it"];

/// An IBAN in electronic format with ISO 13616 mod-97 check digits. Belgian BBANs end
/// with their own mod-97 check, which we compute too so that the accounts are realistic.
fn iban_for(c: &Country, r: &mut ChaCha8Rng) -> String {
    let mut bban = fill(r, c.bban);
    if c.alpha2 == "BE" {
        let account: u64 = bban.parse().unwrap_or(0);
        let check = match account % 97 {
            0 => 97,
            k => k,
        };
        bban = format!("{bban}{check:02}");
    }
    let remainder = format!("{bban}{}00", c.alpha2)
        .chars()
        .fold(0_u32, |acc, ch| match ch.to_digit(36) {
            Some(v) if v >= 10 => (acc * 100 + v) % 97,
            Some(v) => (acc * 10 + v) % 97,
            None => acc,
        });
    format!("{}{:02}{bban}", c.alpha2, 98 - remainder)
}

/// A national id; Spanish DNIs get their real check letter (number mod 23).
fn national_id_for(c: &Country, r: &mut ChaCha8Rng) -> String {
    let id = fill(r, c.national_id);
    if c.alpha2 != "ES" {
        return id;
    }
    let number: usize = id[..8].parse().unwrap_or(0);
    let letter = char::from(b"TRWAGMYFPDXBNJZSQVHLCKE"[number % 23]);
    format!("{}{letter}", &id[..8])
}

/// Fills a pattern: `D` digit, `A` letter, `X` letter or digit, anything else literal.
fn fill(r: &mut ChaCha8Rng, pattern: &str) -> String {
    const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    pattern
        .chars()
        .map(|p| match p {
            'D' => char::from(b'0' + r.gen_range(0..10)),
            'A' => char::from(LETTERS[r.gen_range(0..LETTERS.len())]),
            'X' => char::from(ALNUM[r.gen_range(0..ALNUM.len())]),
            other => other,
        })
        .collect()
}

fn digits(r: &mut ChaCha8Rng, n: usize) -> String {
    fill(r, &"D".repeat(n))
}

pub(super) fn pick<T: Copy>(r: &mut ChaCha8Rng, items: &[T]) -> T {
    items[r.gen_range(0..items.len())]
}

/// Inserts `sep` every `size` characters (ASCII input).
fn group(s: &str, size: usize, sep: char) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / size);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && i % size == 0 {
            out.push(sep);
        }
        out.push(ch);
    }
    out
}

/// Strips the accents our name lists use, as a person typing on a plain keyboard does;
/// normalisation folds accents the same way, so both spellings meet.
fn ascii_fold(s: &str) -> String {
    #[rustfmt::skip]
    const FOLD: [(&str, &str); 15] = [("áàâä", "a"), ("ÁÀ", "A"), ("éèêë", "e"), ("ÉÈ", "E"), ("íìîï", "i"), ("ÍÌ", "I"), ("óòôö", "o"), ("ÓÖ", "O"), ("úùûü", "u"), ("ÚÜ", "U"), ("ç", "c"), ("Ç", "C"), ("ñ", "n"), ("Ñ", "N"), ("ß", "ss")];
    s.chars()
        .map(|ch| {
            FOLD.iter()
                .find(|(from, _)| from.contains(ch))
                .map_or_else(|| ch.to_string(), |(_, to)| (*to).to_string())
        })
        .collect()
}

/// A name as an email local-part word: folded, lowercase, letters only.
fn ascii_word(s: &str) -> String {
    ascii_fold(s)
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}
