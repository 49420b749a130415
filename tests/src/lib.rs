//! Test support and the demo: whole fedq federations on loopback over mutual TLS.
//!
//! - [`local`]: nodes and a coordinator serving inside one process on real
//!   sockets (the demo, the integration tests and the benchmarks).
//! - [`demo`]: the guided demo behind `fedq demo` (binary `fedq-demo`).
//! - [`sandbox`]: a federation (CA, configs, synthetic data, nodes and
//!   coordinator serving on real sockets) shared by the tests of one binary.
//! - [`fixtures`]: identifiers from the generated files, with the
//!   jurisdictions that hold them.
//! - [`binaries`]: the workspace's binaries, for tests that run real processes.
//!
//! Synthetic data comes from `fedq-synth`.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod binaries;
pub mod demo;
pub mod fixtures;
pub mod hostile;
pub mod local;
pub mod sandbox;
pub mod store;
