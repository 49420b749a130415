//! Tests of the access policy: one per refusal rule, admissions, the rate
//! limiter, disclosure, validation and the documented TOML example.

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use fedq_crypto::IdentifierKind::{self, Email, Iban, NameDob, Phone};

use super::*;

#[derive(serde::Deserialize)]
struct File {
    #[serde(default)]
    policy: PolicySection,
}

/// The ```toml example of the module docs, so the docs cannot go stale.
fn documented_example() -> Result<String> {
    let source = include_str!("mod.rs");
    let mut lines = source
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .skip_while(|l| *l != "```toml")
        .skip(1);
    let mut out = String::new();
    for line in lines.by_ref() {
        if line == "```" {
            return Ok(out);
        }
        out.push_str(line);
        out.push('\n');
    }
    bail!("no ```toml block in the module docs")
}

fn parse(text: &str) -> Result<Policy> {
    let file: File = toml::from_str(text)?;
    Policy::from_section(file.policy).map_err(|p| anyhow!("invalid policy: {p:#?}"))
}

fn example() -> Result<Policy> {
    parse(&documented_example()?)
}

fn with_limit(limit: u32) -> Result<Policy> {
    let text = documented_example()?.replace(
        "per_hour_per_kind = 200",
        &format!("per_hour_per_kind = {limit}"),
    );
    parse(&text)
}

fn at(y: i32, m: u32, d: u32, h: u32) -> Result<DateTime<Utc>> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .context("bad test time")
}

fn now() -> Result<DateTime<Utc>> {
    at(2026, 6, 1, 12)
}

fn lookup<'a>(kinds: &'a [IdentifierKind]) -> PolicyRequest<'a> {
    PolicyRequest {
        requester: "alice",
        agency: "fr-police",
        role: Role::Investigator,
        purpose: "fraud investigation",
        action: Action::Lookup { kinds },
    }
}

fn stats(table: &str) -> PolicyRequest<'_> {
    PolicyRequest {
        requester: "bob",
        agency: "de-bka",
        role: Role::Researcher,
        purpose: "research",
        action: Action::Stats { table },
    }
}

fn refused_by(result: Result<(), Refusal>) -> Result<Refusal> {
    match result {
        Ok(()) => bail!("expected a refusal"),
        Err(r) => Ok(r),
    }
}

#[test]
fn documented_example_parses_and_admits() -> Result<()> {
    let policy = example()?;
    assert_eq!(
        policy.valid_until(),
        chrono::NaiveDate::from_ymd_opt(2027, 12, 31)
    );
    assert_eq!(policy.lookups_per_hour_per_kind(), 200);
    assert_eq!(policy.tables().collect::<Vec<_>>(), ["incidents"]);
    policy.admit(&lookup(&[Phone, Email, Iban]), now()?)?;
    policy.admit(&stats("incidents"), now()?)?;
    let disclose = PolicyRequest {
        purpose: "Counter-Terrorism",
        action: Action::Disclose,
        ..lookup(&[])
    };
    policy.admit(&disclose, now()?)?;
    Ok(())
}

#[test]
fn bare_toml_date_and_defaults() -> Result<()> {
    let policy = parse(
        "[policy]\nvalid_until = 2027-01-31\nagencies = [\"a\"]\nroles = [\"investigator\"]\n\
         purposes.lookup = [\"x\"]\nlookup.kinds = [\"phone\"]\n",
    )?;
    assert_eq!(
        policy.valid_until(),
        chrono::NaiveDate::from_ymd_opt(2027, 1, 31)
    );
    assert_eq!(
        policy.lookups_per_hour_per_kind(),
        DEFAULT_LOOKUPS_PER_HOUR_PER_KIND
    );
    Ok(())
}

#[test]
fn no_policy_section_admits_nothing() -> Result<()> {
    for policy in [parse("")?, Policy::default()] {
        let refusal = refused_by(policy.admit(&lookup(&[Phone]), now()?))?;
        assert_eq!(refusal.rule, "agency");
        assert!(!refusal.exhausted);
        assert!(!policy.may_disclose("fr-police", Role::Investigator, "x"));
        assert!(policy.report_domains().agencies.is_empty());
    }
    Ok(())
}

