//! Coordinator configuration (`coordinator.toml`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use fedq_proto::federation::FederationFile;
use fedq_proto::toml_file::{check_version, parse_listen, read_toml, resolve, ConfigError};
use fedq_transport::TlsPaths;
use serde::Deserialize;

/// How long the coordinator waits for a node: a batch of 48 items at ~25 ms
/// each on two cores, with room for slow links.
const DEFAULT_NODE_TIMEOUT_MS: u64 = 30_000;
/// Seconds a stopping coordinator waits for requests in flight.
const DEFAULT_GRACE_SECONDS: u64 = 30;
/// Longest `key_max_age_days` accepted (ten years): longer is a typo.
const MAX_KEY_MAX_AGE_DAYS: i64 = 3_650;
/// How often every node's audit checkpoint is witnessed: a minute bounds how
/// much a node operator can rewrite before the coordinator has a countersigned
/// copy of the head, at one small call per node per minute.
const DEFAULT_WITNESS_INTERVAL_SECONDS: u64 = 60;
/// Longest witness interval accepted (a day): longer leaves most of a day's
/// history unwitnessed, and is a typo.
const MAX_WITNESS_INTERVAL_SECONDS: u64 = 86_400;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CoordinatorConfigBuilder {
    version: u32,
    listen: String,
    federation: PathBuf,
    #[serde(default = "default_key_store")]
    key_store: String,
    tls: TlsPaths,
    #[serde(default)]
    node_timeout_ms: Option<u64>,
    #[serde(default)]
    grace_seconds: Option<u64>,
    #[serde(default)]
    key_max_age_days: Option<i64>,
    #[serde(default)]
    audit_checkpoint: Option<PathBuf>,
    #[serde(default)]
    audit_key: Option<PathBuf>,
    #[serde(default)]
    limits: fedq_transport::ServerLimits,
    #[serde(default)]
    metrics: Option<fedq_transport::metrics::MetricsConfig>,
    #[serde(default)]
    witness: WitnessSection,
    #[serde(default)]
    deconfliction: DeconflictionSection,
}

/// `[deconfliction]`: how many targets a requester may have registered at
/// once, and for how long.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeconflictionSection {
    #[serde(default)]
    max_live_per_requester: Option<u32>,
    #[serde(default)]
    max_lifetime_days: Option<i64>,
}

/// `[witness]`: witnessing the nodes' audit checkpoints.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WitnessSection {
    #[serde(default)]
    interval_seconds: Option<u64>,
}

fn default_key_store() -> String {
    "data/keys.db".to_owned()
}

/// A validated coordinator configuration.
#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    /// Address to listen on.
    pub listen: std::net::SocketAddr,
    /// The federation.
    pub federation: FederationFile,
    /// The federation file, re-read when an unknown requester calls
    /// (`fedq federation add-requester` edits it while the coordinator runs).
    pub federation_path: PathBuf,
    /// The coordinator's store (registered public keys, witnessed
    /// checkpoints, its audit log): an SQLite file, or a PostgreSQL database
    /// when `key_store` is a `postgres://` URL.
    pub key_store: fedq_db::Location,
    /// A registered key older than this counts as unregistered until
    /// registered again (`key_max_age_days`).
    pub key_max_age: Duration,
    /// mTLS material.
    pub tls: TlsPaths,
    /// Connection and concurrency bounds (`[limits]`).
    pub limits: fedq_transport::ServerLimits,
    /// The Prometheus endpoint (`[metrics]`; none by default).
    pub metrics: Option<fedq_transport::metrics::MetricsConfig>,
    /// Per-node time-out.
    pub node_timeout: Duration,
    /// Drain period at shutdown.
    pub grace: Duration,
    /// Signed checkpoint of the audit log's head (the log is in `key_store`).
    pub audit_checkpoint: PathBuf,
    /// Ed25519 key that signs audit checkpoints (created if missing) and
    /// countersigns the nodes' checkpoints.
    pub audit_key: PathBuf,
    /// How often every node's audit checkpoint is witnessed (`[witness]
    /// interval_seconds`); also once at startup.
    pub witness_interval: Duration,
    /// Bounds on deconfliction registrations (`[deconfliction]`).
    pub deconfliction: crate::deconfliction::Limits,
}

