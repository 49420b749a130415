//! Lookups: per node a blinded OPRF round trip for that node's tags, then
//! the encrypted tag bits, in chunks that fit one request; the combined
//! answer is decrypted here and nowhere else.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fedq_crypto::lookup::{packed, CountEncoding, EncryptedCount, EncryptedTag};
use fedq_crypto::oprf::{BlindedItems, NodeOprfPublicKey};
use fedq_crypto::{Fingerprint, IdentifierKind, NormalForm, Tag};
use fedq_proto::outcome::{Disclosure, NodeOutcome};
use fedq_proto::v1::{self};
use rayon::prelude::*;

use crate::report::*;
use crate::requester::{status_error, LookupKeys, Requester};

impl Requester {
    /// Looks up identifiers across the federation (combined answer only).
    pub async fn lookup(
        &mut self,
        inputs: &[LookupInput],
        purpose: &str,
        case_reference: &str,
    ) -> anyhow::Result<LookupReport> {
        self.lookup_with(
            inputs,
            &LookupOptions {
                purpose: purpose.to_owned(),
                case_reference: case_reference.to_owned(),
                ..LookupOptions::default()
            },
        )
        .await
    }

    /// Looks up identifiers across the federation; with `options.disclose`,
    /// also asks each node whether it reveals its own answer.
    pub async fn lookup_with(
        &mut self,
        inputs: &[LookupInput],
        options: &LookupOptions,
    ) -> anyhow::Result<LookupReport> {
        if inputs.is_empty() {
            bail!("nothing to look up");
        }
        let mut problems = Vec::new();
        let mut normals = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            match fedq_crypto::normalise(input.kind, &input.value) {
                Ok(normal) => normals.push(normal),
                Err(e) => problems.push(format!("item {} ({}): {e}", i + 1, input.kind)),
            }
        }
        if !problems.is_empty() {
            bail!(
                "invalid identifiers, nothing was sent:\n  {}",
                problems.join("\n  ")
            );
        }
        let keys = self.load_lookup_keys()?;
        let tag_bits = self.config.federation.config.fingerprint.tag_bits();
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
        // Every node gets its own encrypted tags: as many items per request
        // as the message limit holds for this federation's size and tag width
        // (a federation file where not even one fits is refused on loading).
        let chunk_len = if keys.expansion.is_some() {
            fedq_proto::limits::compressed_items_per_request(tag_bits, node_ids.len(), keys.packed)
        } else {
            fedq_proto::limits::items_per_request(tag_bits, node_ids.len())
        }
        .max(1);
        let mut stats = LookupStats {
            nodes_asked: node_ids.len(),
            ..LookupStats::default()
        };
        let round_trip = Instant::now();
        let mut counts = Vec::with_capacity(inputs.len());
        let mut answered_per_item = Vec::with_capacity(inputs.len());
        let mut held_by: Vec<Vec<String>> = vec![Vec::new(); inputs.len()];
        let mut nodes: Vec<NodeResult> = Vec::new();
        let mut query_ids = Vec::new();
        for (chunk_index, chunk) in normals.chunks(chunk_len).enumerate() {
            let first = chunk_index * chunk_len;
            let kinds: Vec<IdentifierKind> = inputs[first..first + chunk.len()]
                .iter()
                .map(|i| i.kind)
                .collect();
            let label = if normals.len() > chunk_len {
                format!(
                    "items {}-{} of {}: ",
                    first + 1,
                    first + chunk.len(),
                    normals.len()
                )
            } else {
                String::new()
            };
            let chunk = ChunkInput {
                label,
                kinds: &kinds,
                normals: chunk,
                context: &context,
                node_ids: &node_ids,
            };
            let answered = self
                .lookup_chunk(&chunk, options, &keys, &mut stats)
                .await?;
            let answered_here = answered.answered();
            if !answered.query_id.is_empty() {
                query_ids.push(answered.query_id.clone());
            }
            for (i, count) in answered.counts.into_iter().enumerate() {
                counts.push(count);
                answered_per_item.push(answered_here);
                held_by[first + i] = answered.held_by[i].clone();
            }
            merge_node_statuses(&mut nodes, &mut stats, answered.statuses);
        }
        stats.round_trip = round_trip.elapsed();
        // The federation file's order, whatever order the answers came in.
        nodes.sort_by_key(|n| node_ids.iter().position(|id| *id == n.node));
        if counts.len() != inputs.len() {
            bail!(
                "the coordinator answered {} items out of {}",
                counts.len(),
                inputs.len()
            );
        }
        let of = u32::try_from(node_ids.len()).unwrap_or(u32::MAX);
        let results = inputs
            .iter()
            .zip(counts)
            .zip(answered_per_item)
            .zip(held_by)
            .map(|(((input, count), answered), held_by)| ItemResult {
                kind: input.kind.as_str().to_owned(),
                value: input.value.clone(),
                hit: count > 0,
                answer: ItemAnswer::of(count, answered, of),
                jurisdictions: count,
                answered,
                of,
                held_by: options.disclose.as_ref().map(|_| held_by),
            })
            .collect();
        Ok(LookupReport {
            query_ids,
            results,
            nodes,
            stats,
        })
    }
}

