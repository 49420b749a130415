//! Node configuration: `node.toml` plus the federation file it points to.
//!
//! TOML is read into `#[serde(deny_unknown_fields)]` builders, then validated
//! into [`NodeConfig`]; every problem is reported, with its key path, not just
//! the first. Relative paths are relative to the file that names them.

use std::path::{Path, PathBuf};

use fedq_crypto::FingerprintParams;
use serde::Deserialize;

use fedq_proto::toml_file::{check_version, parse_listen};
pub use fedq_proto::toml_file::{read_toml, resolve, ConfigError, CONFIG_VERSION};
pub use fedq_transport::TlsPaths;

use crate::federation::{FederationConfig, FederationFile};

/// Fewest evaluation threads: one per core is the default.
const DEFAULT_THREADS: usize = 0;
/// Requests for more items than this are refused (they would hold the pool).
const DEFAULT_MAX_ITEMS: usize = fedq_proto::MAX_ITEMS_PER_REQUEST;
/// Expansion keys cached by default: ~80 MB, enough for the requesters
/// active at once in a federation; another requester's first lookup costs
/// one resend of its key and ~0.1 s to prepare it.
const DEFAULT_EXPANSION_KEYS: usize = 8;
/// At most 1,024 (~10 GB): the bound `lookup.expansion_keys` is checked against.
const MAX_EXPANSION_KEYS: usize = 1024;
/// Seconds a stopping node waits for requests in flight.
const DEFAULT_GRACE_SECONDS: u64 = 20;
/// Longest retention period accepted (100 years): longer is a typo, and keeps
/// expiry arithmetic far from overflow.
const MAX_RETENTION_DAYS: i64 = 36_500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeConfigBuilder {
    version: u32,
    node_id: String,
    listen: String,
    federation: PathBuf,
    #[serde(default = "default_store")]
    store: String,
    tls: TlsPaths,
    #[serde(default)]
    lookup: LookupSection,
    #[serde(default)]
    stats: StatsSection,
    #[serde(default)]
    audit: AuditSection,
    #[serde(default)]
    policy: Option<crate::policy::PolicySection>,
    #[serde(default)]
    retention: RetentionSection,
    #[serde(default)]
    limits: fedq_transport::ServerLimits,
    #[serde(default)]
    metrics: Option<fedq_transport::metrics::MetricsConfig>,
    #[serde(default)]
    deconfliction: Option<DeconflictionSection>,
}

/// `[deconfliction]`: the node's share of the federation's deconfliction key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeconflictionSection {
    /// The share's file (mode 0600), written by `fedq federation init`.
    share: PathBuf,
}

/// `[retention]`: how long identifiers are kept (no section: only per-record
/// `expires_at` applies).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionSection {
    /// Days after its last import that an identifier expires.
    #[serde(default)]
    identifiers_days: Option<i64>,
}

/// Where the audit log's anchor lives: the log itself is in the store.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditSection {
    #[serde(default)]
    checkpoint: Option<PathBuf>,
    #[serde(default)]
    key: Option<PathBuf>,
}

/// Default cap per requester and month at each node, in zCDP rho: 8
/// queries at epsilon 0.5 (each costs rho 0.125), or 20 at rho 0.05.
const DEFAULT_RHO_CAP: f64 = 1.0;
/// Default agency cap per month: four requesters' worth.
const DEFAULT_AGENCY_CAPS: f64 = 4.0;
/// Default lifetime cap per requester: a year's worth of monthly caps.
const DEFAULT_LIFETIME_CAPS: f64 = 12.0;
/// Default delta at which spending is also shown as (epsilon, delta)-DP.
const DEFAULT_DELTA: f64 = 1e-6;
/// Smallest epsilon a release may ask: below it the noise drowns any answer
/// (epsilon 1e-300 once printed 9.2e18) and the query only costs a scan.
const DEFAULT_MIN_EPSILON: f64 = 0.01;
/// Smallest rho: what OpenDP charges for epsilon 0.01 (eps^2 / 2).
const DEFAULT_MIN_RHO: f64 = 0.000_05;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsSection {
    #[serde(default)]
    dir: Option<PathBuf>,
    /// Before one currency: a pure-DP cap. Still honoured, as the rho it
    /// costs (epsilon² / 2), when it is the stricter of the two.
    #[serde(default)]
    epsilon_per_epoch: Option<f64>,
    #[serde(default)]
    rho_per_epoch: Option<f64>,
    #[serde(default)]
    agency_rho_per_epoch: Option<f64>,
    #[serde(default)]
    rho_lifetime: Option<f64>,
    #[serde(default)]
    delta: Option<f64>,
    #[serde(default)]
    min_epsilon: Option<f64>,
    #[serde(default)]
    min_rho: Option<f64>,
    #[serde(default)]
    tables: Vec<crate::stats::TableCatalog>,
}

