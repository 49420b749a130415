//! The statistics catalog a node publishes: its schema lives in `fedq-proto`
//! (requesters read it, `fedq federation init` writes it); the engine uses
//! the same types and helpers.

pub use fedq_proto::catalog::*;
