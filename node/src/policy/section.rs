//! The raw `[policy]` TOML shape and its validation into a [`Policy`]; every
//! problem is reported at once, prefixed with its key path.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Display;
use std::str::FromStr;

use chrono::NaiveDate;
use fedq_crypto::IdentifierKind;
use serde::Deserialize;

use super::rate::{LookupLimiter, QueryLimiter};
use super::{normalise_purpose, Disclosure, Policy, Role};

/// Lookups per hour per (requester, identifier kind) when
/// `policy.lookup.per_hour_per_kind` is unset: an investigator working a case
/// checks tens of identifiers an hour, while enumerating even a 10^4-number
/// phone block at this rate takes over four days.
pub const DEFAULT_LOOKUPS_PER_HOUR_PER_KIND: u32 = 100;
/// Highest accepted `policy.lookup.per_hour_per_kind`: the limiter keeps up to
/// one entry per admitted batch in the last hour, so this bounds its memory.
pub const MAX_LOOKUPS_PER_HOUR_PER_KIND: u32 = 100_000;
/// Default statistics queries per requester per rolling hour.
pub const DEFAULT_STATS_PER_HOUR: u32 = 60;
/// Largest `per_hour` accepted for statistics.
pub const MAX_STATS_PER_HOUR: u32 = 10_000;
/// Longest watch when `policy.watch.max_days` is unset: a sunset of 90 days.
pub const DEFAULT_WATCH_DAYS: u32 = 90;
/// Longest `policy.watch.max_days` accepted.
const MAX_WATCH_DAYS: u32 = 366;
/// Live watches per requester when `policy.watch.max_live_per_requester` is
/// unset: each costs the node an evaluation at every import.
pub const DEFAULT_WATCHES_PER_REQUESTER: u32 = 100;
/// Highest `policy.watch.max_live_per_requester` accepted.
const MAX_WATCHES_PER_REQUESTER: u32 = 100_000;
/// Longest accepted agency, purpose or table name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// The `[policy]` section as written; see the [module docs](super) for the
/// meaning of each key. Everything defaults to empty, which admits nothing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySection {
    /// Last day (UTC, inclusive) the policy admits anything: a TOML date or a
    /// `"yyyy-mm-dd"` string. Required once `agencies` admits anyone.
    pub valid_until: Option<toml::Value>,
    /// Agencies admitted (exact ids, as they appear on the caller's credentials).
    pub agencies: Vec<String>,
    /// Roles admitted: `investigator`, `researcher` (`auditor` is refused here).
    pub roles: Vec<String>,
    /// Purposes admitted, per kind of query.
    pub purposes: PurposesSection,
    /// Identifier lookups: kinds admitted and their rate limit.
    pub lookup: LookupPolicySection,
    /// Statistics queries: tables admitted.
    pub stats: StatsPolicySection,
    /// Staged disclosure of this node's own hit bit.
    pub disclosure: DisclosureSection,
    /// Which roles may do which action (defaults: investigators look up,
    /// researchers ask statistics).
    pub actions: ActionsSection,
    /// Standing lookups (watches): lifetime and number per requester.
    pub watch: WatchPolicySection,
}

/// `[policy.watch]`: watches are admitted like lookups (roles, purposes,
/// kinds), for at most `max_days` (never past `valid_until`), and a
/// requester holds at most `max_live_per_requester` at once.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchPolicySection {
    /// Longest watch, in days (default 90).
    pub max_days: Option<i64>,
    /// Live watches per requester (default 100).
    pub max_live_per_requester: Option<i64>,
}

/// `[policy.actions]`: the roles each action admits, on top of
/// `policy.roles`. Missing keys take the defaults: `lookup` (and the OPRF
/// step and disclosures that belong to a lookup) admits investigators,
/// `stats` admits researchers. Auditors are never admitted to any.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionsSection {
    /// Roles that may look identifiers up (default: investigator).
    pub lookup: Option<Vec<String>>,
    /// Roles that may ask statistics (default: researcher).
    pub stats: Option<Vec<String>>,
    /// Roles that may take part in deconfliction (default: investigator).
    pub deconflict: Option<Vec<String>>,
}

