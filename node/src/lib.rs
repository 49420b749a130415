//! fedq node: keeps a jurisdiction's records at home and answers encrypted
//! lookups about them.
//!
//! # Layout
//! - [`config`], [`federation`]: `node.toml` and `federation.toml`.
//! - [`store`]: the transactional store (SQLite file by default).
//! - [`import`], [`generate`]: loading identifiers; synthetic demo data.
//! - [`rotate`]: rotating the node's OPRF key (re-deriving every stored tag).
//! - [`index`]: per (kind, bucket) candidate tags, in memory.
//! - [`policy`]: the access policy (`[policy]`): who may ask what, for what, how often.
//! - [`service`]: the lookup domain service (authorise, evaluate, answer).
//! - [`audit`]: the tamper-evident audit log of admitted and refused queries.
//! - [`report`]: the monthly DP transparency report drawn from the audit log.
//! - [`grpc`]: the tonic adapter; [`server`], [`tls`], [`shutdown`]: serving.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod audit;
pub mod config;
pub mod envelope;
pub mod error;
pub mod federation;
pub mod gate;
pub mod generate;
pub mod grpc;
pub mod import;
pub mod index;
pub mod ledger;
pub mod policy;
pub mod report;
pub mod rotate;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod stats;
pub mod stats_service;
pub mod store;
#[doc(hidden)]
pub mod testkit;
pub mod tls;

pub use config::NodeConfig;
pub use error::NodeError;
pub use service::NodeService;

/// Installs the tracing subscriber of the binaries (`FEDQ_LOG` sets the filter).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FEDQ_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Like [`init_tracing`], but warnings only by default: for interactive commands.
pub fn init_tracing_quiet() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FEDQ_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
