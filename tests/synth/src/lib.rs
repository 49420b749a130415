//! Deterministic synthetic demo data: `identifiers.csv` and `incidents.csv` for one jurisdiction.
//!
//! Output depends only on (jurisdiction, people, seed). A federation-wide pool of
//! [`shared_pool_size`] persons is derived from (seed, pool index) alone; a jurisdiction
//! holds pool person `i` iff [`holds_pool_person`] says so (about 30%), so two
//! jurisdictions generated with one seed overlap in a predictable set. Everyone else is a
//! local person derived from (seed, jurisdiction, index); a jurisdiction id naming one of
//! the generated countries (fr, de, nl, be, es, it) gets mostly locals from there.
//! Values are written in varied unnormalised spellings (chosen per jurisdiction), every
//! one accepted by [`fedq_crypto::identifier::normalise`].
//!
//! Collisions between different persons: passport, national id, email, IBAN and wallet
//! values have 10^9..10^48 possibilities per country, so they practically never collide.
//! Phones (about 3·10^9 mobile numbers in all) and names with birth dates are weak by nature:
//! at 100,000 people per jurisdiction a few of them coincide between jurisdictions,
//! as namesakes do in real data.

mod person;

use std::fs::File;
use std::path::PathBuf;

use anyhow::{bail, Context};
use chrono::{Duration, NaiveDate};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Zipf};

use self::person::{home_country, pick, Person};

pub use fedq_proto::demo::{CATEGORIES, SECTORS};
/// Share of the pool each jurisdiction holds, in per mille.
const POOL_SHARE_PER_MILLE: u64 = 300;
/// Largest loss written; matches the bound published in the node catalog.
const MAX_LOSS_EUR: f64 = 10_000_000.0;
/// Zipf exponent of incidents per unit: heavy enough that a few units report > 1000
/// incidents at 100,000 people, which is what contribution bounding must cope with.
const UNIT_ZIPF_EXPONENT: f64 = 1.2;
/// Domain tags, so that streams for different purposes never share a seed.
const TAG_POOL: u64 = 1;
const TAG_LOCAL: u64 = 2;
const TAG_HOLDS: u64 = 3;
const TAG_ORDER: u64 = 4;
const TAG_SPELLING: u64 = 5;
const TAG_INCIDENTS: u64 = 6;

/// What to generate and where.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Jurisdiction id (lowercase ASCII letters, digits, `-`, `_`); prefixes record ids.
    pub jurisdiction: String,
    /// Persons in this jurisdiction (shared pool members included).
    pub people: usize,
    /// Federation-wide seed: jurisdictions generated with one seed share pool persons.
    pub seed: u64,
    /// Directory to create and write the two CSV files into.
    pub out: PathBuf,
}

/// What was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenerateSummary {
    /// Rows of `identifiers.csv`.
    pub identifiers: usize,
    /// Rows of `incidents.csv`.
    pub incidents: usize,
    /// Persons taken from the federation-wide shared pool.
    pub shared_people: usize,
}

/// Size of the federation-wide pool for a jurisdiction of `people` persons; pools of
/// different sizes are prefixes of one another.
pub fn shared_pool_size(people: usize) -> usize {
    people / 20
}

/// Whether `jurisdiction` holds pool person `index` under `seed`.
pub fn holds_pool_person(seed: u64, jurisdiction: &str, index: usize) -> bool {
    mix(&[seed, TAG_HOLDS, fnv1a(jurisdiction), index as u64]) % 1000 < POOL_SHARE_PER_MILLE
}

/// Writes `identifiers.csv` and `incidents.csv` for one jurisdiction into `opts.out`.
pub fn generate(opts: &GenerateOptions) -> anyhow::Result<GenerateSummary> {
    let j = opts.jurisdiction.as_str();
    if j.is_empty()
        || !j
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        bail!("jurisdiction id must be lowercase ascii letters, digits, '-' or '_'");
    }
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let mut sources: Vec<(bool, u64)> = (0..shared_pool_size(opts.people))
        .filter(|&i| holds_pool_person(opts.seed, j, i))
        .map(|i| (true, i as u64))
        .collect();
    let shared_people = sources.len();
    sources.extend((0..(opts.people - shared_people) as u64).map(|i| (false, i)));
    sources.shuffle(&mut rng(&[opts.seed, TAG_ORDER, fnv1a(j)]));

    let mut spell = rng(&[opts.seed, TAG_SPELLING, fnv1a(j)]);
    let mut ids = csv_writer(opts, "identifiers.csv")?;
    ids.write_record(["kind", "value", "record_id"])?;
    let mut identifiers = 0;
    for (n, &(shared, i)) in sources.iter().enumerate() {
        let person = if shared {
            Person::derive(&[opts.seed, TAG_POOL, i], None)?
        } else {
            Person::derive(&[opts.seed, TAG_LOCAL, fnv1a(j), i], home_country(j))?
        };
        let record_id = format!("{j}-p{n:07}");
        for (kind, value) in person.spellings(&mut spell) {
            ids.write_record([kind, value.as_str(), record_id.as_str()])?;
            identifiers += 1;
        }
    }
    ids.flush()?;
    let incidents = write_incidents(opts, j, opts.people / 2)?;
    Ok(GenerateSummary {
        identifiers,
        incidents,
        shared_people,
    })
}

