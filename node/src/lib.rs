//! fedq node: keeps a jurisdiction's records at home and answers encrypted
//! lookups about them.
//!
//! # Layout
//! - [`config`]: `node.toml` (and the `federation.toml` it names, read by `fedq-proto`).
//! - [`store`]: the transactional store (SQLite file by default).
//! - [`import`]: loading identifiers.
//! - [`rotate`]: rotating the node's OPRF key (re-deriving every stored tag).
//! - [`index`]: per (kind, bucket) candidate tags, in memory.
//! - [`policy`]: the access policy (`[policy]`): who may ask what, for what, how often.
//! - [`service`]: the domain services (lookup, OPRF, statistics): authorise,
//!   admit, work on the [`pool`], record.
//! - [`report`]: the monthly DP transparency report drawn from the audit log.
//! - [`grpc`]: the tonic adapter; [`server`]: serving it (with `fedq-transport`).
//!
//! - `fuzzing` (hidden): the fuzz target bodies of the node's own decoders
//!   (statistics queries, CSV rows), shared by `node/fuzz` and the corpus
//!   replay test.
//!
//! The audit log is `fedq-audit`; TLS, limits and files are `fedq-transport`.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod config;
pub mod envelope;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod gate;
pub mod grpc;
pub mod import;
pub mod index;
pub mod ledger;
pub mod migrate;
pub mod policy;
pub mod pool;
pub mod report;
pub mod rotate;
pub mod server;
pub mod service;
pub mod stats;
pub mod store;
#[cfg(any(test, feature = "testkit"))]
#[doc(hidden)]
pub mod testkit;
pub mod throttle;
pub mod watch;

// Shared crates under the names this crate's modules use for them.
use fedq_audit as audit;
use fedq_proto::federation;

pub use config::NodeConfig;
pub use error::NodeError;
pub use service::NodeService;
