//! Prometheus metrics for operators: `[metrics] listen = "127.0.0.1:9464"`
//! in `node.toml` or `coordinator.toml` (no section: nothing is served).
//!
//! The endpoint is plain HTTP without authentication, like every Prometheus
//! exporter: bind it to loopback or a monitoring network. What it shows is
//! counts, durations and requester ids (the federation file lists them
//! anyway), never an identifier, a ciphertext, a key or a case reference.
//! Labels take values from closed sets only (route names, actions,
//! decisions, refusal reasons cut before their numbers), so that nobody can
//! grow the exporter's memory by sending odd requests.
//!
//! Series (every one prefixed `fedq_`):
//! - `requests_total{action,decision}`, `refusals_total{action,reason}`,
//!   `audit_entries`: written where the audit log appends ([`audited`]);
//! - `rpc_seconds{rpc}`: per gRPC route, from the admission layer ([`rpc_finished`]);
//! - `pool_queued_requests{pool}`: requests waiting for the evaluation pool;
//! - `budget_spent{requester,epoch,currency}`: privacy budget spent this
//!   epoch, as the ledger committed it.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use serde::Deserialize;

/// `[metrics]` of a server's config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where the Prometheus text endpoint listens (any path answers).
    pub listen: SocketAddr,
}

/// Latency buckets, in seconds: an OPRF round takes milliseconds, a large
/// lookup batch minutes.
const BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Starts the endpoint (on a thread of its own when no Tokio runtime runs).
/// A process has one recorder: a second call with the same address is a
/// no-op, with another address an error.
pub fn install(config: &MetricsConfig) -> anyhow::Result<()> {
    static INSTALLED: OnceLock<SocketAddr> = OnceLock::new();
    if let Some(listening) = INSTALLED.get() {
        anyhow::ensure!(
            *listening == config.listen,
            "metrics already served on {listening} in this process"
        );
        return Ok(());
    }
    PrometheusBuilder::new()
        .with_http_listener(config.listen)
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)?
        .install()
        .with_context(|| format!("cannot serve metrics on {}", config.listen))?;
    // Two servers of one process racing here both tried to install; the
    // loser's error above already stopped it.
    let _ = INSTALLED.set(config.listen);
    describe();
    Ok(())
}

fn describe() {
    metrics::describe_counter!(
        "fedq_requests_total",
        "Audited requests by action and decision"
    );
    metrics::describe_counter!(
        "fedq_refusals_total",
        "Refused requests by action and reason"
    );
    metrics::describe_gauge!("fedq_audit_entries", "Entries in the audit hash chain");
    metrics::describe_histogram!(
        "fedq_rpc_seconds",
        metrics::Unit::Seconds,
        "Time to answer a gRPC request, per route"
    );
    metrics::describe_gauge!(
        "fedq_pool_queued_requests",
        "Requests waiting for the evaluation pool"
    );
    metrics::describe_gauge!(
        "fedq_budget_spent",
        "Privacy budget spent in the epoch, per requester and currency (epsilon, rho)"
    );
}

/// An audit entry was appended: `seq` is its place in the chain.
pub fn audited(action: &str, admitted: bool, reason: &str, seq: u64) {
    let decision = if admitted { "admitted" } else { "refused" };
    let action = closed_word(action);
    metrics::counter!("fedq_requests_total", "action" => action.clone(), "decision" => decision)
        .increment(1);
    if !admitted {
        metrics::counter!("fedq_refusals_total", "action" => action, "reason" => reason_class(reason))
            .increment(1);
    }
    metrics::gauge!("fedq_audit_entries").set(seq as f64);
}

/// A gRPC request on `rpc` (a route name, or "unrouted") took `elapsed`.
pub fn rpc_finished(rpc: &'static str, elapsed: Duration) {
    metrics::histogram!("fedq_rpc_seconds", "rpc" => rpc).record(elapsed.as_secs_f64());
}

/// `requests` wait in the queue of the pool called `pool`.
pub fn pool_queue(pool: &str, requests: usize) {
    metrics::gauge!("fedq_pool_queued_requests", "pool" => pool.to_owned()).set(requests as f64);
}

/// What `requester` has spent in the budget epoch `epoch`, as committed:
/// `rho` in the one currency every release is charged in, `epsilon` the
/// part of it that pure-DP releases asked for (before their zCDP cast).
pub fn budget_spent(requester: &str, epoch: &str, epsilon: f64, rho: f64) {
    let (requester, epoch) = (closed_word(requester), closed_word(epoch));
    for (currency, spent) in [("epsilon", epsilon), ("rho", rho)] {
        metrics::gauge!(
            "fedq_budget_spent",
            "requester" => requester.clone(),
            "epoch" => epoch.clone(),
            "currency" => currency
        )
        .set(spent);
    }
}

/// A word from a closed vocabulary as a label: actions and requester ids
/// are short identifiers; anything else becomes "other".
fn closed_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word.len() <= 64
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if plain {
        word.to_owned()
    } else {
        "other".to_owned()
    }
}

/// A refusal reason without its particulars: the words before the first
/// number, quote, colon or parenthesis ("privacy budget exhausted for
/// epoch", "rule purpose", "stale request time").
fn reason_class(reason: &str) -> String {
    let end = reason
        .find(|c: char| c.is_ascii_digit() || matches!(c, ':' | '(' | '"' | '\'' | ','))
        .unwrap_or(reason.len());
    let words: String = reason[..end]
        .chars()
        .filter(|c| c.is_ascii_alphabetic() || *c == ' ' || *c == '-')
        .take(48)
        .collect();
    match words.trim() {
        "" => "other".to_owned(),
        class => class.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_keep_only_a_closed_vocabulary() {
        assert_eq!(
            reason_class("privacy budget exhausted for epoch 2026-12: the query costs epsilon 5"),
            "privacy budget exhausted for epoch"
        );
        assert_eq!(reason_class("rule purpose"), "rule purpose");
        assert_eq!(
            reason_class("unknown table \"x\"; did you mean"),
            "unknown table"
        );
        assert_eq!(reason_class("42"), "other");
        assert_eq!(closed_word("rosa"), "rosa");
        assert_eq!(closed_word("a b"), "other");
        assert_eq!(closed_word(&"x".repeat(65)), "other");
    }
}
