//! fedq coordinator: carries requests from requesters to every node and adds
//! up their encrypted answers. It holds no secret key and cannot decrypt.
//!
//! # Layout
//! - [`config`], [`registry`]: the coordinator's config and key registry.
//! - [`node_client`], [`fanout`], [`merge`]: calling every node under a
//!   time-out and adding up their encrypted answers (no key involved);
//!   [`combine`]: adding up their noisy statistics.
//! - [`service`], [`grpc`], [`server`]: the coordinator service.
//! - [`witness`]: the nodes' audit checkpoints it witnessed, and alarms.
//! - [`deconfliction`]: registrations of targets under pseudonyms, and the
//!   alerts raised when two agencies work the same one.
//!
//! The requester's side (`fedq`) is `fedq-client`; local federations for
//! development and the demo are in `fedq-tests`.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod combine;
pub mod config;
pub mod deconfliction;
pub mod fanout;
pub mod grpc;
pub mod merge;
pub mod node_client;
pub mod registry;
pub mod server;
pub mod service;
pub mod watch;
pub mod witness;
