//! The node's access policy: who may ask what of this node, for which
//! purpose, how often, until when, and who may learn this node's own hit.
//!
//! The policy is the `[policy]` section of `node.toml`, read as a
//! [`PolicySection`] and validated by [`Policy::from_section`], which reports
//! every bad key at once, each prefixed with its key path. Privacy budget caps
//! are not here: they live in `[stats]` and are charged by the ledger.
//!
//! # Safe by default
//! Every list defaults to empty and an empty list admits nothing, so a node
//! without a `[policy]` section (`PolicySection::default()`, or
//! [`Policy::default`]) refuses every request, and discloses to nobody.
//!
//! # Rules, in the order [`Policy::admit`] applies them
//! 1. `sunset`: after `valid_until` (a UTC date, inclusive) nothing is admitted.
//!    It is required once `agencies` admits anyone: sharing agreements end.
//! 2. `agency`: the requester's agency must be listed in `agencies` (exact id).
//! 3. `role`: the role must be listed in `roles`, and in the action's list
//!    of `[policy.actions]` (by default investigators look up, and take the
//!    OPRF step and disclosures that belong to a lookup; researchers ask
//!    statistics). Auditors are always refused here: they check the audit
//!    log and the transparency report, never the data, so listing `auditor`
//!    is a config error rather than a silent no-op.
//! 4. `purpose`: the purpose must be listed for the kind of query
//!    (`purposes.lookup` for lookups and disclosures, `purposes.stats`).
//!    Purposes compare after [`normalise_purpose`] (trimmed, inner whitespace
//!    collapsed, lowercase).
//! 5. `kind` (lookups): every item's identifier kind must be in `lookup.kinds`;
//!    `table` (stats): the table must be in `stats.tables`;
//!    `disclosure` (disclosures): agency, role and purpose must each be in the
//!    `[policy.disclosure]` lists (see [`Policy::may_disclose`]).
//! 6. `rate_limit` (lookups): each item consumes one cell of its
//!    (requester, kind) limiter, at most `lookup.per_hour_per_kind` items in any
//!    rolling hour. The whole batch is checked before anything is consumed, under
//!    one lock: a refused batch consumes nothing and there is no race between
//!    concurrent batches. Admitted batches count even if they later fail (bad
//!    identifier, budget): the limit is on attempts. Counters are in memory;
//!    a starting node rebuilds them from the last hour of its audit log
//!    ([`Policy::restore_counters`]), and a reloaded policy takes them over,
//!    so neither a restart nor a reload resets anyone's hour. Each node
//!    limits on its own.
//!    OPRF evaluations (`oprf`, the blinded step before a lookup) pass rules
//!    1 to 5 like lookups (lookup purposes, declared kinds) and are metered by
//!    a second limiter with the same limit, so every lookup costs one cell of
//!    each and enumerating identifiers through the OPRF alone is bounded too.
//!
//! Refusal reasons name the rule and the configured values, never free text
//! from the request (a purpose may quote a case, a table name is the caller's
//! string); the audit record carries the request itself.
//!
//! # Example
//! ```toml
//! [policy]
//! valid_until = "2027-12-31"          # or a bare TOML date: 2027-12-31
//! agencies = ["fr-police", "de-bka"]  # missing or empty: nobody is admitted
//! roles = ["investigator", "researcher"]
//!
//! [policy.purposes]
//! lookup = ["fraud investigation", "counter-terrorism"]
//! stats = ["research"]
//!
//! [policy.lookup]
//! kinds = ["phone", "email", "iban", "passport", "national_id", "crypto_wallet", "name_dob"]
//! per_hour_per_kind = 200             # default 100
//!
//! [policy.stats]
//! tables = ["incidents"]
//!
//! # Which role may do what; these are the defaults.
//! [policy.actions]
//! lookup = ["investigator"]
//! stats = ["researcher"]
//!
//! # Staged disclosure of this node's own hit bit; missing: nobody.
//! [policy.disclosure]
//! agencies = ["fr-police"]            # a subset of policy.agencies
//! roles = ["investigator"]            # a subset of policy.roles
//! purposes = ["counter-terrorism"]    # a subset of policy.purposes.lookup
//! ```
//! Cross-checks: purposes for a kind of query without its targets (kinds,
//! tables) or the reverse, agencies without roles, and a partly filled
//! disclosure rule are reported as errors, since each admits nothing and is
//! most likely a mistake. Stats tables are not checked against the `[stats]`
//! catalog here; [`Policy::tables`] lets the config loader do it.