#[test]
fn sunset_refuses_after_valid_until() -> Result<()> {
    let policy = example()?;
    let last_minute = at(2027, 12, 31, 23)? + TimeDelta::minutes(59);
    policy.admit(&lookup(&[Phone]), last_minute)?;
    let refusal = refused_by(policy.admit(&lookup(&[Phone]), at(2028, 1, 1, 0)?))?;
    assert_eq!(refusal.rule, "sunset");
    assert!(refusal.reason.contains("2027-12-31"), "{}", refusal.reason);
    Ok(())
}

#[test]
fn agency_not_listed_is_refused() -> Result<()> {
    let request = PolicyRequest {
        agency: "xx-unknown",
        ..lookup(&[Phone])
    };
    let refusal = refused_by(example()?.admit(&request, now()?))?;
    assert_eq!(refusal.rule, "agency");
    assert!(!refusal.reason.contains("xx-unknown"));
    Ok(())
}

#[test]
fn role_not_listed_and_auditors_are_refused() -> Result<()> {
    let text = documented_example()?.replace(
        "roles = [\"investigator\", \"researcher\"]",
        "roles = [\"investigator\"]",
    );
    let refusal = refused_by(parse(&text)?.admit(&stats("incidents"), now()?))?;
    assert_eq!(refusal.rule, "role");
    let policy = example()?;
    for action in [
        Action::Lookup { kinds: &[Phone] },
        Action::Stats { table: "incidents" },
        Action::Disclose,
    ] {
        let request = PolicyRequest {
            role: Role::Auditor,
            action,
            ..lookup(&[])
        };
        let refusal = refused_by(policy.admit(&request, now()?))?;
        assert_eq!(refusal.rule, "role");
        assert!(refusal.reason.contains("auditors"));
    }
    Ok(())
}

#[test]
fn purpose_is_per_kind_of_query_and_normalised() -> Result<()> {
    let policy = example()?;
    let request = PolicyRequest {
        purpose: "  Fraud \t Investigation ",
        ..lookup(&[Phone])
    };
    policy.admit(&request, now()?)?;
    // "research" is a stats purpose, not a lookup purpose.
    let request = PolicyRequest {
        purpose: "research",
        ..lookup(&[Phone])
    };
    let refusal = refused_by(policy.admit(&request, now()?))?;
    assert_eq!(refusal.rule, "purpose");
    assert!(!refusal.reason.contains("research"));
    let request = PolicyRequest {
        purpose: "fraud investigation",
        ..stats("incidents")
    };
    assert_eq!(refused_by(policy.admit(&request, now()?))?.rule, "purpose");
    Ok(())
}

#[test]
fn kind_not_listed_is_refused() -> Result<()> {
    let text = documented_example()?.replace(
        "kinds = [\"phone\", \"email\", \"iban\", \"passport\", \"national_id\", \"crypto_wallet\", \"name_dob\"]",
        "kinds = [\"phone\", \"email\"]",
    );
    let policy = parse(&text)?;
    let refusal = refused_by(policy.admit(&lookup(&[Phone, NameDob]), now()?))?;
    assert_eq!(refusal.rule, "kind");
    assert!(refusal.reason.contains("name_dob"), "{}", refusal.reason);
    // The refused batch consumed nothing: a full batch of phones still passes.
    let phones = [Phone; 100];
    policy.admit(&lookup(&phones), now()?)?;
    Ok(())
}

#[test]
fn table_not_listed_is_refused() -> Result<()> {
    let refusal = refused_by(example()?.admit(&stats("persons"), now()?))?;
    assert_eq!(refusal.rule, "table");
    Ok(())
}