/// `[policy.purposes]`: purposes admitted per kind of query.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PurposesSection {
    /// Purposes admitted for identifier lookups (and disclosures).
    pub lookup: Vec<String>,
    /// Purposes admitted for statistics queries.
    pub stats: Vec<String>,
    /// Purposes admitted for deconfliction (partial evaluations of the
    /// federation's deconfliction key; empty admits none).
    pub deconflict: Vec<String>,
}

/// `[policy.lookup]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LookupPolicySection {
    /// Identifier kinds admitted, by their config names (`phone`, `iban`, ...).
    pub kinds: Vec<String>,
    /// Items per requester per identifier kind per rolling hour.
    pub per_hour_per_kind: Option<i64>,
}

/// `[policy.stats]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatsPolicySection {
    /// Tables of the `[stats]` catalog that may be queried.
    pub tables: Vec<String>,
    /// Statistics queries per requester per rolling hour: each one costs a
    /// scan and two durable writes, so they are metered like lookups.
    pub per_hour: Option<i64>,
}

/// `[policy.disclosure]`: who may learn this node's own hit bit. A request
/// must match all three lists; empty (the default) discloses to nobody.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DisclosureSection {
    /// Agencies, a subset of `policy.agencies`.
    pub agencies: Vec<String>,
    /// Roles, a subset of `policy.roles`.
    pub roles: Vec<String>,
    /// Purposes, a subset of `policy.purposes.lookup`.
    pub purposes: Vec<String>,
}

/// Collects "key.path: message" lines.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn push(&mut self, path: impl Display, message: impl Display) {
        self.0.push(format!("{path}: {message}"));
    }
}

pub(super) fn validate(section: PolicySection) -> Result<Policy, Vec<String>> {
    let mut problems = Problems::default();
    let p = &mut problems;
    let valid_until = section
        .valid_until
        .as_ref()
        .and_then(|v| parse_date(p, "policy.valid_until", v));
    let agencies = names(p, "policy.agencies", "agency", &section.agencies, trim);
    let roles = roles(p, "policy.roles", &section.roles);
    let lookup_purposes = names(
        p,
        "policy.purposes.lookup",
        "purpose",
        &section.purposes.lookup,
        normalise_purpose,
    );
    let stats_purposes = names(
        p,
        "policy.purposes.stats",
        "purpose",
        &section.purposes.stats,
        normalise_purpose,
    );
    let deconflict_purposes = names(
        p,
        "policy.purposes.deconflict",
        "purpose",
        &section.purposes.deconflict,
        normalise_purpose,
    );
    let kinds = kinds(p, &section.lookup.kinds);
    let per_hour = per_hour(p, section.lookup.per_hour_per_kind);
    let stats_per_hour = bounded(
        p,
        "policy.stats.per_hour",
        section.stats.per_hour,
        (DEFAULT_STATS_PER_HOUR, MAX_STATS_PER_HOUR),
    );
    let tables = names(
        p,
        "policy.stats.tables",
        "table",
        &section.stats.tables,
        trim,
    );
    let disclosure = disclosure(p, &section.disclosure, &agencies, &roles, &lookup_purposes);
    let mut action_roles = |key: &str, values: &Option<Vec<String>>, default: Role| match values {
        Some(values) => self::roles(p, key, values),
        None => BTreeSet::from([default]),
    };
    let lookup_roles = action_roles(
        "policy.actions.lookup",
        &section.actions.lookup,
        Role::Investigator,
    );
    let stats_roles = action_roles(
        "policy.actions.stats",
        &section.actions.stats,
        Role::Researcher,
    );
    let deconflict_roles = action_roles(
        "policy.actions.deconflict",
        &section.actions.deconflict,
        Role::Investigator,
    );

    if !agencies.is_empty() && section.valid_until.is_none() {
        p.push(
            "policy.valid_until",
            "required (yyyy-mm-dd) once policy.agencies admits anyone",
        );
    }
    if !agencies.is_empty() && section.roles.is_empty() {
        p.push("policy.roles", "empty, so policy.agencies admits nobody");
    }
    pair(
        p,
        "lookup",
        !lookup_purposes.is_empty(),
        ("policy.lookup.kinds", !section.lookup.kinds.is_empty()),
    );
    pair(
        p,
        "stats",
        !stats_purposes.is_empty(),
        ("policy.stats.tables", !section.stats.tables.is_empty()),
    );

    let watch = super::WatchLimits {
        max_days: bounded(
            p,
            "policy.watch.max_days",
            section.watch.max_days,
            (DEFAULT_WATCH_DAYS, MAX_WATCH_DAYS),
        ),
        max_live_per_requester: bounded(
            p,
            "policy.watch.max_live_per_requester",
            section.watch.max_live_per_requester,
            (DEFAULT_WATCHES_PER_REQUESTER, MAX_WATCHES_PER_REQUESTER),
        ),
    };
    if !problems.0.is_empty() {
        return Err(problems.0);
    }
    Ok(Policy {
        valid_until,
        agencies,
        roles,
        lookup_roles,
        stats_roles,
        deconflict_roles,
        lookup_purposes,
        stats_purposes,
        deconflict_purposes,
        kinds,
        tables,
        disclosure,
        limiter: LookupLimiter::new(per_hour),
        oprf_limiter: LookupLimiter::new(per_hour),
        stats_limiter: QueryLimiter::new(stats_per_hour),
        watch,
    })
}

