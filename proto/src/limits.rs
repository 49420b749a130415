//! Bounds on what any party accepts from another, in one place (the README's
//! "Limits" table lists them). Each is checked before the bytes or lists it
//! bounds are decoded or used.

/// Largest gRPC message any fedq service accepts: a batch of
/// [`MAX_ITEMS_PER_REQUEST`] items of ~920 KB each (encrypted tags in format
/// 1, which nodes still accept), plus room for the key.
pub const MAX_MESSAGE_BYTES: usize = 48 * 1024 * 1024;

/// Most lookup items in one request; clients split larger batches.
pub const MAX_ITEMS_PER_REQUEST: usize = 48;

/// Most nodes in a federation: the 64 whose answers the count's encoding can
/// add up (`fedq_crypto::lookup::params::MAX_NODES`). Every node gets its own
/// encrypted tags of each item (430 KB apiece with 28-bit tags), and one
/// request must carry at least one item for every node: 64 nodes fit with
/// tags of up to 41 bits, 37 with 64 (the federation file is checked).
pub const MAX_FEDERATION_NODES: usize = fedq_crypto::lookup::params::MAX_NODES;

/// How many items one lookup request to a federation of `nodes` nodes
/// carries with `tag_bits`-bit tags: each node gets its own encrypted tags of
/// every item (~24 KB per bit above the 11 low ones, as clients encode them)
/// and its own context (a signed envelope and references), all within
/// [`MAX_MESSAGE_BYTES`]; at most
/// [`MAX_ITEMS_PER_REQUEST`]. 0 when not even one item fits, or the tag width
/// is one no lookup uses.
pub fn items_per_request(tag_bits: u8, nodes: usize) -> usize {
    if tag_bits <= fedq_crypto::lookup::params::LOW_TAG_BITS || tag_bits > 64 || nodes == 0 {
        return 0;
    }
    items_fitting(
        fedq_crypto::lookup::EncryptedTag::encoded_len(tag_bits),
        nodes,
    )
}

/// [`items_per_request`] for a requester with an expansion key: with
/// `pack`, groups of packed tags (format 4, 3,421 bytes per item and node
/// with 28-bit tags) and a lone item compressed (format 3, 24,609 bytes);
/// without, every item compressed. The expansion key is not in the request.
pub fn compressed_items_per_request(tag_bits: u8, nodes: usize, pack: bool) -> usize {
    if nodes == 0 {
        return 0;
    }
    let per_node = (MAX_MESSAGE_BYTES - FRAMING) / nodes;
    // Every smaller count must fit too: a batch's last request holds fewer
    // items, and fewer can take more bytes (four items are a group and a
    // lone format 3 tag, five are two groups).
    (1..=MAX_ITEMS_PER_REQUEST)
        .take_while(|&items| {
            fedq_crypto::lookup::packed::encoded_items_len(items, tag_bits, pack)
                + items * ITEM_FRAMING
                + CONTEXT_BYTES
                <= per_node
        })
        .last()
        .unwrap_or(0)
}

fn items_fitting(tag: usize, nodes: usize) -> usize {
    let per_item = tag + ITEM_FRAMING;
    let per_node = (MAX_MESSAGE_BYTES - FRAMING) / nodes;
    (per_node.saturating_sub(CONTEXT_BYTES) / per_item).min(MAX_ITEMS_PER_REQUEST)
}

/// Room for what a lookup request holds once: its own context and key id.
const FRAMING: usize = 64 * 1024;
/// Per item and node besides the tag: kind, bucket and protobuf framing.
const ITEM_FRAMING: usize = 64;

/// Longest query id a coordinator may give (ids are 32 hex digits).
pub const MAX_QUERY_ID_BYTES: usize = 64;

/// Most OPRF elements in one request (the crypto crate's batch bound).
pub const MAX_OPRF_ELEMENTS: usize = 1024;

/// Room for a request's context: envelope (8 KiB at most), purpose, case and
/// legal-basis references, ids.
const CONTEXT_BYTES: usize = 16 * 1024;

/// Most bytes a statistics query may carry: a few names, filters and group-by
/// columns (each bounded in the node's query parser) and the context.
pub const MAX_STATS_REQUEST_BYTES: usize = 64 * 1024;