#[test]
fn rate_limit_refuses_the_item_past_the_limit_within_an_hour() -> Result<()> {
    let policy = with_limit(3)?;
    let start = now()?;
    for minute in [0, 20, 40] {
        policy.admit(&lookup(&[Phone]), start + TimeDelta::minutes(minute))?;
    }
    let refusal = refused_by(policy.admit(&lookup(&[Phone]), start + TimeDelta::minutes(59)))?;
    assert_eq!(refusal.rule, "rate_limit");
    assert!(refusal.exhausted);
    assert!(refusal.reason.contains("phone"), "{}", refusal.reason);
    // Other kinds and other requesters have their own cells.
    policy.admit(&lookup(&[Email]), start + TimeDelta::minutes(59))?;
    let other = PolicyRequest {
        requester: "carol",
        ..lookup(&[Phone])
    };
    policy.admit(&other, start + TimeDelta::minutes(59))?;
    // The first item leaves the rolling hour.
    policy.admit(&lookup(&[Phone]), start + TimeDelta::minutes(60))?;
    Ok(())
}

#[test]
fn refused_batch_consumes_nothing() -> Result<()> {
    let policy = with_limit(3)?;
    let t = now()?;
    policy.admit(&lookup(&[Phone, Phone]), t)?;
    let refusal = refused_by(policy.admit(&lookup(&[Email, Email, Phone, Phone]), t))?;
    assert_eq!(refusal.rule, "rate_limit");
    policy.admit(&lookup(&[Email, Email, Email]), t)?;
    policy.admit(&lookup(&[Phone]), t)?;
    assert_eq!(
        refused_by(policy.admit(&lookup(&[Phone]), t))?.rule,
        "rate_limit"
    );
    // A batch larger than the limit is refused outright, even when fresh.
    let fresh = PolicyRequest {
        requester: "dave",
        ..lookup(&[Iban; 4])
    };
    assert_eq!(refused_by(policy.admit(&fresh, t))?.rule, "rate_limit");
    policy.admit(
        &PolicyRequest {
            requester: "dave",
            ..lookup(&[Iban; 3])
        },
        t,
    )?;
    Ok(())
}

#[test]
fn disclosure_allowed_and_withheld() -> Result<()> {
    let policy = example()?;
    assert!(policy.may_disclose("fr-police", Role::Investigator, "counter-terrorism"));
    assert!(!policy.may_disclose("de-bka", Role::Investigator, "counter-terrorism"));
    assert!(!policy.may_disclose("fr-police", Role::Researcher, "counter-terrorism"));
    assert!(!policy.may_disclose("fr-police", Role::Investigator, "fraud investigation"));
    assert!(!policy.may_disclose("fr-police", Role::Auditor, "counter-terrorism"));
    let withheld = PolicyRequest {
        agency: "de-bka",
        purpose: "counter-terrorism",
        action: Action::Disclose,
        ..lookup(&[])
    };
    let refusal = refused_by(policy.admit(&withheld, now()?))?;
    assert_eq!(refusal.rule, "disclosure");
    let text = documented_example()?;
    let without = &text[..text.find("# Staged").context("example changed")?];
    assert!(!parse(without)?.may_disclose("fr-police", Role::Investigator, "counter-terrorism"));
    Ok(())
}

#[test]
fn from_section_reports_every_problem_with_its_key_path() -> Result<()> {
    let text = r#"
        [policy]
        valid_until = "31/12/2027"
        agencies = ["fr-police", "fr-police"]
        roles = ["investigator", "auditor", "admin"]
        [policy.purposes]
        lookup = ["fraud", " "]
        [policy.lookup]
        kinds = ["phone", "fax"]
        per_hour_per_kind = 0
        [policy.disclosure]
        agencies = ["de-bka"]
        purposes = ["fraud"]
    "#;
    let file: File = toml::from_str(text)?;
    let problems = match Policy::from_section(file.policy) {
        Ok(_) => bail!("expected problems"),
        Err(p) => p,
    };
    let expected = [
        "policy.valid_until: not a date (yyyy-mm-dd)",
        "policy.agencies[1]: duplicate of policy.agencies[0]",
        "policy.roles[1]: auditors never query data",
        "policy.roles[2]: unknown role \"admin\"",
        "policy.purposes.lookup[1]: empty purpose",
        "policy.lookup.kinds[1]: unknown identifier kind",
        "policy.lookup.per_hour_per_kind: must be between 1 and",
        "policy.disclosure.agencies[0]: \"de-bka\" is not in policy.agencies",
        "policy.disclosure.roles: empty, so the disclosure rule admits nobody",
    ];
    for want in expected {
        assert!(
            problems.iter().any(|p| p.starts_with(want)),
            "missing {want:?} in {problems:#?}"
        );
    }
    assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    Ok(())
}