/// A query kind needs both purposes and targets (kinds, tables): one without
/// the other admits nothing and is most likely a mistake.
fn pair(p: &mut Problems, action: &str, has_purposes: bool, (key, has_targets): (&str, bool)) {
    if has_purposes && !has_targets {
        p.push(
            key,
            format!("empty while policy.purposes.{action} admits {action} queries"),
        );
    }
    if has_targets && !has_purposes {
        p.push(
            format_args!("policy.purposes.{action}"),
            format!("empty while {key} is not, so no {action} query is admitted"),
        );
    }
}

fn parse_date(p: &mut Problems, key: &str, value: &toml::Value) -> Option<NaiveDate> {
    let text = match value {
        toml::Value::String(s) => s.trim().to_owned(),
        toml::Value::Datetime(d) if d.time.is_none() && d.offset.is_none() => d.to_string(),
        _ => String::new(),
    };
    let parsed = NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok();
    if parsed.is_none() {
        p.push(key, "not a date (yyyy-mm-dd)");
    }
    parsed
}

fn trim(s: &str) -> String {
    s.trim().to_owned()
}

/// Validates a list of names: non-empty, bounded, printable, no duplicates.
fn names(
    p: &mut Problems,
    key: &str,
    what: &str,
    values: &[String],
    normalise: fn(&str) -> String,
) -> BTreeSet<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, raw) in values.iter().enumerate() {
        let value = normalise(raw);
        let at = format!("{key}[{i}]");
        if value.is_empty() {
            p.push(at, format_args!("empty {what}"));
        } else if value.len() > MAX_NAME_BYTES {
            p.push(
                at,
                format_args!("{what} longer than {MAX_NAME_BYTES} bytes"),
            );
        } else if value.chars().any(char::is_control) {
            p.push(at, format_args!("{what} contains control characters"));
        } else if let Some(first) = seen.get(&value) {
            p.push(at, format_args!("duplicate of {key}[{first}]"));
        } else {
            seen.insert(value, i);
        }
    }
    seen.into_keys().collect()
}

fn roles(p: &mut Problems, key: &str, values: &[String]) -> BTreeSet<Role> {
    let mut out = BTreeSet::new();
    for (i, raw) in values.iter().enumerate() {
        let at = format!("{key}[{i}]");
        match Role::from_str(raw) {
            Ok(Role::Auditor) => p.push(
                at,
                "auditors never query data (lookup, stats, disclosure); remove \"auditor\"",
            ),
            Ok(role) if !out.insert(role) => p.push(at, format_args!("duplicate role {role}")),
            Ok(_) => {}
            Err(e) => p.push(at, e),
        }
    }
    out
}