/// One chunk of a lookup, as the client holds it.
pub(crate) struct ChunkInput<'a> {
    /// "items 1-40 of 80: " when the batch takes several requests.
    pub(crate) label: String,
    pub(crate) kinds: &'a [IdentifierKind],
    pub(crate) normals: &'a [NormalForm],
    pub(crate) context: &'a v1::RequestContext,
    pub(crate) node_ids: &'a [String],
}

/// What one chunk's lookup brought back.
struct ChunkAnswer {
    /// The coordinator's id of the chunk's lookup (empty if none was sent).
    query_id: String,
    counts: Vec<u32>,
    held_by: Vec<Vec<String>>,
    statuses: Vec<v1::NodeStatus>,
}

impl ChunkAnswer {
    /// Nodes whose answers are in `counts`.
    fn answered(&self) -> u32 {
        let ok: std::collections::BTreeSet<&str> = self
            .statuses
            .iter()
            .filter(|s| s.outcome() == NodeOutcome::Ok)
            .map(|s| s.node.as_str())
            .collect();
        u32::try_from(ok.len()).unwrap_or(u32::MAX)
    }
}

/// A node's fingerprints of the chunk's items, from its OPRF.
pub(crate) struct NodeTags {
    pub(crate) node: String,
    pub(crate) key_id: String,
    pub(crate) fingerprints: Vec<Fingerprint>,
}

/// Times a lookup chunk is tried when a node has rotated its OPRF key between
/// the OPRF round trip and the lookup.
const STALE_KEY_ATTEMPTS: usize = 3;