/// Writes only `incidents.csv`, with `rows` rows, for `opts.jurisdiction`: the
/// statistics benchmark needs far more incidents than people.
pub fn generate_incidents(opts: &GenerateOptions, rows: usize) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    write_incidents(opts, &opts.jurisdiction, rows)?;
    Ok(opts.out.join("incidents.csv"))
}

fn write_incidents(opts: &GenerateOptions, j: &str, count: usize) -> anyhow::Result<usize> {
    let mut r = rng(&[opts.seed, TAG_INCIDENTS, fnv1a(j)]);
    let units = (opts.people / 100).max(1);
    let mut unit_ids: Vec<usize> = (0..units).collect();
    unit_ids.shuffle(&mut r);
    let unit_sectors: Vec<&str> = (0..units).map(|_| pick(&mut r, SECTORS)).collect();
    let rank = Zipf::new(units as u64, UNIT_ZIPF_EXPONENT).context("zipf parameters")?;
    // Median loss about 5,000 EUR with a long tail into the millions.
    let loss = LogNormal::new(8.5, 2.0).context("log-normal parameters")?;
    let start = NaiveDate::from_ymd_opt(2024, 1, 1).context("start date")?;
    let end = NaiveDate::from_ymd_opt(2026, 10, 31).context("end date")?;
    let days = (end - start).num_days();
    let mut w = csv_writer(opts, "incidents.csv")?;
    w.write_record([
        "incident_id",
        "unit_id",
        "date",
        "category",
        "sector",
        "loss_eur",
        "severity",
    ])?;
    for n in 0..count {
        let unit = (rank.sample(&mut r) as usize).clamp(1, units) - 1;
        let date = start + Duration::days(r.gen_range(0..=days));
        let loss_eur = Distribution::<f64>::sample(&loss, &mut r)
            .round()
            .clamp(0.0, MAX_LOSS_EUR) as u64;
        // Severity follows the loss's order of magnitude, with some disagreement.
        let magnitude = (loss_eur as f64 + 1.0).log10().round() as i64;
        let severity = (magnitude - 1 + r.gen_range(-1..=1)).clamp(1, 5);
        w.write_record([
            format!("{j}-i{n:07}"),
            format!("{j}-u{:05}", unit_ids[unit]),
            date.format("%Y-%m-%d").to_string(),
            pick(&mut r, CATEGORIES).to_string(),
            unit_sectors[unit].to_string(),
            loss_eur.to_string(),
            severity.to_string(),
        ])?;
    }
    w.flush()?;
    Ok(count)
}

fn csv_writer(opts: &GenerateOptions, name: &str) -> anyhow::Result<csv::Writer<File>> {
    let path = opts.out.join(name);
    csv::WriterBuilder::new()
        .buffer_capacity(1 << 16)
        .from_path(&path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// A ChaCha stream keyed by `parts`; the only source of randomness here.
fn rng(parts: &[u64]) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(parts))
}

