//! fedq coordinator and requester client.
//!
//! # Layout
//! - [`config`], [`registry`]: the coordinator's config and key registry.
//! - [`node_client`], [`fanout`], [`merge`]: calling every node under a
//!   time-out and adding up their encrypted answers (no key involved).
//! - [`service`], [`grpc`], [`server`]: the coordinator service.
//! - [`client`]: the requester's library behind the `fedq` command line.
//! - [`init`], [`local`], [`demo`]: local federations for development.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod client;
pub mod config;
pub mod demo;
pub mod fanout;
pub mod grpc;
pub mod init;
pub mod local;
pub mod merge;
pub mod node_client;
pub mod registry;
pub mod server;
pub mod service;
pub mod stats_cli;