mod rate;
mod section;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use fedq_crypto::IdentifierKind;

use self::rate::{LookupLimiter, QueryLimiter};
pub use self::section::{
    ActionsSection, DisclosureSection, LookupPolicySection, PolicySection, PurposesSection,
    StatsPolicySection, WatchPolicySection, DEFAULT_LOOKUPS_PER_HOUR_PER_KIND,
    DEFAULT_STATS_PER_HOUR, DEFAULT_WATCHES_PER_REQUESTER, DEFAULT_WATCH_DAYS,
    MAX_LOOKUPS_PER_HOUR_PER_KIND, MAX_NAME_BYTES, MAX_STATS_PER_HOUR,
};
pub use fedq_proto::role::{Role, UnknownRoleError};

/// What a request asks of the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action<'a> {
    /// An identifier lookup batch: one kind per item.
    Lookup {
        /// The kind of each item, in request order.
        kinds: &'a [IdentifierKind],
    },
    /// A differentially private statistics query.
    Stats {
        /// The queried table.
        table: &'a str,
    },
    /// A request to learn this node's own hit bit (staged disclosure).
    Disclose,
    /// A batch of blinded OPRF evaluations (the step before a lookup): one
    /// declared kind per item. The kinds cannot be checked against the
    /// blinded elements, but every evaluation consumes a cell of some
    /// admitted kind, so the total stays bounded.
    Oprf {
        /// The declared kind of each item, in request order.
        kinds: &'a [IdentifierKind],
    },
    /// A standing lookup of one item (a watch): admitted like a lookup
    /// (roles, purposes, kinds, metered with lookups); its lifetime and the
    /// requester's live watches are bounded by `policy.watch`.
    Watch {
        /// The kind of the watched item.
        kinds: &'a [IdentifierKind],
    },
    /// Partial evaluations under the node's share of the deconfliction key:
    /// metered with the OPRF's per-kind limit, admitted by its own roles
    /// and purposes.
    Deconflict {
        /// The declared kind of each item, in request order.
        kinds: &'a [IdentifierKind],
    },
}

impl Action<'_> {
    /// Every action name, as used by [`Action::name`] and the transparency report.
    pub const NAMES: [&'static str; 6] =
        ["lookup", "stats", "disclose", "oprf", "deconflict", "watch"];

    /// The action's lowercase name.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Lookup { .. } => "lookup",
            Action::Stats { .. } => "stats",
            Action::Disclose => "disclose",
            Action::Oprf { .. } => "oprf",
            Action::Deconflict { .. } => "deconflict",
            Action::Watch { .. } => "watch",
        }
    }
}

/// The policy-relevant facts of one request.
#[derive(Debug, Clone, Copy)]
pub struct PolicyRequest<'a> {
    /// The requester's id (from its credentials); rate limits are per requester.
    pub requester: &'a str,
    /// The requester's agency.
    pub agency: &'a str,
    /// The requester's role.
    pub role: Role,
    /// The declared purpose, free text.
    pub purpose: &'a str,
    /// What is asked.
    pub action: Action<'a>,
}

/// Why [`Policy::admit`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("refused by policy rule {rule}: {reason}")] // Refusal::PREFIX
pub struct Refusal {
    /// The rule: "sunset", "agency", "role", "purpose", "kind", "table",
    /// "disclosure" or "rate_limit".
    pub rule: &'static str,
    /// A lowercase explanation, free of request-supplied text.
    pub reason: String,
    /// True for rate limits (gRPC `ResourceExhausted`); otherwise the refusal
    /// is `PermissionDenied`.
    pub exhausted: bool,
}

impl Refusal {
    /// How every refusal's message (and so its audit reason) starts.
    pub const PREFIX: &'static str = "refused by policy rule ";

    fn denied(rule: &'static str, reason: impl Into<String>) -> Self {
        Self {
            rule,
            reason: reason.into(),
            exhausted: false,
        }
    }
}

/// The public domains of the DP transparency report: its keys are fixed by
/// the policy, never by request contents. Requests naming other values are
/// expected to be counted under one "other" bucket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReportDomains {
    /// Admitted agencies, sorted.
    pub agencies: Vec<String>,
    /// Every admitted purpose (lookup, stats, disclosure), normalised, sorted.
    pub purposes: Vec<String>,
    /// Every action name ([`Action::NAMES`]).
    pub actions: Vec<String>,
}

