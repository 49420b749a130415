//! Watches: registered at every node (each its own share, as a lookup's),
//! their results collected from the nodes and added up per watch and round,
//! kept as encrypted alerts until the watch ends.

use std::collections::HashMap;
use std::sync::Arc;

use fedq_crypto::lookup::EncryptedCount;
use fedq_proto::outcome::NodeOutcome;
use fedq_proto::v1;
use tracing::{info, instrument};

use crate::fanout::fan_out;
use crate::watch::WatchInfo;

use super::{audit_context, AuditFacts, CoordinatorError, CoordinatorService};

impl CoordinatorService {
    /// Registers a watch at every node; kept if at least one node took it
    /// (the others are reported with their status). Audited.
    #[instrument(skip_all)]
    pub async fn watch_add(
        &self,
        caller: &str,
        request: v1::WatchAddRequest,
    ) -> Result<v1::WatchAddResponse, CoordinatorError> {
        let context = audit_context(
            request.context.as_ref(),
            request.nodes.first().and_then(|n| n.envelope.as_ref()),
        );
        let facts = AuditFacts::of(caller, Some(&context), "watch");
        let detail = format!("until={}", request.until);
        let work = self.watch_fan_out(caller, request);
        self.audited(facts, detail, work, |response| {
            let ok = response
                .nodes
                .iter()
                .filter(|n| n.outcome() == NodeOutcome::Ok)
                .count();
            (response.watch_id.clone(), ok, response.nodes.len())
        })
        .await
    }

    async fn watch_fan_out(
        &self,
        caller: &str,
        request: v1::WatchAddRequest,
    ) -> Result<v1::WatchAddResponse, CoordinatorError> {
        self.requester(caller)?;
        self.signed_by_caller(caller, request.nodes.iter().map(|n| n.envelope.as_ref()))?;
        let (key_id, public_key) = self.registered_key(caller, &request.key_id)?;
        let shares = self.per_node(request.nodes, |n| &n.node, |n| n.items.len(), 1)?;
        let kind = shares
            .values()
            .next()
            .and_then(|share| share.items.first())
            .map(|item| item.kind)
            .unwrap_or_default();
        let watch_id = format!("{:016x}", rand::random::<u64>());
        // Recorded before any node has it: results a node sends while the
        // others still answer find their owner.
        self.watches
            .add(
                caller,
                &WatchInfo {
                    id: watch_id.clone(),
                    kind,
                    registered_at: chrono::Utc::now().timestamp(),
                    until: request.until,
                },
            )
            .map_err(|e| CoordinatorError::Store(e.to_string()))?;
        let template = Arc::new(v1::NodeWatchAddRequest {
            query_id: watch_id.clone(),
            requester: caller.to_owned(),
            key_id: key_id.as_str().to_owned(),
            public_key,
            context: request.context,
            item: None,
            oprf_key_id: String::new(),
            watch_id: watch_id.clone(),
            until: request.until,
        });
        let outcomes = fan_out(&self.nodes, self.config.node_timeout, |mut node| {
            let share = shares.get(&node.id).cloned();
            let template = Arc::clone(&template);
            async move {
                let share = share.ok_or_else(|| {
                    tonic::Status::invalid_argument("the request has nothing for this node")
                })?;
                let mut request = (*template).clone();
                let mut context = request.context.take().unwrap_or_default();
                context.envelope = share.envelope;
                request.context = Some(context);
                request.item = share.items.into_iter().next();
                request.oprf_key_id = share.oprf_key_id;
                node.client.watch_add(request).await.map(drop)
            }
        })
        .await;
        let nodes: Vec<v1::NodeStatus> = super::statuses(outcomes);
        if !nodes.iter().any(|n| n.outcome() == NodeOutcome::Ok) {
            // A node that did not answer may have stored it all the same.
            let maybe_held = nodes
                .iter()
                .any(|n| matches!(n.outcome(), NodeOutcome::Timeout | NodeOutcome::Unavailable));
            self.watches
                .cancel(caller, &watch_id, maybe_held)
                .map_err(|e| CoordinatorError::Store(e.to_string()))?;
        }
        info!(
            nodes_ok = nodes
                .iter()
                .filter(|n| n.outcome() == NodeOutcome::Ok)
                .count(),
            "watch registered"
        );
        Ok(v1::WatchAddResponse { watch_id, nodes })
    }

