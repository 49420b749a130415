//! Watches from the requester's side: per node the bucket and encrypted tag
//! a lookup would send, registered once; the alerts they raise are
//! decrypted here and nowhere else.

use anyhow::{bail, Context};
use fedq_crypto::lookup::EncryptedTag;
use fedq_crypto::IdentifierKind;
use fedq_proto::outcome::NodeOutcome;
use fedq_proto::v1;

use crate::lookup::ChunkInput;
use crate::report::{LookupInput, NodeResult};
use crate::requester::{status_error, Requester};

/// What a watch states besides the identifier.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Purpose, checked by every node's policy (as a lookup's).
    pub purpose: String,
    /// Case reference.
    pub case_reference: String,
    /// Legal basis (else `legal_basis` of client.toml).
    pub legal_basis: Option<String>,
    /// End of the watch, Unix seconds.
    pub until: i64,
}

/// A registered watch and how each node took it.
#[derive(Debug, Clone)]
pub struct WatchAdded {
    /// The coordinator's id (empty if no node took it).
    pub watch_id: String,
    /// Per node: ok, or why not (refused by its policy, unreachable).
    pub nodes: Vec<NodeResult>,
}

impl Requester {
    /// Registers a watch on one identifier at every node.
    pub async fn watch_add(
        &mut self,
        input: &LookupInput,
        options: &WatchOptions,
    ) -> anyhow::Result<WatchAdded> {
        let normal = fedq_crypto::normalise(input.kind, &input.value)
            .with_context(|| format!("invalid {} identifier, nothing was sent", input.kind))?;
        let (secret, public) = self.load_keys()?;
        let context = v1::RequestContext {
            purpose: options.purpose.clone(),
            case_reference: options.case_reference.clone(),
            legal_basis: options.legal_basis.clone().unwrap_or_default(),
            envelope: None,
        };
        let node_ids: Vec<String> = self
            .config
            .federation
            .nodes
            .iter()
            .map(|n| n.id.clone())
            .collect();
        let kinds = [input.kind];
        let normals = [normal];
        let chunk = ChunkInput {
            label: String::new(),
            kinds: &kinds,
            normals: &normals,
            context: &context,
            node_ids: &node_ids,
        };
        let (tags, failed) = self.oprf(&chunk).await?;
        let params = self.config.federation.config.fingerprint;
        let key_id = public.id().as_str().to_owned();
        let mut shares = Vec::with_capacity(tags.len());
        for node in &tags {
            let fingerprint = node
                .fingerprints
                .first()
                .context("a node's OPRF answered no fingerprint")?;
            let item = v1::LookupItem {
                kind: i32::from(input.kind.code()),
                bucket: fingerprint.bucket(params).0,
                encrypted_tag: EncryptedTag::encrypt(
                    &secret,
                    fingerprint.tag(params),
                    params.tag_bits(),
                )
                .to_bytes(),
            };
            let envelope = self.config.sign(
                "watch",
                &context,
                fedq_proto::payload::watch_payload_hash(
                    &node.node,
                    &key_id,
                    &item,
                    &node.key_id,
                    options.until,
                ),
            )?;
            shares.push(v1::NodeItems {
                node: node.node.clone(),
                envelope: Some(envelope),
                oprf_key_id: node.key_id.clone(),
                items: vec![item],
            });
        }
        let mut nodes: Vec<NodeResult> = failed.into_iter().map(node_result).collect();
        if shares.is_empty() {
            return Ok(WatchAdded {
                watch_id: String::new(),
                nodes,
            });
        }
        let response = self
            .client
            .watch_add(v1::WatchAddRequest {
                key_id,
                context: Some(context),
                until: options.until,
                nodes: shares,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        nodes.extend(
            response
                .nodes
                .into_iter()
                .filter(|s| tags.iter().any(|t| t.node == s.node))
                .map(node_result),
        );
        nodes.sort_by_key(|n| node_ids.iter().position(|id| *id == n.node));
        let taken = nodes.iter().any(|n| n.status == NodeOutcome::Ok);
        Ok(WatchAdded {
            watch_id: if taken {
                response.watch_id
            } else {
                String::new()
            },
            nodes,
        })
    }

    /// The requester's live watches.
    pub async fn watch_list(&mut self) -> anyhow::Result<Vec<v1::WatchInfo>> {
        Ok(self
            .client
            .watch_list(v1::WatchListRequest {})
            .await
            .map_err(status_error)?
            .into_inner()
            .watches)
    }

    /// Cancels a watch everywhere; each node's status.
    pub async fn watch_cancel(&mut self, id: &str) -> anyhow::Result<Vec<NodeResult>> {
        let nodes = self
            .client
            .watch_cancel(v1::WatchCancelRequest {
                watch_id: id.to_owned(),
            })
            .await
            .map_err(status_error)?
            .into_inner()
            .nodes;
        if nodes.is_empty() {
            bail!("the coordinator reached no node");
        }
        Ok(nodes.into_iter().map(node_result).collect())
    }
}

fn node_result(status: v1::NodeStatus) -> NodeResult {
    NodeResult {
        status: status.outcome(),
        disclosure: status.disclosure(),
        node: status.node,
        reason: status.reason,
    }
}

/// The name of a watched kind, from its wire code.
pub fn kind_name(code: i32) -> &'static str {
    u8::try_from(code)
        .ok()
        .and_then(IdentifierKind::from_code)
        .map_or("unknown", IdentifierKind::as_str)
}