/// The `[policy.disclosure]` rule, validated.
#[derive(Debug, Clone, Default)]
struct Disclosure {
    agencies: BTreeSet<String>,
    roles: BTreeSet<Role>,
    purposes: BTreeSet<String>,
}

/// A validated access policy; share it behind an `Arc` (it holds the rate limiter).
#[derive(Debug)]
pub struct Policy {
    valid_until: Option<NaiveDate>,
    agencies: BTreeSet<String>,
    roles: BTreeSet<Role>,
    /// Roles that may look up (and take the OPRF step and disclosures).
    lookup_roles: BTreeSet<Role>,
    /// Roles that may ask statistics.
    stats_roles: BTreeSet<Role>,
    /// Roles that may take part in deconfliction.
    deconflict_roles: BTreeSet<Role>,
    lookup_purposes: BTreeSet<String>,
    deconflict_purposes: BTreeSet<String>,
    stats_purposes: BTreeSet<String>,
    kinds: BTreeSet<IdentifierKind>,
    tables: BTreeSet<String>,
    disclosure: Disclosure,
    limiter: LookupLimiter,
    /// OPRF evaluations, metered on their own with the same per-kind limit:
    /// an enumeration through the OPRF is bounded even without lookups.
    oprf_limiter: LookupLimiter,
    /// Statistics queries per requester.
    stats_limiter: QueryLimiter,
    /// Bounds on watches (`[policy.watch]`).
    watch: WatchLimits,
}

/// `[policy.watch]` as validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchLimits {
    /// Longest a watch may last, in days (never past `valid_until`).
    pub max_days: u32,
    /// Live watches per requester.
    pub max_live_per_requester: u32,
}

impl Default for WatchLimits {
    fn default() -> Self {
        Self {
            max_days: DEFAULT_WATCH_DAYS,
            max_live_per_requester: DEFAULT_WATCHES_PER_REQUESTER,
        }
    }
}

impl Default for Policy {
    /// The policy of a node without a `[policy]` section: admits nothing.
    fn default() -> Self {
        Self {
            valid_until: None,
            agencies: BTreeSet::new(),
            roles: BTreeSet::new(),
            lookup_roles: BTreeSet::from([Role::Investigator]),
            stats_roles: BTreeSet::from([Role::Researcher]),
            deconflict_roles: BTreeSet::from([Role::Investigator]),
            lookup_purposes: BTreeSet::new(),
            deconflict_purposes: BTreeSet::new(),
            stats_purposes: BTreeSet::new(),
            kinds: BTreeSet::new(),
            tables: BTreeSet::new(),
            disclosure: Disclosure::default(),
            limiter: LookupLimiter::new(DEFAULT_LOOKUPS_PER_HOUR_PER_KIND),
            oprf_limiter: LookupLimiter::new(DEFAULT_LOOKUPS_PER_HOUR_PER_KIND),
            stats_limiter: QueryLimiter::new(DEFAULT_STATS_PER_HOUR),
            watch: WatchLimits::default(),
        }
    }
}

/// The audit detail of a batch: how many items of which kinds (never
/// values). [`counted_kinds`] reads it back to restore the rate limits.
pub(crate) fn kinds_detail(label: &str, kinds: &[IdentifierKind], disclose: bool) -> String {
    let mut names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    format!(
        "{label}={} kinds={}{}",
        kinds.len(),
        names.join(","),
        if disclose { " disclose=asked" } else { "" }
    )
}

/// The item count and kinds of an audit detail `items=3 kinds=email,phone`
/// (or `evaluations=...`), as [`kinds_detail`] writes it.
fn counted_kinds(detail: &str) -> Option<(u32, Vec<IdentifierKind>)> {
    let mut words = detail.split_whitespace();
    let items = words.next()?.split_once('=')?.1.parse().ok()?;
    let kinds = words
        .next()?
        .strip_prefix("kinds=")?
        .split(',')
        .filter_map(|k| k.parse().ok())
        .collect();
    Some((items, kinds))
}