fn default_store() -> String {
    "sqlite://data/node.db".to_owned()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupSection {
    #[serde(default)]
    threads: Option<usize>,
    #[serde(default)]
    max_items: Option<usize>,
    #[serde(default)]
    expansion_keys: Option<usize>,
    #[serde(default)]
    allowed_callers: Option<Vec<String>>,
    #[serde(default)]
    grace_seconds: Option<u64>,
}

/// Where the node keeps its transactional state: an SQLite file (the
/// embedded default) or a PostgreSQL database.
pub type StoreLocation = fedq_db::Location;

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// This node's id in the federation.
    pub node_id: String,
    /// This node's jurisdiction.
    pub jurisdiction: String,
    /// Address to listen on.
    pub listen: std::net::SocketAddr,
    /// Federation-wide settings.
    pub federation: FederationConfig,
    /// The federation file (re-read when an unknown requester signs).
    pub federation_path: PathBuf,
    /// Transactional store.
    pub store: StoreLocation,
    /// mTLS material.
    pub tls: TlsPaths,
    /// Connection and concurrency bounds (`[limits]`).
    pub limits: fedq_transport::ServerLimits,
    /// The Prometheus endpoint (`[metrics]`; none by default).
    pub metrics: Option<fedq_transport::metrics::MetricsConfig>,
    /// Evaluation threads (0: one per core).
    pub threads: usize,
    /// Most items per lookup request.
    pub max_items: usize,
    /// Requesters' expansion keys kept prepared for compressed lookups
    /// (`lookup.expansion_keys`; ~13 MB each in the Fourier domain).
    pub expansion_keys: usize,
    /// Certificate common names allowed to call the node (the coordinator).
    pub allowed_callers: Vec<String>,
    /// Grace period for requests in flight at shutdown.
    pub grace: std::time::Duration,
    /// Directory of the statistics tables (Parquet).
    pub stats_dir: PathBuf,
    /// Privacy budget caps in zCDP rho: per requester and epoch (calendar
    /// month), per agency and epoch, per requester for good.
    pub budget_caps: crate::ledger::BudgetCaps,
    /// Smallest epsilon and rho one release may ask (`stats.min_epsilon`,
    /// `stats.min_rho`).
    pub budget_floor: QueryFloor,
    /// The delta at which spending is also shown as (epsilon, delta)-DP.
    pub budget_delta: f64,
    /// The public catalog of statistics tables.
    pub catalog: Vec<crate::stats::TableCatalog>,
    /// The access policy, parsed once at load (no `[policy]`: admit nothing).
    /// Shared: it holds the rate limiter's state.
    pub policy: std::sync::Arc<crate::policy::Policy>,
    /// The federation file as loaded (envelopes are checked against its
    /// current version, re-read when it changes).
    pub federation_file: FederationFile,
    /// The signed checkpoint of the audit log's head (kept outside the log).
    pub audit_checkpoint: PathBuf,
    /// The node's Ed25519 key that signs audit checkpoints (created if missing).
    pub audit_key: PathBuf,
    /// Identifiers expire this long after their last import (`[retention]
    /// identifiers_days`; `None`: only their own `expires_at` applies).
    pub identifier_retention: Option<std::time::Duration>,
    /// The file of this node's share of the deconfliction key, if it holds one.
    pub deconfliction_share: Option<PathBuf>,
}

impl NodeConfig {
    /// Opens this node's audit log (in its store, checkpoint and key beside it).
    pub fn open_audit(&self) -> Result<fedq_audit::AuditLog, fedq_audit::AuditError> {
        fedq_audit::AuditLog::open_at(&self.store, &self.audit_checkpoint, &self.audit_key)
    }

    /// Opens this node's audit log to check or export it, changing nothing.
    pub fn open_audit_read_only(&self) -> Result<fedq_audit::AuditLog, fedq_audit::AuditError> {
        fedq_audit::AuditLog::open_read_only_at(
            &self.store,
            &self.audit_checkpoint,
            &self.audit_key,
        )
    }