    /// The caller's live watches.
    pub fn watch_list(&self, caller: &str) -> Result<Vec<WatchInfo>, CoordinatorError> {
        self.requester(caller)?;
        self.watches
            .list(caller, chrono::Utc::now().timestamp())
            .map_err(|e| CoordinatorError::Store(e.to_string()))
    }

    /// Cancels one of the caller's watches at every node (which delete it
    /// with its results) and here (with its alerts). Audited.
    pub async fn watch_cancel(
        &self,
        caller: &str,
        id: &str,
    ) -> Result<Vec<v1::NodeStatus>, CoordinatorError> {
        let facts = AuditFacts::of(caller, None, "watch-cancel");
        let detail = format!("watch={}", id.chars().take(64).collect::<String>());
        let result = self.watch_cancel_everywhere(caller, id).await;
        self.audit(
            facts,
            result.as_ref().map(|_| (String::new(), detail.clone())),
            &detail,
        )?;
        result
    }

    async fn watch_cancel_everywhere(
        &self,
        caller: &str,
        id: &str,
    ) -> Result<Vec<v1::NodeStatus>, CoordinatorError> {
        self.requester(caller)?;
        let owned = self
            .watches
            .owns(caller, id, chrono::Utc::now().timestamp())
            .map_err(|e| CoordinatorError::Store(e.to_string()))?;
        if !owned {
            return Err(CoordinatorError::NotFound(format!(
                "no live watch {} of yours",
                fedq_audit::request_name(id)
            )));
        }
        let outcomes = cancel_everywhere(&self.nodes, self.config.node_timeout, id, caller).await;
        self.watches
            .cancel(caller, id, true)
            .map_err(|e| CoordinatorError::Store(e.to_string()))?;
        Ok(super::statuses(outcomes))
    }