fn kinds(p: &mut Problems, values: &[String]) -> BTreeSet<IdentifierKind> {
    let mut out = BTreeSet::new();
    for (i, raw) in values.iter().enumerate() {
        let at = format!("policy.lookup.kinds[{i}]");
        match IdentifierKind::from_str(raw) {
            Ok(kind) if !out.insert(kind) => p.push(at, format_args!("duplicate kind {kind}")),
            Ok(_) => {}
            Err(e) => p.push(at, e),
        }
    }
    out
}

fn per_hour(p: &mut Problems, value: Option<i64>) -> u32 {
    let Some(value) = value else {
        return DEFAULT_LOOKUPS_PER_HOUR_PER_KIND;
    };
    match u32::try_from(value) {
        Ok(n) if (1..=MAX_LOOKUPS_PER_HOUR_PER_KIND).contains(&n) => n,
        _ => {
            p.push(
                "policy.lookup.per_hour_per_kind",
                format_args!(
                    "must be between 1 and {MAX_LOOKUPS_PER_HOUR_PER_KIND} \
                     (to admit no lookups, leave policy.lookup.kinds empty)"
                ),
            );
            DEFAULT_LOOKUPS_PER_HOUR_PER_KIND
        }
    }
}

/// An optional count between 1 and `max`, `default` when absent.
fn bounded(p: &mut Problems, key: &str, value: Option<i64>, (default, max): (u32, u32)) -> u32 {
    let Some(value) = value else {
        return default;
    };
    match u32::try_from(value) {
        Ok(n) if (1..=max).contains(&n) => n,
        _ => {
            p.push(key, format_args!("must be between 1 and {max}"));
            default
        }
    }
}

fn disclosure(
    p: &mut Problems,
    section: &DisclosureSection,
    agencies: &BTreeSet<String>,
    roles: &BTreeSet<Role>,
    lookup_purposes: &BTreeSet<String>,
) -> Disclosure {
    let d_agencies = names(
        p,
        "policy.disclosure.agencies",
        "agency",
        &section.agencies,
        trim,
    );
    let d_roles = self::roles(p, "policy.disclosure.roles", &section.roles);
    let d_purposes = names(
        p,
        "policy.disclosure.purposes",
        "purpose",
        &section.purposes,
        normalise_purpose,
    );
    subset(
        p,
        "policy.disclosure.agencies",
        &section.agencies,
        trim,
        agencies,
        "policy.agencies",
    );
    let admitted_roles: BTreeSet<String> = roles.iter().map(Role::to_string).collect();
    subset(
        p,
        "policy.disclosure.roles",
        &section.roles,
        role_name,
        &admitted_roles,
        "policy.roles",
    );
    subset(
        p,
        "policy.disclosure.purposes",
        &section.purposes,
        normalise_purpose,
        lookup_purposes,
        "policy.purposes.lookup",
    );
    let lists = [
        ("agencies", section.agencies.is_empty()),
        ("roles", section.roles.is_empty()),
        ("purposes", section.purposes.is_empty()),
    ];
    if lists.iter().any(|(_, empty)| !empty) {
        for (name, _) in lists.iter().filter(|(_, empty)| *empty) {
            p.push(
                format_args!("policy.disclosure.{name}"),
                "empty, so the disclosure rule admits nobody; fill it or empty \
                 the whole [policy.disclosure] section",
            );
        }
    }
    Disclosure {
        agencies: d_agencies,
        roles: d_roles,
        purposes: d_purposes,
    }
}

/// A data role's name, or "" for auditors and unknown roles (reported elsewhere).
fn role_name(raw: &str) -> String {
    match Role::from_str(raw) {
        Ok(Role::Auditor) | Err(_) => String::new(),
        Ok(role) => role.to_string(),
    }
}

/// Reports each entry of `values` (once normalised) missing from `admitted`;
/// entries that normalise to "" are invalid and were reported already.
fn subset(
    p: &mut Problems,
    key: &str,
    values: &[String],
    normalise: fn(&str) -> String,
    admitted: &BTreeSet<String>,
    admitted_key: &str,
) {
    for (i, raw) in values.iter().enumerate() {
        let value = normalise(raw);
        if !value.is_empty() && !admitted.contains(&value) {
            p.push(
                format_args!("{key}[{i}]"),
                format_args!("{value:?} is not in {admitted_key}"),
            );
        }
    }
}
