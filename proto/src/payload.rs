//! What a requester signs: the hash of each query as the node receives it
//! (the envelope's `payload_hash`), and the envelope's wire form. The client
//! computes these before signing and every node recomputes them, so they live
//! here, once, beside the messages they cover.

use fedq_crypto::envelope::{PayloadHasher, SignedEnvelope};

use crate::v1;

/// The hash a lookup's envelope must carry: the one node it is for, key id,
/// items, disclosure request, the OPRF key the tags were derived under and,
/// for compressed tags, the expansion key's id (everything that changes what
/// the node does). Without an expansion key the hash is what it was before
/// compressed tags existed.
pub fn lookup_payload_hash(
    node: &str,
    (key_id, expansion_key_id): (&str, &str),
    items: &[v1::LookupItem],
    disclose: bool,
    authorization: &str,
    oprf_key_id: &str,
) -> String {
    let mut hasher = PayloadHasher::new("lookup");
    hasher.text(node).text(key_id).number(items.len() as u64);
    for item in items {
        hasher
            .number(item.kind as u64)
            .number(u64::from(item.bucket))
            .bytes(&item.encrypted_tag);
    }
    hasher
        .number(u64::from(disclose))
        .text(authorization)
        .text(oprf_key_id);
    if !expansion_key_id.is_empty() {
        hasher.text(expansion_key_id);
    }
    hasher.finish()
}

/// [`lookup_payload_hash`] of a node's lookup request as it travels.
pub fn node_lookup_payload_hash(node: &str, request: &v1::NodeLookupRequest) -> String {
    lookup_payload_hash(
        node,
        (&request.key_id, &request.expansion_key_id),
        &request.items,
        request.disclose,
        &request.authorization,
        &request.oprf_key_id,
    )
}

/// The hash an OPRF request's envelope must carry: the one node it is for,
/// declared kinds and blinded elements, in order.
pub fn oprf_payload_hash(node: &str, kinds: &[i32], blinded: &[Vec<u8>]) -> String {
    blinded_payload_hash("oprf", node, kinds, blinded)
}

/// The hash a deconfliction OPRF request's envelope (action `deconflict`)
/// must carry: as [`oprf_payload_hash`], under its own domain, so that an
/// envelope for one key can never be spent on the other.
pub fn deconflict_oprf_payload_hash(node: &str, kinds: &[i32], blinded: &[Vec<u8>]) -> String {
    blinded_payload_hash("deconflict", node, kinds, blinded)
}

fn blinded_payload_hash(domain: &str, node: &str, kinds: &[i32], blinded: &[Vec<u8>]) -> String {
    let mut hasher = PayloadHasher::new(domain);
    hasher.text(node).number(kinds.len() as u64);
    for kind in kinds {
        hasher.number(*kind as u64);
    }
    hasher.number(blinded.len() as u64);
    for element in blinded {
        hasher.bytes(element);
    }
    hasher.finish()
}

/// The hash a watch's envelope (action `watch`) must carry: the one node it
/// is for, key id, the item, the OPRF key its tag was derived under, and the
/// watch's end.
pub fn watch_payload_hash(
    node: &str,
    key_id: &str,
    item: &v1::LookupItem,
    oprf_key_id: &str,
    until: i64,
) -> String {
    let mut hasher = PayloadHasher::new("watch");
    hasher
        .text(node)
        .text(key_id)
        .number(item.kind as u64)
        .number(u64::from(item.bucket))
        .bytes(&item.encrypted_tag)
        .text(oprf_key_id)
        .number(until as u64);
    hasher.finish()
}

/// The hash a deconfliction registration's envelope (action
/// `deconflict-register`) must carry: everything the coordinator keeps.
pub fn deconflict_register_payload_hash(request: &v1::DeconflictRegisterRequest) -> String {
    let mut hasher = PayloadHasher::new("deconflict-register");
    hasher
        .bytes(&request.pseudonym)
        .bytes(&request.sealed_contact)
        .bytes(&request.wrapped_key)
        .number(request.until as u64);
    hasher.finish()
}

/// The hash a statistics query's envelope must carry.
pub fn stats_payload_hash(query: &v1::StatsQuery) -> String {
    let mut hasher = PayloadHasher::new("stats");
    hasher.text(&query.table).text(&query.measure);
    hasher.number(query.group_by.len() as u64);
    for g in &query.group_by {
        hasher.text(g);
    }
    hasher.number(query.filters.len() as u64);
    for f in &query.filters {
        hasher.text(f);
    }
    match query.budget {
        Some(v1::stats_query::Budget::Epsilon(e)) => hasher.text("epsilon").number(e.to_bits()),
        Some(v1::stats_query::Budget::Rho(r)) => hasher.text("rho").number(r.to_bits()),
        None => hasher.text("none"),
    };
    // Signed, so that nobody on the way turns a dry run into a charged
    // release; absent when false, so that other queries hash as before.
    if query.dry_run {
        hasher.text("dry_run");
    }
    hasher.finish()
}

/// Converts the wire envelope.
pub fn from_wire(envelope: Option<v1::SignedEnvelope>) -> SignedEnvelope {
    let envelope = envelope.unwrap_or_default();
    SignedEnvelope {
        bytes: envelope.envelope,
        signature: envelope.signature,
    }
}

/// Converts to the wire envelope.
pub fn to_wire(envelope: SignedEnvelope) -> v1::SignedEnvelope {
    v1::SignedEnvelope {
        envelope: envelope.bytes,
        signature: envelope.signature,
    }
}
