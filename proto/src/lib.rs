//! Wire types of fedq, generated from `proto/fedq/v1/fedq.proto`.
//!
//! No logic lives here: conversions to domain types are in the crates that own
//! those types. `tonic` and `prost` are re-exported so that every crate uses
//! the same versions.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub use prost;
pub use tonic;

/// Generated protobuf messages and gRPC services, package `fedq.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("fedq.v1");
}

/// Largest gRPC message any fedq service accepts: a batch of
/// [`MAX_ITEMS_PER_REQUEST`] items of ~920 KB each, plus room for the key.
pub const MAX_MESSAGE_BYTES: usize = 48 * 1024 * 1024;

/// Most lookup items in one request; clients split larger batches.
pub const MAX_ITEMS_PER_REQUEST: usize = 48;
