//! The requester's client library: keys, lookups, and the `client.toml` file.
//!
//! Identifiers are normalised and fingerprinted here, on the requester's
//! machine; only the kind, the bucket and the encrypted tag bits leave it.
//! The TFHE secret key lives in a 0600 file and in memory only.
//!
//! # Layout
//! - [`config`]: `client.toml` and envelope signing.
//! - [`requester`]: the connection to the coordinator, keys, statistics.
//! - [`lookup`]: OPRF round trips, encrypted lookups, decryption.
//! - [`report`]: what a lookup returns, per item and per node.
//! - [`deconflict`]: deconfliction registrations and alerts.
//! - [`watch`]: standing lookups (watches).
//! - [`batch`]: batch files.
//! - [`stats_cli`]: printing statistics, catalogs and budgets.
//! - [`demo_args`]: the demo's command line (`fedq demo`, `fedq-demo`).
//! - [`init`]: `fedq federation init` and `add-requester` (development CA).
//!
//! Depends on no server crate: the client links neither node nor coordinator.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod batch;
pub mod config;
pub mod deconflict;
pub mod demo_args;
pub mod init;
pub mod lookup;
pub mod report;
pub mod requester;
pub mod stats_cli;
pub mod watch;

pub use batch::{parse_kind, read_batch};
pub use config::ClientConfig;
pub use deconflict::{
    AlertReport, Checked, DeconflictOptions, DeconflictionReport, SealedContact, UnverifiedAlert,
    WatchReport,
};
pub use demo_args::DemoArgs;
pub use report::{
    ItemAnswer, ItemResult, LookupInput, LookupOptions, LookupReport, LookupStats, NodeResult,
    Progress,
};
pub use requester::Requester;
pub use watch::{WatchAdded, WatchOptions};