impl CoordinatorConfig {
    /// Reads and validates `path` and the federation file it names.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let builder: CoordinatorConfigBuilder = read_toml(path)?;
        let mut problems = Vec::new();
        check_version(builder.version, &mut problems);
        let listen = parse_listen(&builder.listen, "127.0.0.1:7000", &mut problems);
        let federation_path = resolve(path, &builder.federation);
        let federation = FederationFile::load(&federation_path)
            .map_err(|e| problems.push(format!("federation: {e}")))
            .ok();
        let timeout = builder.node_timeout_ms.unwrap_or(DEFAULT_NODE_TIMEOUT_MS);
        if timeout == 0 {
            problems.push("node_timeout_ms: must be positive".to_owned());
        }
        let key_max_age_days = builder
            .key_max_age_days
            .unwrap_or(crate::registry::DEFAULT_KEY_MAX_AGE_DAYS);
        if !(1..=MAX_KEY_MAX_AGE_DAYS).contains(&key_max_age_days) {
            problems.push(format!(
                "key_max_age_days: must be between 1 and {MAX_KEY_MAX_AGE_DAYS}"
            ));
        }
        let witness_seconds = builder
            .witness
            .interval_seconds
            .unwrap_or(DEFAULT_WITNESS_INTERVAL_SECONDS);
        if !(1..=MAX_WITNESS_INTERVAL_SECONDS).contains(&witness_seconds) {
            problems.push(format!(
                "witness.interval_seconds: must be between 1 and {MAX_WITNESS_INTERVAL_SECONDS}"
            ));
        }
        problems.extend(builder.limits.problems());
        let deconfliction = crate::deconfliction::Limits::from_config(
            builder.deconfliction.max_live_per_requester,
            builder.deconfliction.max_lifetime_days,
        )
        .map_err(|p| problems.extend(p))
        .unwrap_or_default();
        match (listen, federation) {
            (Some(listen), Some(federation)) if problems.is_empty() => Ok(Self {
                listen,
                federation,
                federation_path,
                key_store: fedq_db::Location::postgres(&builder.key_store).unwrap_or_else(|| {
                    fedq_db::Location::Sqlite(resolve(path, Path::new(&builder.key_store)))
                }),
                key_max_age: Duration::from_secs(key_max_age_days as u64 * 86_400),
                tls: builder.tls.resolved(path),
                limits: builder.limits,
                metrics: builder.metrics,
                node_timeout: Duration::from_millis(timeout),
                grace: Duration::from_secs(builder.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS)),
                audit_checkpoint: resolve(
                    path,
                    &builder
                        .audit_checkpoint
                        .unwrap_or_else(|| PathBuf::from("data/audit.checkpoint")),
                ),
                audit_key: resolve(
                    path,
                    &builder
                        .audit_key
                        .unwrap_or_else(|| PathBuf::from("audit.key")),
                ),
                witness_interval: Duration::from_secs(witness_seconds),
                deconfliction,
            }),
            _ => Err(ConfigError::Invalid {
                path: path.to_owned(),
                problems,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_with(extra: &str) -> anyhow::Result<Result<CoordinatorConfig, ConfigError>> {
        let dir = tempfile::tempdir()?;
        std::fs::write(
            dir.path().join("federation.toml"),
            "version = 1\nname = \"t\"\n[parameters]\nbucket_bits = 12\ntag_bits = 28\npadded_candidates = 64\n\
             [coordinator]\naddress = \"127.0.0.1:1\"\n[[nodes]]\nid = \"fr\"\njurisdiction = \"fr\"\naddress = \"127.0.0.1:2\"\n",
        )?;
        let path = dir.path().join("coordinator.toml");
        std::fs::write(
            &path,
            format!(
                "version = 1\nlisten = \"127.0.0.1:7000\"\nfederation = \"federation.toml\"\n{extra}\
                 [tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"c.key\"\n"
            ),
        )?;
        Ok(CoordinatorConfig::load(&path))
    }

    #[test]
    fn the_witness_interval_defaults_and_is_validated() -> anyhow::Result<()> {
        assert_eq!(
            load_with("")??.witness_interval,
            Duration::from_secs(DEFAULT_WITNESS_INTERVAL_SECONDS)
        );
        assert_eq!(
            load_with("[witness]\ninterval_seconds = 5\n")??.witness_interval,
            Duration::from_secs(5)
        );
        for bad in ["0", "100000"] {
            match load_with(&format!("[witness]\ninterval_seconds = {bad}\n"))? {
                Err(ConfigError::Invalid { problems, .. }) => assert!(
                    problems
                        .iter()
                        .any(|p| p.starts_with("witness.interval_seconds:")),
                    "{problems:?}"
                ),
                other => panic!("{bad}: {other:?}"),
            }
        }
        Ok(())
    }

    #[test]
    fn key_max_age_defaults_and_is_validated() -> anyhow::Result<()> {
        let config = load_with("")??;
        let days = crate::registry::DEFAULT_KEY_MAX_AGE_DAYS as u64;
        assert_eq!(config.key_max_age, Duration::from_secs(days * 86_400));
        assert_eq!(
            load_with("key_max_age_days = 7\n")??.key_max_age,
            Duration::from_secs(7 * 86_400)
        );
        for bad in ["0", "-1", "4000"] {
            match load_with(&format!("key_max_age_days = {bad}\n"))? {
                Err(ConfigError::Invalid { problems, .. }) => assert!(
                    problems.iter().any(|p| p.starts_with("key_max_age_days:")),
                    "{problems:?}"
                ),
                other => panic!("{bad}: {other:?}"),
            }
        }
        Ok(())
    }
}