    /// Reads and validates `path` and the federation file it names.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let builder: NodeConfigBuilder = read_toml(path)?;
        let mut problems = Vec::new();
        check_version(builder.version, &mut problems);
        let listen = parse_listen(&builder.listen, "127.0.0.1:7100", &mut problems);
        let store = parse_store(&builder.store, path)
            .map_err(|p| problems.push(p))
            .ok();
        let federation_path = resolve(path, &builder.federation);
        let federation = match FederationFile::load(&federation_path) {
            Ok(f) => Some(f),
            Err(e) => {
                problems.push(format!("federation: {e}"));
                None
            }
        };
        let jurisdiction = federation.as_ref().and_then(|f| {
            let found = f
                .nodes
                .iter()
                .find(|n| n.id == builder.node_id)
                .map(|n| n.jurisdiction.clone());
            if found.is_none() {
                problems.push(format!(
                    "node_id: {:?} is not a node of the federation file",
                    builder.node_id
                ));
            }
            found
        });
        let lookup = builder.lookup;
        let max_items = lookup.max_items.unwrap_or(DEFAULT_MAX_ITEMS);
        if max_items == 0 || max_items > fedq_proto::MAX_ITEMS_PER_REQUEST {
            problems.push(format!(
                "lookup.max_items: must be between 1 and {}",
                fedq_proto::MAX_ITEMS_PER_REQUEST
            ));
        }
        let expansion_keys = lookup.expansion_keys.unwrap_or(DEFAULT_EXPANSION_KEYS);
        if expansion_keys == 0 || expansion_keys > MAX_EXPANSION_KEYS {
            problems.push(format!(
                "lookup.expansion_keys: must be between 1 and {MAX_EXPANSION_KEYS}"
            ));
        }
        let allowed_callers = lookup
            .allowed_callers
            .unwrap_or_else(|| vec!["coordinator".to_owned()]);
        if allowed_callers.is_empty() {
            problems.push("lookup.allowed_callers: must name at least one certificate".to_owned());
        }
        problems.extend(builder.limits.problems());
        let stats = builder.stats;
        let caps = budget_caps(&stats, &mut problems);
        let budget_delta = stats.delta.unwrap_or(DEFAULT_DELTA);
        if !(budget_delta > 0.0 && budget_delta < 1.0) {
            problems.push("stats.delta: must be a number between 0 and 1 (exclusive)".to_owned());
        }
        let floor = QueryFloor {
            epsilon: stats.min_epsilon.unwrap_or(DEFAULT_MIN_EPSILON),
            rho: stats.min_rho.unwrap_or(DEFAULT_MIN_RHO),
        };
        if !(floor.epsilon.is_finite() && floor.epsilon > 0.0) {
            problems.push("stats.min_epsilon: must be a finite number > 0".to_owned());
        }
        if !(floor.rho.is_finite() && floor.rho > 0.0) {
            problems.push("stats.min_rho: must be a finite number > 0".to_owned());
        }
        for (i, table) in stats.tables.iter().enumerate() {
            if let Err(table_problems) = table.validate() {
                problems.extend(
                    table_problems
                        .into_iter()
                        .map(|p| format!("stats.tables[{i}].{p}")),
                );
            }
        }
        let identifier_retention = match builder.retention.identifiers_days {
            None => None,
            Some(days) if (1..=MAX_RETENTION_DAYS).contains(&days) => {
                Some(std::time::Duration::from_secs(days as u64 * 86_400))
            }
            Some(_) => {
                problems.push(format!(
                    "retention.identifiers_days: must be between 1 and {MAX_RETENTION_DAYS}"
                ));
                None
            }
        };
        let policy = match builder.policy {
            Some(section) => crate::policy::Policy::from_section(section)
                .map_err(|policy_problems| problems.extend(policy_problems))
                .ok(),
            None => Some(crate::policy::Policy::default()),
        };
        if !problems.is_empty() {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            });
        }
        let (Some(listen), Some(store), Some(federation), Some(jurisdiction), Some(policy)) =
            (listen, store, federation, jurisdiction, policy)
        else {
            unreachable!("every missing value pushed a problem");
        };
        let federation_file = federation.clone();
        Ok(Self {
            path: path.to_owned(),
            node_id: builder.node_id,
            jurisdiction,
            listen,
            federation: federation.config,
            federation_path,
            store,
            tls: builder.tls.resolved(path),
            limits: builder.limits,
            metrics: builder.metrics,
            threads: lookup.threads.unwrap_or(DEFAULT_THREADS),
            max_items,
            expansion_keys,
            allowed_callers,
            grace: std::time::Duration::from_secs(
                lookup.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS),
            ),
            stats_dir: resolve(
                path,
                &stats.dir.unwrap_or_else(|| PathBuf::from("data/stats")),
            ),
            budget_caps: caps,
            budget_floor: floor,
            budget_delta,
            catalog: stats.tables,
            policy: std::sync::Arc::new(policy),
            federation_file,
            audit_checkpoint: resolve(
                path,
                &builder
                    .audit
                    .checkpoint
                    .unwrap_or_else(|| PathBuf::from("data/audit.checkpoint")),
            ),
            audit_key: resolve(
                path,
                &builder
                    .audit
                    .key
                    .unwrap_or_else(|| PathBuf::from("audit.key")),
            ),
            identifier_retention,
            deconfliction_share: builder
                .deconfliction
                .map(|section| resolve(path, &section.share)),
        })
    }

    /// Reads this node's deconfliction key share: a private file whose
    /// public half is the share the federation file lists for this node.
    pub fn load_deconfliction_share(&self) -> Result<Option<fedq_crypto::toprf::KeyShare>, String> {
        let Some(path) = &self.deconfliction_share else {
            return Ok(None);
        };
        let shown = path.display();
        fedq_transport::files::check_private(path)
            .map_err(|e| format!("deconfliction.share: {e}"))?;
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| format!("deconfliction.share: cannot read {shown}: {e}"))?,
        );
        let share = fedq_crypto::toprf::KeyShare::from_text(&text)
            .map_err(|e| format!("deconfliction.share: {shown}: {e}"))?;
        let listed = self
            .federation_file
            .deconfliction
            .as_ref()
            .and_then(|keys| keys.share(&self.node_id));
        match listed {
            Some(listed) if listed == share.public() => Ok(Some(share)),
            Some(_) => Err(format!(
                "deconfliction.share: {shown} is not the share federation.toml lists for {}",
                self.node_id
            )),
            None => Err(format!(
                "deconfliction.share: federation.toml lists no deconfliction share for {}",
                self.node_id
            )),
        }
    }

    /// Fingerprint parameters of the federation.
    pub fn fingerprint_params(&self) -> FingerprintParams {
        self.federation.fingerprint
    }
}

