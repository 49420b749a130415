//! What a lookup asks and what it answers, per item and per node (the JSON
//! the command line prints).

use std::time::Duration;

use fedq_crypto::IdentifierKind;
use fedq_proto::outcome::{Disclosure, NodeOutcome};
use serde::Serialize;

/// One identifier to look up, as typed.
#[derive(Debug, Clone)]
pub struct LookupInput {
    /// Kind.
    pub kind: IdentifierKind,
    /// The value as the user typed it.
    pub value: String,
}

/// What a lookup established about one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemAnswer {
    /// At least one jurisdiction holds it (`jurisdictions` of those that
    /// answered; more may hold it when not every node answered).
    Hit,
    /// Every node answered, and none holds it.
    NoHit,
    /// No node that answered holds it, but not every node answered: nothing
    /// is known about the others.
    Unknown,
}

impl ItemAnswer {
    /// The answer for `count` jurisdictions holding an item, with `answered`
    /// of `of` nodes having answered for it.
    pub fn of(count: u32, answered: u32, of: u32) -> Self {
        if count > 0 {
            Self::Hit
        } else if answered == of {
            Self::NoHit
        } else {
            Self::Unknown
        }
    }
}

/// Result for one item.
#[derive(Debug, Clone, Serialize)]
pub struct ItemResult {
    /// Kind name.
    pub kind: String,
    /// The value as typed (shown only to the requester).
    pub value: String,
    /// At least one jurisdiction holds it. `false` does not mean "no hit"
    /// unless `answer` says so: read `answer`.
    pub hit: bool,
    /// hit, no_hit or unknown.
    pub answer: ItemAnswer,
    /// How many jurisdictions hold it (not which), among those that answered.
    pub jurisdictions: u32,
    /// Nodes that answered for this item.
    pub answered: u32,
    /// Nodes of the federation.
    pub of: u32,
    /// With disclosure: the nodes that revealed a hit (withheld ones are
    /// listed in `nodes` with `"disclosure": "withheld"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<Vec<String>>,
}

/// How one node fared, across all requests of a lookup.
#[derive(Debug, Clone, Serialize)]
pub struct NodeResult {
    /// Node id.
    pub node: String,
    /// ok, timeout, unavailable, refused, invalid, stale or error.
    pub status: NodeOutcome,
    /// Why, when not ok.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// With disclosure: revealed or withheld.
    #[serde(skip_serializing_if = "not_asked")]
    pub disclosure: Disclosure,
}

/// Measurements of one lookup (for benchmarks; never printed by default).
#[derive(Debug, Clone, Default)]
pub struct LookupStats {
    /// Wall time of the OPRF round trips: blinding, the nodes' evaluations,
    /// checking their proofs and unblinding.
    pub oprf: Duration,
    /// Client time spent encrypting tags (every node's).
    pub encrypt: Duration,
    /// Wall time from first request to last answer, OPRF included.
    pub round_trip: Duration,
    /// Bytes of encrypted tags sent, all nodes together.
    pub bytes_up: usize,
    /// Nodes the items were sent to (each gets its own encrypted tags).
    pub nodes_asked: usize,
    /// Bytes of answers received.
    pub bytes_down: usize,
    /// Per node id, its reported compute time.
    pub node_compute: Vec<(String, Duration)>,
}

/// The answer to a lookup.
#[derive(Debug, Clone, Serialize)]
pub struct LookupReport {
    /// The coordinator's query id of each request the lookup took (one per
    /// chunk of items), as the nodes' audit logs record them.
    pub query_ids: Vec<String>,
    /// Per item, in input order.
    pub results: Vec<ItemResult>,
    /// Every node, failed ones included.
    pub nodes: Vec<NodeResult>,
    /// Measurements.
    #[serde(skip)]
    pub stats: LookupStats,
}

/// What a lookup declares, and whether it asks which jurisdictions hit.
#[derive(Debug, Clone, Default)]
pub struct LookupOptions {
    /// Purpose (checked by each node's policy).
    pub purpose: String,
    /// Case reference.
    pub case_reference: String,
    /// Legal basis; the client config's default when `None`.
    pub legal_basis: Option<String>,
    /// Staged disclosure: the authorization reference under which the
    /// requester asks which jurisdictions hit.
    pub disclose: Option<String>,
    /// Told each step as it starts (a person watching a long batch).
    pub progress: Progress,
}

/// Describes one step, e.g. "encrypting 40 item(s) for 3 node(s)".
type Step = dyn Fn(&str) + Send + Sync;

/// A callback told each step of a lookup as it starts, in words.
#[derive(Clone, Default)]
pub struct Progress(Option<std::sync::Arc<Step>>);

impl Progress {
    /// Calls `step` with each step's description.
    pub fn new(step: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self(Some(std::sync::Arc::new(step)))
    }

    pub(crate) fn step(&self, what: &str) {
        if let Some(step) = &self.0 {
            step(what);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(..)"
        } else {
            "Progress(none)"
        })
    }
}

fn not_asked(disclosure: &Disclosure) -> bool {
    *disclosure == Disclosure::NotAsked
}