/// Most bytes an OPRF request may carry: one kind and one 32-byte element per
/// item, with protobuf framing, and the context.
pub const MAX_OPRF_REQUEST_BYTES: usize = MAX_OPRF_ELEMENTS * 48 + CONTEXT_BYTES;

/// Most bytes a key registration may carry: a public key (under 64 KiB) and
/// an expansion key for compressed and packed lookups (3,407,905 bytes; at most 4 MiB,
/// the bound each requester's one-time material is held to).
pub const MAX_REGISTER_KEY_BYTES: usize = 4 * 1024 * 1024 + 128 * 1024;

/// Most request bytes the node accepts on a gRPC path, before decoding.
/// Only lookups need megabytes; everything else fits in kilobytes.
pub fn node_request_bytes(path: &str) -> usize {
    match path.rsplit('/').next().unwrap_or_default() {
        "Lookup" => MAX_MESSAGE_BYTES,
        "Oprf" => MAX_OPRF_REQUEST_BYTES,
        "Stats" => MAX_STATS_REQUEST_BYTES,
        "WatchAdd" => MAX_WATCH_REQUEST_BYTES,
        _ => CONTEXT_BYTES,
    }
}

/// Most request bytes the coordinator accepts on a gRPC path, before decoding.
pub fn coordinator_request_bytes(path: &str) -> usize {
    match path.rsplit('/').next().unwrap_or_default() {
        "RegisterKey" => MAX_REGISTER_KEY_BYTES,
        // The coordinator forwards per-node shares of one request.
        "Lookup" => MAX_MESSAGE_BYTES,
        "Oprf" => MAX_MESSAGE_BYTES / 4,
        "Stats" => MAX_STATS_REQUEST_BYTES,
        "DeconflictRegister" => CONTEXT_BYTES + 2 * MAX_SEALED_CONTACT_BYTES,
        "WatchAdd" => MAX_MESSAGE_BYTES,
        _ => CONTEXT_BYTES,
    }
}

/// Most bytes a node accepts for one watch: one item's encrypted tag (at
/// most 64 bits of about 32 KiB each), its public key and the context.
pub const MAX_WATCH_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// Longest contact text of a deconfliction registration, in bytes.
pub const MAX_CONTACT_BYTES: usize = 256;
/// Most bytes of a sealed deconfliction contact: contact and case reference
/// (each bounded), their framing, the seal's nonce and tag.
pub const MAX_SEALED_CONTACT_BYTES: usize = 1024;
/// Bytes of a wrapped deconfliction key: nonce, 32-byte key and 32-byte
/// pseudonym, tag.
pub const WRAPPED_KEY_BYTES: usize = 12 + 64 + 16;

/// Most filters in one statistics query (they become one conjunction).
pub const MAX_FILTERS: usize = 16;
/// Most group-by entries in one statistics query (a node allows two keys).
pub const MAX_GROUP_BY_ENTRIES: usize = 2;
/// Longest table name, measure, filter or group-by entry, in bytes.
pub const MAX_QUERY_TERM_BYTES: usize = 128;
/// Longest purpose, case reference, legal basis or authorization, in bytes.
pub const MAX_REFERENCE_BYTES: usize = 256;

/// Checks the sizes of a statistics query's lists and strings; the reason
/// names the field and the bound.
pub fn check_stats_query(query: &crate::v1::StatsQuery) -> Result<(), String> {
    if query.filters.len() > MAX_FILTERS {
        return Err(format!("at most {MAX_FILTERS} filters"));
    }
    if query.group_by.len() > MAX_GROUP_BY_ENTRIES {
        return Err(format!("at most {MAX_GROUP_BY_ENTRIES} group-by entries"));
    }
    let terms = [("table", &query.table), ("measure", &query.measure)]
        .into_iter()
        .chain(query.filters.iter().map(|f| ("filter", f)))
        .chain(query.group_by.iter().map(|g| ("group-by entry", g)));
    for (what, term) in terms {
        if term.len() > MAX_QUERY_TERM_BYTES {
            return Err(format!(
                "a {what} is longer than {MAX_QUERY_TERM_BYTES} bytes"
            ));
        }
    }
    Ok(())
}