/// The form purposes are compared and reported in: trimmed, runs of
/// whitespace collapsed to one space, lowercase.
pub fn normalise_purpose(purpose: &str) -> String {
    purpose
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

impl Policy {
    /// Validates a `[policy]` section; returns all problems at once, each
    /// prefixed with its key path (e.g. `policy.purposes.lookup[1]: empty purpose`).
    pub fn from_section(section: PolicySection) -> Result<Policy, Vec<String>> {
        section::validate(section)
    }

    /// Decides whether to admit `request` at `now`; on admission a lookup
    /// consumes its rate-limit cells. The refusal names the rule.
    pub fn admit(&self, request: &PolicyRequest<'_>, now: DateTime<Utc>) -> Result<(), Refusal> {
        if let Some(until) = self.valid_until {
            if now.date_naive() > until {
                return Err(Refusal::denied(
                    "sunset",
                    format!("the policy expired after {until}; it admits nothing"),
                ));
            }
        }
        if !self.agencies.contains(request.agency) {
            return Err(Refusal::denied("agency", "the agency is not admitted"));
        }
        if request.role == Role::Auditor {
            return Err(Refusal::denied(
                "role",
                "auditors do not query data; they read the audit log and transparency report",
            ));
        }
        if !self.roles.contains(&request.role) {
            return Err(Refusal::denied(
                "role",
                format!("role {} is not admitted", request.role),
            ));
        }
        let (admitted, key) = match request.action {
            Action::Stats { .. } => (&self.stats_roles, "stats"),
            Action::Lookup { .. }
            | Action::Oprf { .. }
            | Action::Disclose
            | Action::Watch { .. } => (&self.lookup_roles, "lookup"),
            Action::Deconflict { .. } => (&self.deconflict_roles, "deconflict"),
        };
        if !admitted.contains(&request.role) {
            let listed: Vec<&str> = admitted.iter().map(|r| r.as_str()).collect();
            return Err(Refusal::denied(
                "role",
                format!(
                    "role {} may not {} at this node (policy.actions.{key}: {})",
                    request.role,
                    request.action.name(),
                    listed.join(", ")
                ),
            ));
        }
        let purpose = normalise_purpose(request.purpose);
        match request.action {
            Action::Lookup { kinds } => {
                self.check_purpose(&self.lookup_purposes, &purpose, "lookup")?;
                self.check_kinds_and_rate(&self.limiter, "lookup", request.requester, kinds, now)
            }
            Action::Oprf { kinds } => {
                self.check_purpose(&self.lookup_purposes, &purpose, "oprf")?;
                self.check_kinds_and_rate(&self.oprf_limiter, "oprf", request.requester, kinds, now)
            }
            Action::Watch { kinds } => {
                self.check_purpose(&self.lookup_purposes, &purpose, "watch")?;
                self.check_kinds_and_rate(&self.limiter, "watch", request.requester, kinds, now)
            }
            Action::Deconflict { kinds } => {
                self.check_purpose(&self.deconflict_purposes, &purpose, "deconflict")?;
                self.check_kinds_and_rate(
                    &self.oprf_limiter,
                    "deconflict",
                    request.requester,
                    kinds,
                    now,
                )
            }
            Action::Stats { table } => {
                self.check_purpose(&self.stats_purposes, &purpose, "stats")?;
                if !self.tables.contains(table.trim()) {
                    return Err(Refusal::denied("table", "the table is not admitted"));
                }
                self.stats_limiter
                    .try_consume(request.requester, &[()], now)
                    .map_err(|e| Refusal {
                        rule: "rate_limit",
                        reason: format!(
                            "stats rate limit is {} queries per rolling hour; {} used",
                            e.limit, e.used
                        ),
                        exhausted: true,
                    })
            }
            Action::Disclose => {
                self.check_purpose(&self.lookup_purposes, &purpose, "disclosure")?;
                if !self.may_disclose(request.agency, request.role, request.purpose) {
                    return Err(Refusal::denied(
                        "disclosure",
                        "this node does not disclose its own hit to this agency, role and purpose",
                    ));
                }
                Ok(())
            }
        }
    }

    fn check_kinds_and_rate(
        &self,
        limiter: &LookupLimiter,
        action: &str,
        requester: &str,
        kinds: &[IdentifierKind],
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        if let Some(kind) = kinds.iter().find(|k| !self.kinds.contains(k)) {
            return Err(Refusal::denied(
                "kind",
                format!("identifier kind {kind} is not admitted for {action}"),
            ));
        }
        limiter
            .try_consume(requester, kinds, now)
            .map_err(|e| Refusal {
                rule: "rate_limit",
                reason: format!(
                    "{action} rate limit for kind {} is {} items per rolling hour; \
                     {} used, the batch asks {} more",
                    e.kind, e.limit, e.used, e.requested
                ),
                exhausted: true,
            })
    }

    fn check_purpose(
        &self,
        admitted: &BTreeSet<String>,
        purpose: &str,
        action: &str,
    ) -> Result<(), Refusal> {
        if admitted.contains(purpose) {
            return Ok(());
        }
        Err(Refusal::denied(
            "purpose",
            format!("the purpose is not admitted for {action}"),
        ))
    }

    /// Whether this node reveals its own hit bit to `agency`/`role` for
    /// `purpose` (staged disclosure). Nobody by default; never auditors. The
    /// sunset is checked by [`Policy::admit`] with [`Action::Disclose`].
    pub fn may_disclose(&self, agency: &str, role: Role, purpose: &str) -> bool {
        role != Role::Auditor
            && self.disclosure.agencies.contains(agency)
            && self.disclosure.roles.contains(&role)
            && self
                .disclosure
                .purposes
                .contains(&normalise_purpose(purpose))
    }

    /// The public domains of the DP transparency report.
    pub fn report_domains(&self) -> ReportDomains {
        let purposes: BTreeSet<&String> = self
            .lookup_purposes
            .iter()
            .chain(&self.stats_purposes)
            .chain(&self.deconflict_purposes)
            .chain(&self.disclosure.purposes)
            .collect();
        ReportDomains {
            agencies: self.agencies.iter().cloned().collect(),
            purposes: purposes.into_iter().cloned().collect(),
            actions: Action::NAMES.iter().map(|&a| a.to_owned()).collect(),
        }
    }

    /// Last day (UTC, inclusive) anything is admitted; `None` only when the
    /// policy admits no agency.
    pub fn watch_limits(&self) -> WatchLimits {
        self.watch
    }

    /// Last day the policy admits anything, if it says.
    pub fn valid_until(&self) -> Option<NaiveDate> {
        self.valid_until
    }

    /// Tables admitted for stats queries (to check against the `[stats]` catalog).
    pub fn tables(&self) -> impl Iterator<Item = &str> + '_ {
        self.tables.iter().map(String::as_str)
    }

    /// Rebuilds the rate-limit counters from the audit log's entries of the
    /// last hour (oldest first), so that restarting a node does not hand
    /// every requester a fresh hour. Every lookup, OPRF or statistics entry
    /// counts except refusals that consumed nothing (a policy rule, an
    /// envelope that did not verify); a batch of several kinds counts all
    /// its items against each of them. Both err towards refusing.
    pub fn restore_counters<'a>(
        &self,
        entries: impl IntoIterator<Item = &'a fedq_audit::AuditRecord>,
    ) {
        for entry in entries {
            let consumed_nothing = entry.decision == fedq_audit::Decision::Refused
                && (entry.reason.starts_with(Refusal::PREFIX)
                    || entry.reason.starts_with(crate::gate::UNVERIFIED_REASON));
            if consumed_nothing {
                continue;
            }
            let limiter = match entry.action.as_str() {
                "lookup" | "watch" => &self.limiter,
                "oprf" | "deconflict" => &self.oprf_limiter,
                "stats" => {
                    self.stats_limiter
                        .restore(&entry.requester, (), 1, entry.time);
                    continue;
                }
                _ => continue,
            };
            let Some((items, kinds)) = counted_kinds(&entry.detail) else {
                continue;
            };
            for kind in kinds {
                limiter.restore(&entry.requester, kind, items, entry.time);
            }
        }
    }

    /// Takes over `older`'s rate-limit counters, so that reloading a policy
    /// (SIGHUP, or `node.toml` changed) does not reset anyone's hour.
    pub fn carry_counters_from(&self, older: &Policy) {
        self.limiter.adopt(&older.limiter);
        self.oprf_limiter.adopt(&older.oprf_limiter);
        self.stats_limiter.adopt(&older.stats_limiter);
    }

    /// Lookup items per requester per identifier kind per rolling hour.
    pub fn lookups_per_hour_per_kind(&self) -> u32 {
        self.limiter.limit()
    }
}