impl Requester {
    /// Looks up one chunk: OPRF round trip, per-node encryption, lookup. A
    /// node answering `stale` (it rotated its OPRF key meanwhile) makes the
    /// whole chunk start again with fresh tags; the other nodes' answers of
    /// the first try are discarded, never added twice.
    async fn lookup_chunk(
        &mut self,
        chunk: &ChunkInput<'_>,
        options: &LookupOptions,
        keys: &LookupKeys,
        stats: &mut LookupStats,
    ) -> anyhow::Result<ChunkAnswer> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            options.progress.step(&format!(
                "{}asking {} node(s) for the fingerprints of {} item(s)",
                chunk.label,
                chunk.node_ids.len(),
                chunk.normals.len()
            ));
            let oprf_started = Instant::now();
            let (tags, mut failed) = self.oprf(chunk).await?;
            stats.oprf += oprf_started.elapsed();
            let mut answer = if tags.is_empty() {
                ChunkAnswer {
                    query_id: String::new(),
                    counts: vec![0; chunk.normals.len()],
                    held_by: vec![Vec::new(); chunk.normals.len()],
                    statuses: Vec::new(),
                }
            } else {
                self.lookup_tags(chunk, &tags, options, keys, stats).await?
            };
            let stale = answer
                .statuses
                .iter()
                .any(|s| s.outcome() == NodeOutcome::Stale);
            if stale && attempt < STALE_KEY_ATTEMPTS {
                continue;
            }
            answer.statuses.append(&mut failed);
            return Ok(answer);
        }
    }

    /// Obtains every node's fingerprints of the chunk's items by blinded
    /// evaluation (fresh blinds per node, so nodes cannot link their
    /// requests by the elements). Returns the nodes that answered with a
    /// valid proof, and the status of those that did not.
    pub(crate) async fn oprf(
        &mut self,
        chunk: &ChunkInput<'_>,
    ) -> anyhow::Result<(Vec<NodeTags>, Vec<v1::NodeStatus>)> {
        let items: Vec<(IdentifierKind, &NormalForm)> =
            chunk.kinds.iter().copied().zip(chunk.normals).collect();
        let kinds: Vec<i32> = chunk.kinds.iter().map(|k| i32::from(k.code())).collect();
        let mut states = Vec::with_capacity(chunk.node_ids.len());
        let mut batches = Vec::with_capacity(chunk.node_ids.len());
        for node in chunk.node_ids {
            let (state, wire) = BlindedItems::blind(&items)?;
            let blinded: Vec<Vec<u8>> = wire.iter().map(|e| e.to_vec()).collect();
            let envelope = self.config.sign(
                "oprf",
                chunk.context,
                fedq_proto::payload::oprf_payload_hash(node, &kinds, &blinded),
            )?;
            states.push((node.clone(), state));
            batches.push(v1::OprfNodeBatch {
                node: node.clone(),
                envelope: Some(envelope),
                blinded,
            });
        }
        let response = self
            .client
            .oprf(v1::OprfRequest {
                context: Some(chunk.context.clone()),
                kinds,
                nodes: batches,
                key: v1::OprfKey::Lookup.into(),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        let mut tags = Vec::new();
        let mut failed = Vec::new();
        for result in response.nodes {
            let status = result.status.unwrap_or_default();
            let Some(index) = states.iter().position(|(node, _)| *node == status.node) else {
                continue;
            };
            let (node, state) = states.swap_remove(index);
            let evaluation = match (status.outcome(), result.response) {
                (NodeOutcome::Ok, Some(response)) => {
                    finalize(state, &response, self.config.federation.node(&node))
                }
                _ => Err(status.reason.clone()),
            };
            match evaluation {
                Ok((key_id, fingerprints)) => tags.push(NodeTags {
                    node,
                    key_id,
                    fingerprints,
                }),
                Err(reason) => failed.push(v1::NodeStatus {
                    node,
                    outcome: match status.outcome() {
                        NodeOutcome::Ok => NodeOutcome::Invalid,
                        other => other,
                    }
                    .into(),
                    reason,
                    ..Default::default()
                }),
            }
        }
        for (node, _) in states {
            failed.push(v1::NodeStatus {
                node,
                outcome: NodeOutcome::Error.into(),
                reason: "the coordinator did not pass on the request for this node's fingerprints"
                    .to_owned(),
                ..Default::default()
            });
        }
        Ok((tags, failed))
    }

    /// Encrypts every node's tags and sends the lookup.
    async fn lookup_tags(
        &mut self,
        chunk: &ChunkInput<'_>,
        tags: &[NodeTags],
        options: &LookupOptions,
        keys: &LookupKeys,
        stats: &mut LookupStats,
    ) -> anyhow::Result<ChunkAnswer> {
        let (secret, public) = (&keys.secret, &keys.public);
        let params = self.config.federation.config.fingerprint;
        options.progress.step(&format!(
            "{}encrypting {} item(s) for {} node(s)",
            chunk.label,
            chunk.normals.len(),
            tags.len()
        ));
        let started = Instant::now();
        let tag_bits = params.tag_bits();
        let per_node: Vec<Vec<v1::LookupItem>> = tags
            .iter()
            .map(|node| {
                let node_tags: Vec<Tag> =
                    node.fingerprints.iter().map(|fp| fp.tag(params)).collect();
                // With an expansion key: packed groups (format 4) where the
                // federation packs, single items compressed (format 3);
                // without, format 2.
                let encrypted: Vec<Vec<u8>> = if keys.expansion.is_some() {
                    packed::encrypt_items(secret, &node_tags, tag_bits, keys.packed)
                } else {
                    node_tags
                        .par_iter()
                        .map(|&tag| EncryptedTag::encrypt(secret, tag, tag_bits).to_bytes())
                        .collect()
                };
                chunk
                    .kinds
                    .iter()
                    .zip(&node.fingerprints)
                    .zip(encrypted)
                    .map(|((kind, fp), encrypted_tag)| v1::LookupItem {
                        kind: i32::from(kind.code()),
                        bucket: fp.bucket(params).0,
                        encrypted_tag,
                    })
                    .collect()
            })
            .collect();
        stats.encrypt += started.elapsed();
        let authorization = options.disclose.clone().unwrap_or_default();
        let key_id = public.id().as_str().to_owned();
        let expansion_key_id = keys
            .expansion
            .as_ref()
            .map(|id| id.as_str().to_owned())
            .unwrap_or_default();
        let mut shares = Vec::with_capacity(tags.len());
        for (node, items) in tags.iter().zip(per_node) {
            stats.bytes_up += items.iter().map(|i| i.encrypted_tag.len()).sum::<usize>();
            let envelope = self.config.sign(
                "lookup",
                chunk.context,
                fedq_proto::payload::lookup_payload_hash(
                    &node.node,
                    (&key_id, &expansion_key_id),
                    &items,
                    options.disclose.is_some(),
                    &authorization,
                    &node.key_id,
                ),
            )?;
            shares.push(v1::NodeItems {
                node: node.node.clone(),
                envelope: Some(envelope),
                oprf_key_id: node.key_id.clone(),
                items,
            });
        }
        options.progress.step(&format!(
            "{}waiting for {} node(s) to compare under encryption",
            chunk.label,
            tags.len()
        ));
        let response = self
            .client
            .lookup(v1::LookupRequest {
                key_id,
                context: Some(chunk.context.clone()),
                disclose: options.disclose.is_some(),
                authorization,
                nodes: shares,
                expansion_key_id,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        let items = chunk.normals.len();
        if response.answers.len() != items {
            bail!(
                "the coordinator answered {} items out of {items}",
                response.answers.len()
            );
        }
        // Every node signed for adds its answer's encoding of the count, sized
        // by the envelope's audience: all of them, answered or not.
        let encoding = CountEncoding::for_nodes(chunk.node_ids.len())?;
        let mut counts = Vec::with_capacity(items);
        let decode = |answer: &[u8]| -> anyhow::Result<EncryptedCount> {
            let count = EncryptedCount::from_bytes(answer)?;
            count.check_encoding(encoding).context(
                "an answer was encoded for a federation of another size than this \
                 federation file names: its count would be wrong",
            )?;
            Ok(count)
        };
        for answer in &response.answers {
            stats.bytes_down += answer.len();
            counts.push(decode(answer)?.decrypt(secret, encoding));
        }
        let mut held_by = vec![Vec::new(); items];
        for revealed in &response.disclosed {
            if revealed.answers.len() != items {
                bail!("node {} disclosed a wrong number of answers", revealed.node);
            }
            for (i, answer) in revealed.answers.iter().enumerate() {
                if decode(answer)?.decrypt(secret, encoding) > 0 {
                    held_by[i].push(revealed.node.clone());
                }
            }
        }
        // Nodes left out of the lookup (their OPRF failed) are reported by
        // the caller with the OPRF's status, not the coordinator's "nothing
        // for this node".
        let statuses = response
            .nodes
            .into_iter()
            .filter(|s| tags.iter().any(|t| t.node == s.node))
            .collect();
        Ok(ChunkAnswer {
            query_id: response.query_id,
            counts,
            held_by,
            statuses,
        })
    }
}

/// Checks a node's OPRF answer against the public key it names, which the
/// federation file must pin for `entry` if it pins any, and unblinds it; the
/// error is a reason fit for the node's status.
fn finalize(
    state: BlindedItems,
    response: &v1::NodeOprfResponse,
    entry: Option<&fedq_proto::federation::NodeEntry>,
) -> Result<(String, Vec<Fingerprint>), String> {
    let public = NodeOprfPublicKey::from_bytes(&response.public_key)
        .map_err(|e| format!("the node's fingerprint key: {e}"))?;
    let pinned = entry.is_some_and(|entry| entry.admits_oprf_key(&public.to_bytes()));
    if !pinned {
        return Err(format!(
            "the node's fingerprint key {} is not one federation.toml pins for it \
             (oprf_keys): refused, whoever answered",
            public.key_id()
        ));
    }
    let key_id = public.key_id().to_string();
    if key_id != response.key_id {
        return Err("the node's fingerprint key id does not match its key".to_owned());
    }
    let fingerprints = state
        .finalize(&public, &response.evaluated, &response.proof)
        .map_err(|e| format!("the node's fingerprint answer does not prove its key: {e}"))?;
    Ok((key_id, fingerprints))
}

fn merge_node_statuses(
    nodes: &mut Vec<NodeResult>,
    stats: &mut LookupStats,
    statuses: Vec<v1::NodeStatus>,
) {
    for status in statuses {
        let compute = Duration::from_micros(status.compute_micros);
        match stats
            .node_compute
            .iter_mut()
            .find(|(n, _)| *n == status.node)
        {
            Some((_, total)) => *total += compute,
            None => stats.node_compute.push((status.node.clone(), compute)),
        }
        match nodes.iter_mut().find(|n| n.node == status.node) {
            // A node that failed any part of the lookup is reported as failed.
            Some(existing)
                if existing.status == NodeOutcome::Ok && status.outcome() != NodeOutcome::Ok =>
            {
                existing.status = status.outcome();
                existing.reason = status.reason;
            }
            // A node that withheld any part withheld the disclosure.
            Some(existing) if status.disclosure() == Disclosure::Withheld => {
                existing.disclosure = Disclosure::Withheld;
            }
            Some(_) => {}
            None => nodes.push(NodeResult {
                status: status.outcome(),
                disclosure: status.disclosure(),
                node: status.node,
                reason: status.reason,
            }),
        }
    }
}
