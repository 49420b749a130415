//! Fan-out: the same request to every node, concurrently, each under a
//! time-out; every node's outcome is kept, none is dropped.

use std::future::Future;
use std::time::Duration;

use fedq_proto::outcome::NodeOutcome;
use futures::future::join_all;

use crate::node_client::{NodeCallError, NodeHandle};

/// Outcome of one node.
pub struct NodeReply<T> {
    /// Node id.
    pub node: String,
    /// Its answer or why there is none.
    pub result: Result<T, NodeCallError>,
}

/// Calls `call` on every node; retries once on a transport failure.
pub async fn fan_out<T, F, Fut>(
    nodes: &[NodeHandle],
    timeout: Duration,
    call: F,
) -> Vec<NodeReply<T>>
where
    F: Fn(NodeHandle) -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
{
    let calls = nodes.iter().map(|node| {
        let call = &call;
        async move {
            let mut attempt = 0;
            let result = loop {
                attempt += 1;
                let result = match tokio::time::timeout(timeout, call(node.clone())).await {
                    Ok(Ok(answer)) => Ok(answer),
                    Ok(Err(status)) => Err(NodeCallError::from_status(&status)),
                    Err(_) => Err(NodeCallError {
                        outcome: NodeOutcome::Timeout,
                        reason: "node did not answer in time".to_owned(),
                    }),
                };
                match result {
                    Err(e) if e.outcome.retryable() && attempt < 2 => continue,
                    // Where it was looked for: what an operator checks first.
                    Err(mut e)
                        if matches!(e.outcome, NodeOutcome::Unavailable | NodeOutcome::Timeout) =>
                    {
                        e.reason = format!("{} at {}: {}", node.id, node.address, e.reason);
                        break Err(e);
                    }
                    other => break other,
                }
            };
            NodeReply {
                node: node.id.clone(),
                result,
            }
        }
    });
    join_all(calls).await
}