fn parse_store(value: &str, file: &Path) -> Result<StoreLocation, String> {
    if let Some(rest) = value.strip_prefix("sqlite://") {
        if rest.is_empty() {
            return Err("store: sqlite:// needs a file path".to_owned());
        }
        return Ok(StoreLocation::Sqlite(resolve(file, Path::new(rest))));
    }
    StoreLocation::postgres(value)
        .ok_or_else(|| "store: expected sqlite://PATH or postgres://USER@HOST/DATABASE".to_owned())
}

/// The smallest budget one release may ask.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryFloor {
    /// For a pure-DP (Laplace) release.
    pub epsilon: f64,
    /// For a zCDP (Gaussian) release.
    pub rho: f64,
}

/// The caps of `[stats]`, all in zCDP rho. The requester's monthly cap is
/// `rho_per_epoch`, or the rho of `epsilon_per_epoch` (from before one
/// currency) where that is stricter; the agency's and the lifetime cap
/// default to multiples of it.
fn budget_caps(stats: &StatsSection, problems: &mut Vec<String>) -> crate::ledger::BudgetCaps {
    let mut check = |key: &str, value: Option<f64>| {
        if let Some(v) = value {
            if !(v.is_finite() && v >= 0.0) {
                problems.push(format!("stats.{key}: must be a finite number >= 0"));
            }
        }
        value
    };
    let epsilon = check("epsilon_per_epoch", stats.epsilon_per_epoch);
    let rho = check("rho_per_epoch", stats.rho_per_epoch);
    let agency = check("agency_rho_per_epoch", stats.agency_rho_per_epoch);
    let lifetime = check("rho_lifetime", stats.rho_lifetime);
    let requester = match (rho, epsilon) {
        (None, None) => DEFAULT_RHO_CAP,
        (rho, epsilon) => rho
            .unwrap_or(f64::INFINITY)
            .min(epsilon.map_or(f64::INFINITY, fedq_crypto::dp::pure_cost)),
    };
    crate::ledger::BudgetCaps {
        requester,
        agency: agency.unwrap_or(requester * DEFAULT_AGENCY_CAPS),
        lifetime: lifetime.unwrap_or(requester * DEFAULT_LIFETIME_CAPS),
    }
}