/// Checks that a reference (purpose, case, legal basis, authorization) fits.
pub fn check_reference(what: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_REFERENCE_BYTES {
        return Err(format!(
            "the {what} is longer than {MAX_REFERENCE_BYTES} bytes"
        ));
    }
    Ok(())
}

/// Checks a request context's references.
pub fn check_context(context: &crate::v1::RequestContext) -> Result<(), String> {
    check_reference("purpose", &context.purpose)?;
    check_reference("case reference", &context.case_reference)?;
    check_reference("legal basis", &context.legal_basis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::StatsQuery;

    #[test]
    fn a_lookup_request_carries_as_many_items_as_fit_its_federation() {
        // 28-bit tags (430 KB per item and node) within 48 MiB.
        assert_eq!(items_per_request(28, 1), MAX_ITEMS_PER_REQUEST);
        assert_eq!(items_per_request(28, 3), 38);
        assert_eq!(items_per_request(28, 32), 3);
        assert_eq!(items_per_request(28, 64), 1);
        // Up to 41-bit tags fit 64 nodes; 64-bit tags (1.3 MB) 37.
        assert_eq!(items_per_request(41, 64), 1);
        assert_eq!(items_per_request(42, 64), 0);
        assert_eq!(items_per_request(64, 37), 1);
        assert_eq!(items_per_request(64, 38), 0);
        // What every node's share of the largest chunk costs stays within the limit.
        for (bits, nodes) in [(28, 1), (28, 3), (28, 64), (41, 64), (64, 37), (40, 2)] {
            let items = items_per_request(bits, nodes);
            let tag = fedq_crypto::lookup::EncryptedTag::encoded_len(bits);
            assert!(items > 0);
            assert!(nodes * (items * (tag + 64) + CONTEXT_BYTES) + 64 * 1024 <= MAX_MESSAGE_BYTES);
        }
        assert_eq!(items_per_request(11, 1), 0);
        assert_eq!(items_per_request(28, 0), 0);
        // Compressed tags: 24,609 bytes per item and node.
        assert_eq!(
            compressed_items_per_request(28, 1, true),
            MAX_ITEMS_PER_REQUEST
        );
        // Packed groups leave room for every item at the largest federation;
        // format 3 alone holds 31.
        assert_eq!(
            compressed_items_per_request(28, 64, true),
            MAX_ITEMS_PER_REQUEST
        );
        assert_eq!(
            compressed_items_per_request(32, 64, true),
            MAX_ITEMS_PER_REQUEST
        );
        assert_eq!(compressed_items_per_request(28, 32, false), 48);
        assert_eq!(compressed_items_per_request(28, 48, false), 41);
        assert_eq!(compressed_items_per_request(28, 64, false), 31);
        assert_eq!(compressed_items_per_request(28, 0, true), 0);
        assert!(
            fedq_crypto::lookup::ExpansionKey::encoded_len() + 64 * 1024 <= MAX_REGISTER_KEY_BYTES
        );
    }

    #[test]
    fn stats_queries_are_bounded_in_every_list_and_string() {
        let ok = StatsQuery {
            table: "incidents".into(),
            measure: "count".into(),
            filters: vec!["sector=finance".into(); MAX_FILTERS],
            group_by: vec!["month".into(); MAX_GROUP_BY_ENTRIES],
            budget: None,
            dry_run: false,
        };
        assert_eq!(check_stats_query(&ok), Ok(()));
        let mut many = ok.clone();
        many.filters.push("a=b".into());
        assert!(check_stats_query(&many).unwrap_err().contains("filters"));
        let mut long = ok.clone();
        long.table = "t".repeat(MAX_QUERY_TERM_BYTES + 1);
        assert!(check_stats_query(&long).unwrap_err().contains("table"));
        let mut groups = ok;
        groups.group_by.push("year".into());
        assert!(check_stats_query(&groups).is_err());
        assert!(check_reference("purpose", &"p".repeat(MAX_REFERENCE_BYTES + 1)).is_err());
    }
}
