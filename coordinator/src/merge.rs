//! Homomorphic combination of the nodes' answers (no key involved).

use fedq_crypto::lookup::EncryptedCount;

use fedq_proto::outcome::{Disclosure, NodeOutcome};

use crate::fanout::NodeReply;
use crate::node_client::NodeCallError;

/// Per-item sums and the status of each node.
pub struct Merged {
    /// One encrypted sum per item.
    pub answers: Vec<EncryptedCount>,
    /// Per node: ok (with its compute time and disclosure) or why it failed.
    pub nodes: Vec<(String, Result<NodeOk, NodeCallError>)>,
    /// Own answers of the nodes that revealed them (disclosure asked only).
    pub disclosed: Vec<(String, Vec<Vec<u8>>)>,
}

/// A node that answered.
pub struct NodeOk {
    /// Compute time reported by the node.
    pub compute_micros: u64,
    /// Whether it revealed its own answers, when asked.
    pub disclosure: Disclosure,
}

/// A node's decoded answers plus its compute time in microseconds.
pub struct NodeAnswers {
    /// Encoded answers, one per item.
    pub answers: Vec<Vec<u8>>,
    /// Compute time reported by the node.
    pub compute_micros: u64,
    /// Whether it revealed its own answers, when asked.
    pub disclosure: Disclosure,
}

/// Adds up, per item, the answers of every node that answered correctly; a
/// node whose answer is malformed or has the wrong length is reported as
/// invalid and left out of the sum.
///
/// A node's own answers are passed on only when it said `revealed`: the
/// coordinator holds every node's ciphertexts, and withholding is the node's
/// decision, which the coordinator carries out.
pub fn merge(items: usize, outcomes: Vec<NodeReply<NodeAnswers>>) -> Merged {
    let mut sums = vec![EncryptedCount::zero(); items];
    let mut nodes = Vec::with_capacity(outcomes.len());
    let mut disclosed = Vec::new();
    for outcome in outcomes {
        let node = outcome.node;
        let status = outcome.result.and_then(|answer| {
            let decoded = decode(items, &answer.answers)?;
            for (sum, part) in sums.iter_mut().zip(&decoded) {
                sum.add_assign(part);
            }
            if answer.disclosure == Disclosure::Revealed {
                disclosed.push((node.clone(), answer.answers));
            }
            Ok(NodeOk {
                compute_micros: answer.compute_micros,
                disclosure: answer.disclosure,
            })
        });
        nodes.push((node, status));
    }
    Merged {
        answers: sums,
        nodes,
        disclosed,
    }
}

fn decode(items: usize, answers: &[Vec<u8>]) -> Result<Vec<EncryptedCount>, NodeCallError> {
    let invalid = |reason: &str| NodeCallError {
        outcome: NodeOutcome::Invalid,
        reason: reason.to_owned(),
    };
    if answers.len() != items {
        return Err(invalid("node answered a different number of items"));
    }
    answers
        .iter()
        .map(|bytes| {
            EncryptedCount::from_bytes(bytes).map_err(|_| invalid("node sent a malformed answer"))
        })
        .collect()
}
