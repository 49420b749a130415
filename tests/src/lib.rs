//! Test support: whole fedq federations on loopback over mutual TLS.
//!
//! - [`sandbox`]: a federation (CA, configs, synthetic data, nodes and
//!   coordinator serving on real sockets) shared by the tests of one binary.
//! - [`fixtures`]: identifiers from the generated files, with the
//!   jurisdictions that hold them.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod fixtures;
pub mod sandbox;