/// Folds words through the SplitMix64 finaliser: stable across platforms and Rust
/// versions, unlike `std`'s hashers.
fn mix(parts: &[u64]) -> u64 {
    parts.iter().fold(0x243f_6a88_85a3_08d3, |h, &p| {
        let mut z = (h ^ p).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// FNV-1a, to turn a jurisdiction id into a word for [`mix`].
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use fedq_crypto::identifier::{normalise, IdentifierKind};

    use super::*;

    /// Kinds whose values practically never collide between different persons.
    const STRONG: [&str; 5] = ["passport", "national_id", "email", "iban", "crypto_wallet"];

    type Forms = BTreeMap<(String, String), String>;

    fn run(dir: &Path, j: &str, people: usize, seed: u64) -> anyhow::Result<GenerateSummary> {
        generate(&GenerateOptions {
            jurisdiction: j.to_string(),
            people,
            seed,
            out: dir.join(j),
        })
    }

    /// Rows, and (kind, normal form) -> record id; fails on any row that does not normalise.
    fn normal_forms(dir: &Path) -> anyhow::Result<(usize, Forms)> {
        let (mut rows, mut forms) = (0, Forms::new());
        for row in csv::Reader::from_path(dir.join("identifiers.csv"))?.records() {
            let row = row?;
            let kind: IdentifierKind = row[0].parse()?;
            let normal =
                normalise(kind, &row[1]).with_context(|| format!("{kind} {:?}", &row[1]))?;
            forms.insert(
                (row[0].to_string(), normal.as_str().to_string()),
                row[2].to_string(),
            );
            rows += 1;
        }
        Ok((rows, forms))
    }

    #[test]
    fn same_inputs_give_identical_files() -> anyhow::Result<()> {
        let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
        assert_eq!(run(a.path(), "fr", 2000, 7)?, run(b.path(), "fr", 2000, 7)?);
        for file in ["identifiers.csv", "incidents.csv"] {
            assert_eq!(
                std::fs::read(a.path().join("fr").join(file))?,
                std::fs::read(b.path().join("fr").join(file))?
            );
        }
        run(b.path(), "fr", 2000, 8)?;
        assert_ne!(
            std::fs::read(a.path().join("fr/identifiers.csv"))?,
            std::fs::read(b.path().join("fr/identifiers.csv"))?
        );
        Ok(())
    }

    #[test]
    fn every_identifier_normalises_and_every_kind_occurs() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let summary = run(dir.path(), "de", 3000, 11)?;
        let (rows, forms) = normal_forms(&dir.path().join("de"))?;
        assert_eq!(rows, summary.identifiers);
        let kinds: BTreeSet<&str> = forms.keys().map(|(kind, _)| kind.as_str()).collect();
        assert_eq!(kinds.len(), IdentifierKind::ALL.len());
        let records: BTreeSet<&String> = forms.values().collect();
        assert_eq!(records.len(), 3000);
        Ok(())
    }

    #[test]
    fn overlap_is_exactly_the_predicted_pool_members() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (people, seed) = (4000, 42);
        let summary = run(dir.path(), "aa", people, seed)?;
        run(dir.path(), "bb", people, seed)?;
        let (_, a) = normal_forms(&dir.path().join("aa"))?;
        let (_, b) = normal_forms(&dir.path().join("bb"))?;
        let mut predicted = BTreeSet::new();
        let mut spell = rng(&[0]);
        for i in 0..shared_pool_size(people) {
            let (in_a, in_b) = (
                holds_pool_person(seed, "aa", i),
                holds_pool_person(seed, "bb", i),
            );
            for (kind, raw) in
                Person::derive(&[seed, TAG_POOL, i as u64], None)?.spellings(&mut spell)
            {
                let key = (
                    kind.to_string(),
                    normalise(kind.parse()?, &raw)?.as_str().to_string(),
                );
                // Every kind of a held person, name_dob included, meets whatever spelling
                // the jurisdiction chose; only strong kinds can be checked for absence.
                assert!(a.contains_key(&key) == in_a || !in_a && !STRONG.contains(&kind));
                assert!(b.contains_key(&key) == in_b || !in_b && !STRONG.contains(&kind));
                if in_a && in_b && STRONG.contains(&kind) {
                    predicted.insert(a[&key].clone());
                }
            }
        }
        let shared: BTreeSet<String> = a
            .iter()
            .filter(|(key, _)| STRONG.contains(&key.0.as_str()) && b.contains_key(*key))
            .map(|(_, r)| r.clone())
            .collect();
        assert!(!predicted.is_empty());
        assert_eq!(shared, predicted);
        let held = (0..shared_pool_size(people))
            .filter(|&i| holds_pool_person(seed, "aa", i))
            .count();
        assert_eq!(summary.shared_people, held);
        Ok(())
    }

    #[test]
    fn incidents_stay_in_their_domains_with_heavy_units() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let summary = run(dir.path(), "it", 20_000, 3)?;
        assert_eq!(summary.incidents, 10_000);
        let mut per_unit: BTreeMap<String, usize> = BTreeMap::new();
        for row in csv::Reader::from_path(dir.path().join("it/incidents.csv"))?.records() {
            let row = row?;
            *per_unit.entry(row[1].to_string()).or_default() += 1;
            assert!(("2024-01-01"..="2026-10-31").contains(&&row[2]));
            assert!(CATEGORIES.contains(&&row[3]) && SECTORS.contains(&&row[4]));
            assert!(row[5].parse::<u64>()? <= 10_000_000);
            assert!((1..=5).contains(&row[6].parse::<u8>()?));
        }
        assert!(per_unit.values().any(|&n| n > 1000));
        Ok(())
    }

    #[test]
    fn bad_jurisdiction_is_refused() {
        let dir = std::env::temp_dir();
        assert!(run(&dir, "FR", 10, 1).is_err());
        assert!(run(&dir, "../x", 10, 1).is_err());
    }
}
