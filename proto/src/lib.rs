//! What the parties of fedq say to each other, and nothing about how they
//! connect: the wire types generated from `proto/fedq/v1/fedq.proto`, the
//! federation file every party reads, the payload hashes a requester signs,
//! and the outcomes a node reports with their one `tonic::Code` mapping.
//!
//! # Layout
//! - [`v1`]: generated protobuf messages and gRPC services.
//! - [`toml_file`]: reading any party's TOML file, with errors naming it.
//! - [`federation`], [`role`]: `federation.toml` and the requester roles.
//! - [`payload`]: what an envelope's `payload_hash` covers, per action.
//! - [`outcome`]: a node's outcome per request and its gRPC status code.
//! - [`catalog`]: the statistics tables a node publishes (schema, domains, bounds).
//! - [`demo`]: the vocabulary of the demo federation's statistics table.
//! - [`limits`]: bounds on untrusted input, one place for every party.
//! - [`exit`]: the exit codes of every command line.
//! - [`codec`]: prost's codec, with undecodable bytes the sender's error.
//!
//! `tonic` and `prost` are re-exported so that every crate uses the same
//! versions. No sockets here: see `fedq-transport`.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub use prost;
pub use tonic;

pub mod catalog;
pub mod codec;
pub mod demo;
pub mod exit;
pub mod federation;
pub mod limits;
pub mod outcome;
pub mod payload;
pub mod role;
pub mod suggest;
pub mod toml_file;

pub use limits::{MAX_FEDERATION_NODES, MAX_ITEMS_PER_REQUEST, MAX_MESSAGE_BYTES};

/// Metadata key of a node's FAILED_PRECONDITION that asks for something to be
/// sent again with the request, and its one value: the requester's expansion
/// key, which the node has not cached.
pub const RESEND_METADATA: &str = "fedq-resend";
/// See [`RESEND_METADATA`].
pub const RESEND_EXPANSION_KEY: &str = "expansion-key";
pub use role::Role;

/// Generated protobuf messages and gRPC services, package `fedq.v1`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("fedq.v1");

    /// The encoded `FileDescriptorSet` of `fedq.proto`, served by gRPC server
    /// reflection so that standard tools (grpcurl) can list and call the API.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/fedq_descriptor.bin"));
}
