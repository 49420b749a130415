//! Homomorphic combination of the nodes' answers (no key involved).

use fedq_crypto::lookup::EncryptedCount;

use crate::fanout::NodeOutcome;
use crate::node_client::NodeCallError;

/// Per-item sums and the status of each node.
pub struct Merged {
    /// One encrypted sum per item.
    pub answers: Vec<EncryptedCount>,
    /// Per node: ok (with its compute time) or why it failed.
    pub nodes: Vec<(String, Result<u64, NodeCallError>)>,
}

/// A node's decoded answers plus its compute time in microseconds.
pub struct NodeAnswers {
    /// Encoded answers, one per item.
    pub answers: Vec<Vec<u8>>,
    /// Compute time reported by the node.
    pub compute_micros: u64,
}

/// Adds up, per item, the answers of every node that answered correctly; a
/// node whose answer is malformed or has the wrong length is reported as
/// invalid and left out of the sum.
pub fn merge(items: usize, outcomes: Vec<NodeOutcome<NodeAnswers>>) -> Merged {
    let mut sums = vec![EncryptedCount::zero(); items];
    let mut nodes = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        let status = outcome.result.and_then(|answer| {
            let decoded = decode(items, &answer.answers)?;
            for (sum, part) in sums.iter_mut().zip(&decoded) {
                sum.add_assign(part);
            }
            Ok(answer.compute_micros)
        });
        nodes.push((outcome.node, status));
    }
    Merged {
        answers: sums,
        nodes,
    }
}

fn decode(items: usize, answers: &[Vec<u8>]) -> Result<Vec<EncryptedCount>, NodeCallError> {
    let invalid = |reason: &str| NodeCallError {
        status: "invalid",
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