#[test]
fn cross_checks_and_missing_sunset_are_reported() -> Result<()> {
    let file: File = toml::from_str(
        "[policy]\nagencies = [\"a\"]\nroles = [\"researcher\"]\n\
         purposes.stats = [\"research\"]\nlookup.kinds = [\"phone\"]\n",
    )?;
    let problems = match Policy::from_section(file.policy) {
        Ok(_) => bail!("expected problems"),
        Err(p) => p,
    };
    for want in [
        "policy.valid_until: required",
        "policy.stats.tables: empty while policy.purposes.stats admits stats queries",
        "policy.purposes.lookup: empty while policy.lookup.kinds is not",
    ] {
        assert!(
            problems.iter().any(|p| p.starts_with(want)),
            "missing {want:?} in {problems:#?}"
        );
    }
    Ok(())
}

#[test]
fn unknown_keys_are_rejected() {
    let result: Result<File, _> = toml::from_str("[policy.lookup]\nper_hour = 5\n");
    assert!(result.is_err());
}

#[test]
fn report_domains_are_the_policy_values() -> Result<()> {
    let domains = example()?.report_domains();
    assert_eq!(domains.agencies, ["de-bka", "fr-police"]);
    assert_eq!(
        domains.purposes,
        ["counter-terrorism", "fraud investigation", "research"]
    );
    assert_eq!(
        domains.actions,
        ["lookup", "stats", "disclose", "oprf", "deconflict", "watch"]
    );
    Ok(())
}

#[test]
fn role_names_round_trip() -> Result<()> {
    for role in Role::ALL {
        assert_eq!(role.to_string().parse::<Role>()?, role);
        assert_eq!(serde_json::to_string(&role)?, format!("\"{role}\""));
    }
    assert_eq!(" Researcher ".parse::<Role>()?, Role::Researcher);
    assert!("admin".parse::<Role>().is_err());
    Ok(())
}

#[test]
fn by_default_investigators_look_up_and_researchers_ask_statistics() -> Result<()> {
    let policy = example()?;
    let investigator_stats = PolicyRequest {
        role: Role::Investigator,
        agency: "fr-police",
        ..stats("incidents")
    };
    let refusal = refused_by(policy.admit(&investigator_stats, now()?))?;
    assert_eq!(refusal.rule, "role");
    assert_eq!(
        refusal.reason,
        "role investigator may not stats at this node (policy.actions.stats: researcher)"
    );
    let researcher_lookup = PolicyRequest {
        role: Role::Researcher,
        ..lookup(&[Phone])
    };
    assert_eq!(
        refused_by(policy.admit(&researcher_lookup, now()?))?.rule,
        "role"
    );
    let researcher_oprf = PolicyRequest {
        action: Action::Oprf { kinds: &[Phone] },
        ..researcher_lookup
    };
    assert_eq!(
        refused_by(policy.admit(&researcher_oprf, now()?))?.rule,
        "role",
        "the OPRF step belongs to a lookup"
    );

    // An operator may let a role do more, never an auditor anything.
    let wider = documented_example()?.replace(
        "stats = [\"researcher\"]\n",
        "stats = [\"researcher\", \"investigator\"]\n",
    );
    parse(&wider)?.admit(&investigator_stats, now()?)?;
    let auditors = documented_example()?.replace(
        "lookup = [\"investigator\"]\n",
        "lookup = [\"investigator\", \"auditor\"]\n",
    );
    let problems = format!("{:#}", parse(&auditors).err().context("auditor refused")?);
    assert!(problems.contains("policy.actions.lookup[1]"), "{problems}");
    Ok(())
}

#[test]
fn the_audit_detail_of_a_batch_reads_back_as_written() {
    let detail = kinds_detail("items", &[Phone, Email, Phone], true);
    assert_eq!(detail, "items=3 kinds=email,phone disclose=asked");
    assert_eq!(counted_kinds(&detail), Some((3, vec![Email, Phone])));
}
