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
            // Answers under another count encoding (a node whose federation
            // has another size) would turn the sum into a wrong count.
            if !sums
                .iter()
                .zip(&decoded)
                .all(|(sum, part)| sum.adds_to(part))
            {
                return Err(NodeCallError {
                    outcome: NodeOutcome::Invalid,
                    reason: "node answered for a federation of another size".to_owned(),
                });
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use fedq_crypto::lookup::answer::answer_bytes;
    use fedq_crypto::lookup::CountEncoding;

    /// An answer of one item under the count encoding with `bits` message bits.
    fn answer(bits: u8) -> Vec<u8> {
        let mut bytes = vec![0u8; answer_bytes()];
        bytes[0] = 2;
        bytes[1] = bits;
        bytes
    }

    fn reply(node: &str, bits: u8) -> NodeReply<NodeAnswers> {
        NodeReply {
            node: node.to_owned(),
            result: Ok(NodeAnswers {
                answers: vec![answer(bits)],
                compute_micros: 1,
                disclosure: Disclosure::NotAsked,
            }),
        }
    }

    #[test]
    fn a_node_answering_under_another_count_encoding_is_left_out() {
        let three = CountEncoding::for_nodes(3).expect("three nodes");
        let bits = u8::try_from(three.message_bits()).expect("a few bits");
        let merged = merge(1, vec![reply("a", bits), reply("b", bits), reply("c", 4)]);
        assert!(merged.nodes[0].1.is_ok() && merged.nodes[1].1.is_ok());
        let refused = merged.nodes[2].1.as_ref().err().expect("c refused");
        assert_eq!(refused.outcome, NodeOutcome::Invalid);
        assert!(
            refused.reason.contains("another size"),
            "{}",
            refused.reason
        );
        // The sum holds a and b only, under their encoding.
        assert!(merged.answers[0].check_encoding(three).is_ok());
        let eight = CountEncoding::for_nodes(8).expect("eight nodes");
        assert!(merged.answers[0].check_encoding(eight).is_err());
    }
}