    /// One collection round: every node's new results, added up per watch
    /// (one alert per watch and round: how many of the nodes that evaluated
    /// it hold the identifier among their new records, not which). Returns
    /// how many alerts were raised.
    pub async fn collect_watch_results(&self) -> usize {
        let cursors: HashMap<String, u64> = match self.watches.cursors() {
            Ok(cursors) => cursors,
            Err(e) => {
                tracing::warn!(error = %e, "watch cursors unreadable; collection skipped");
                return 0;
            }
        };
        let outcomes = fan_out(&self.nodes, self.config.node_timeout, |mut node| {
            let after = cursors.get(&node.id).copied().unwrap_or(0);
            async move {
                Ok(node
                    .client
                    .watch_results(v1::NodeWatchResultsRequest { after })
                    .await?
                    .into_inner())
            }
        })
        .await;
        let mut sums: HashMap<String, (EncryptedCount, u32)> = HashMap::new();
        // Which nodes still evaluate each watch (one that is cancelled here
        // is cancelled there again).
        let mut holders: HashMap<String, Vec<String>> = HashMap::new();
        let mut advanced = Vec::new();
        for outcome in outcomes {
            let Ok(response) = outcome.result else {
                continue;
            };
            let mut last = None;
            let mut this_round = std::collections::HashSet::new();
            for result in response.results {
                // One result per node and watch in a round: the sum then
                // counts at most every node once, within the count's
                // encoding. A second one waits for the next round.
                if !this_round.insert(result.watch_id.clone()) {
                    break;
                }
                last = Some(result.seq);
                holders
                    .entry(result.watch_id.clone())
                    .or_default()
                    .push(outcome.node.clone());
                // A malformed result is left out of the sum, never added.
                let Ok(count) = EncryptedCount::from_bytes(&result.answer) else {
                    continue;
                };
                let (sum, nodes) = sums
                    .entry(result.watch_id)
                    .or_insert_with(|| (EncryptedCount::zero(), 0));
                if sum.adds_to(&count) {
                    sum.add_assign(&count);
                    *nodes += 1;
                }
            }
            if let Some(last) = last {
                advanced.push((outcome.node, last));
            }
        }
        let now = chrono::Utc::now().timestamp();
        let mut raised = 0;
        let mut last_id = None;
        let mut alerted = std::collections::HashSet::new();
        for (watch_id, (sum, nodes)) in sums {
            match self.watches.raise(&watch_id, &sum.to_bytes(), nodes, now) {
                Ok(Some(id)) => {
                    raised += 1;
                    last_id = last_id.max(Some(id));
                    alerted.insert(watch_id);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "a watch alert could not be stored"),
            }
        }
        let mut missed = Vec::new();
        for (watch_id, nodes) in holders {
            if alerted.contains(&watch_id) {
                continue;
            }
            match self.watches.cancelled_owner(&watch_id, now) {
                Ok(Some(requester)) => missed.push((watch_id, requester, nodes)),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "cancelled watches unreadable"),
            }
        }
        // Cursors move past every result read: one the store could not keep
        // is lost (and logged above), never raised twice.
        if let Err(e) = self.watches.set_cursors(&advanced) {
            tracing::warn!(error = %e, "watch cursors not saved; the round may be raised again");
        }
        if let Some(id) = last_id {
            self.alerts_raised.send_replace(id);
        }
        self.resend_cancellations(missed);
        raised
    }

    /// Tells nodes again that watches were cancelled: they were unreachable
    /// when they were, and their results show they still evaluate them.
    /// In the background, one bounded batch at a time, all at once within
    /// it: a node that sends results for cancelled watches and then lets
    /// their cancellations hang delays neither collection nor the others. A
    /// node that misses this too is told after its next result.
    fn resend_cancellations(&self, mut missed: Vec<(String, String, Vec<String>)>) {
        if missed.is_empty() {
            return;
        }
        let Ok(permit) = Arc::clone(&self.resending_cancellations).try_acquire_owned() else {
            return;
        };
        missed.truncate(MAX_RESENT_CANCELLATIONS);
        let nodes = self.nodes.clone();
        let timeout = self.config.node_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let sends = missed.iter().map(|(watch_id, requester, holders)| {
                let targets: Vec<_> = nodes
                    .iter()
                    .filter(|n| holders.contains(&n.id))
                    .cloned()
                    .collect();
                async move { cancel_everywhere(&targets, timeout, watch_id, requester).await }
            });
            for outcome in futures::future::join_all(sends).await.into_iter().flatten() {
                match outcome.result {
                    Ok(()) => {
                        tracing::info!(node = %outcome.node, "a missed watch cancellation delivered");
                    }
                    Err(e) => tracing::warn!(
                        node = %outcome.node,
                        reason = %e.reason,
                        "a missed watch cancellation failed again; resent after the node's next result"
                    ),
                }
            }
        });
    }

    /// Collects the nodes' watch results every `interval` while serving.
    pub async fn collect_watch_results_every(self: Arc<Self>, interval: std::time::Duration) {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            self.collect_watch_results().await;
        }
    }
}

/// Most missed cancellations resent after one collection; the rest go after
/// the nodes' next results.
const MAX_RESENT_CANCELLATIONS: usize = 256;

/// Cancels the requester's watch at each of `nodes`.
async fn cancel_everywhere(
    nodes: &[crate::node_client::NodeHandle],
    timeout: std::time::Duration,
    watch_id: &str,
    requester: &str,
) -> Vec<crate::fanout::NodeReply<()>> {
    fan_out(nodes, timeout, |mut node| {
        let request = v1::NodeWatchCancelRequest {
            watch_id: watch_id.to_owned(),
            requester: requester.to_owned(),
        };
        async move { node.client.watch_cancel(request).await.map(drop) }
    })
    .await
}
