//! How fedq's parties connect and keep their files: mutual TLS under the
//! federation CA, serving with limits and a grace period, tracing set-up, the
//! private-file writer and the one SQLite opener. No protocol logic.
//!
//! # Layout
//! - [`tls`], [`TlsPaths`]: certificates, server and client TLS, the caller's name.
//! - [`serve`]: a gRPC server on a listener with limits, health, server
//!   reflection and graceful shutdown.
//! - [`caller`]: the layer that refuses callers not allowed, before any body is read.
//! - [`shutdown`]: SIGTERM / Ctrl-C and the grace period.
//! - [`logging`]: the tracing subscriber of every binary.
//! - [`metrics`]: the Prometheus endpoint (`[metrics]`) and what it counts.
//! - [`internal`]: internal errors as an id for the caller, the cause for the log.
//! - [`files`]: files only their owner may read (0600 in 0700 directories).
//! - [`sqlite`]: opening an SQLite file with the settings every store shares.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod caller;
pub mod files;
pub mod internal;
pub mod logging;
pub mod metrics;
pub mod serve;
pub mod shutdown;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod tls;
mod tls_paths;

pub use serve::{serve, ServeOptions, ServerLimits};
pub use tls_paths::TlsPaths;
