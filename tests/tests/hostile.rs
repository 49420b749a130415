//! A hostile client against running parties, over mutual TLS on loopback
//! (DESIGN.md, "Threat model"; Guarantees 6 and 8). Each test sends one class
//! of bad input to a node or the coordinator and checks (a) the exact gRPC
//! status, (b) the audit entry wherever a valid envelope identified the
//! caller (and none where the bytes were refused before decoding), and
//! (c) that the node still answers a normal lookup correctly afterwards.
//! Every test reports all its mismatches at once, and prints each status it
//! observed (`--nocapture`).
//!
//! 60 classes of bad input, with the status each must get:
//!
//! Lookups at a node (coordinator's certificate, valid envelope):
//!  1. tag whose seed fork is not the stream start (AES block / byte index): InvalidArgument
//!  2. tag with other tfhe parameters (GLWE size, N, base, levels, modulus): InvalidArgument
//!  3. tag with an XOF seed instead of the AES seed: InvalidArgument
//!  4. tag with too few or too many GGSW ciphertexts: InvalidArgument
//!  5. truncated tag: InvalidArgument
//!  6. random bytes as tag: InvalidArgument (format 1 shaped, or after either
//!     version byte); random bytes of format 2's exact shape are a ciphertext
//!     of something and answered, as any requester's own encryption is
//!  7. unknown identifier kind: InvalidArgument
//!  8. bucket out of range: InvalidArgument
//!  9. no items: InvalidArgument
//! 10. 49 items (more than 48): InvalidArgument
//! 11. public key not matching its key id: InvalidArgument
//! 12. malformed key id: InvalidArgument
//! 13. malformed public key bytes (garbage, empty, N = 0): InvalidArgument
//! 14. tags under an OPRF key the node does not use: Aborted; an OPRF key id
//!     changed after signing: Unauthenticated
//! 15. a 64 KiB query id (a hostile coordinator): InvalidArgument, never in the audit log
//! 16. a requester field naming someone else than the envelope's signer: Unauthenticated
//!
//! Envelopes (on lookups):
//! 17. issued_at = i64::MIN: Unauthenticated
//! 18. issued_at = i64::MAX: Unauthenticated
//! 19. replayed nonce: PermissionDenied
//! 20. bad signature (flipped bit, wrong length): Unauthenticated
//! 21. envelope for another payload (other items, other action): Unauthenticated
//! 22. no envelope: InvalidArgument
//! 23. garbage envelope bytes: InvalidArgument
//! 24. envelope over 8 KiB: InvalidArgument
//! 25. envelope of a requester the federation does not list: Unauthenticated
//! 25a. envelope addressed to another node, or to nodes the federation does
//!      not have: PermissionDenied; an empty audience: InvalidArgument
//!
//! OPRF at a node:
//! 26. kinds and blinded elements of different counts: InvalidArgument
//! 27. an element that is not a valid ristretto255 point (or the identity, or 31 bytes): InvalidArgument
//! 28. 49 elements (more than allowed): InvalidArgument
//! 29. empty request: InvalidArgument
//! 30. unknown identifier kind: InvalidArgument
//!
//! Statistics at a node:
//! 31. 17 filters: InvalidArgument
//! 32. 200,000 filters: ResourceExhausted before decoding (not audited)
//! 33. a table name over 128 bytes: InvalidArgument
//! 34. epsilon 1e-300 (below the node's minimum): InvalidArgument
//! 35. epsilon (or rho) negative: InvalidArgument
//! 36. epsilon (or rho) NaN: InvalidArgument
//! 37. epsilon (or rho) infinite: InvalidArgument
//! 38. no budget: InvalidArgument
//! 39. unknown table: PermissionDenied
//! 40. epsilon over the requester's cap: ResourceExhausted
//! 41. three group-by entries: InvalidArgument
//! 42. past the per-requester hourly stats limit: ResourceExhausted (own sandbox)
//!
//! Statistics via the coordinator:
//! 43. 17 filters: InvalidArgument
//! 44. 200,000 filters: ResourceExhausted before decoding
//! 45. a table name over 128 bytes: InvalidArgument
//! 46. epsilon 1e-300: answered, every node reports it invalid
//! 47. NaN epsilon: answered, every node reports it invalid
//! 48. a purpose over 256 bytes: InvalidArgument
//!
//! Transport:
//! 49. a requester's certificate calling a node, with a 40 MB body: PermissionDenied
//! 50. a node's certificate calling a node: refused at the TLS handshake (a
//!     node's certificate is for serving only)
//! 51. bodies over the per-RPC limit (1 MB stats, 100 KB OPRF, 32 KB budget at the node;
//!     1 MB stats at the coordinator): ResourceExhausted before decoding
//! 52. bytes that are not a protobuf message: InvalidArgument
//! 53. TCP connections that never finish a TLS handshake: closed after
//!     `[limits] handshake_timeout_seconds` (1 s here), service goes on
//!
//! Coordinator:
//! 54. a node's certificate calling the coordinator: refused at the TLS handshake
//! 55. the coordinator's own certificate calling it: PermissionDenied
//! 56. RegisterKey with a 1 MB key: ResourceExhausted
//! 57. RegisterKey with a garbage key (garbage, empty, N = 0): InvalidArgument
//! 58. an envelope not signed by the caller for itself (another key, or its
//!     own key naming another requester): Unauthenticated, audited
//! 59. a role asking another role's action (an investigator's statistics, a
//!     researcher's lookup): PermissionDenied, audited, by default
//! 60. a signed dry run forwarded as a charged release: Unauthenticated, audited
//! 61. a flood of 100 bad-signature requests: each Unauthenticated, only the
//!     first `limits.refusal_audits_per_minute` (20) audited one by one, and
//!     a verified requester's refusals still audited (own sandbox)
//! 62. a lookup envelope naming a node twice (the audience's length sets the
//!     count's encoding and the flooding): PermissionDenied, audited
//! 63. health `Watch` and reflection streams held open, three times the
//!     in-flight limit, at a node and the coordinator: a lookup still answers
//!     (own sandbox)
//! 64. tags compressed further than the federation chose (a packed group
//!     where it sends single items, a compressed item where it compresses
//!     nothing), with a valid expansion key: InvalidArgument, audited (own
//!     sandboxes)

use std::io::{Read, Write};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use fedq_crypto::IdentifierKind;
use fedq_proto::federation::TagCompression;
use fedq_proto::outcome::NodeOutcome;
use fedq_proto::v1::{self, stats_query::Budget};
use fedq_tests::hostile::tag::{self, TagField};
use fedq_tests::hostile::{
    blinded_phones, node_oprf, node_stats, raw, stats_query, unique, wire_kind, As, Attacker,
    Verdicts,
};
use fedq_tests::sandbox::{runtime, FederationSandbox};
use tonic::Code;

/// The node attacked.
const NODE: &str = "fr";

/// Limits of every party of the shared sandbox.
const LIMITS: &str = "[limits]\nhandshake_timeout_seconds = 1\n";

/// A named way of damaging a signature.
type SignatureEdit = fn(&mut Vec<u8>);

fn sandbox() -> &'static FederationSandbox {
    static SANDBOX: OnceLock<FederationSandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        runtime()
            .block_on(
                FederationSandbox::builder()
                    .jurisdiction(NODE)
                    .people(300)
                    .node_toml(LIMITS)
                    .coordinator_toml(LIMITS)
                    .build(),
            )
            .expect("sandbox starts")
    })
}

fn attacker() -> &'static Attacker<'static> {
    static ATTACKER: OnceLock<Attacker<'static>> = OnceLock::new();
    ATTACKER.get_or_init(|| Attacker::new(sandbox()).expect("attacker prepared"))
}

/// Whether a call failed at the TLS layer, before any request was served.
fn refused_at_handshake<T>(result: &Result<T, tonic::Status>) -> bool {
    matches!(result, Err(status) if matches!(status.code(), Code::Unknown | Code::Cancelled | Code::Unavailable)
        && !status.message().contains("caller not allowed"))
}

/// (c): the node answers a normal lookup correctly.
async fn node_still_serves(v: &mut Verdicts) {
    v.require("afterwards", attacker().node_serves(NODE).await);
}

/// (c) for coordinator tests: the coordinator and the node still answer.
async fn both_still_serve(v: &mut Verdicts) {
    v.require("afterwards", attacker().coordinator_serves().await);
    node_still_serves(v).await;
}

/// Sends the honest lookup edited by `edit` (then signed: the envelope is
/// valid) and expects `code` with `fragment`, and a refusal audited as
/// alice's whose reason says `audit`.
async fn bad_lookup(
    v: &mut Verdicts,
    class: &str,
    edit: impl FnOnce(&mut v1::NodeLookupRequest),
    code: Code,
    fragment: &str,
    audit: &str,
) {
    let a = attacker();
    let id = unique("lookup");
    let mut request = a.lookup(NODE, &id);
    edit(&mut request);
    a.sign_lookup(NODE, &mut request, |_| {});
    v.status(class, a.send_lookup(NODE, request).await, code, fragment);
    v.refusal_audited(class, a.node_audit(NODE, &id), a.requester(), audit);
}

/// Sends the honest lookup under an envelope edited by `tweak` (and the
/// request edited by `edit` after signing), expecting `code`; the gate
/// audits the refusal with the envelope's claimed requester.
async fn bad_envelope(
    v: &mut Verdicts,
    class: &str,
    tweak: impl FnOnce(&mut fedq_crypto::envelope::Envelope),
    edit: impl FnOnce(&mut v1::NodeLookupRequest),
    (code, fragment): (Code, &str),
    claimed: &str,
) {
    let a = attacker();
    let id = unique("envelope");
    let mut request = a.lookup(NODE, &id);
    a.sign_lookup(NODE, &mut request, tweak);
    edit(&mut request);
    v.status(class, a.send_lookup(NODE, request).await, code, fragment);
    v.refusal_audited(class, a.node_audit(NODE, &id), claimed, "envelope: ");
}

/// Sends a signed OPRF request of `kinds` and `blinded`.
async fn bad_oprf(
    v: &mut Verdicts,
    class: &str,
    kinds: Vec<i32>,
    blinded: Vec<Vec<u8>>,
    fragment: &str,
) {
    let a = attacker();
    let id = unique("oprf");
    let mut request = node_oprf(a.requester(), &id, kinds, blinded);
    a.sign_oprf(NODE, &mut request, |_| {});
    v.status(
        class,
        a.send_oprf(NODE, request).await,
        Code::InvalidArgument,
        fragment,
    );
    v.refusal_audited(class, a.node_audit(NODE, &id), a.requester(), fragment);
}

/// Sends a signed statistics request of `query` to the node.
async fn bad_stats(
    v: &mut Verdicts,
    class: &str,
    query: v1::StatsQuery,
    code: Code,
    fragment: &str,
) {
    let a = attacker();
    let id = unique("stats");
    let mut request = node_stats(a.researcher(), &id, query);
    a.sign_stats(&mut request, |_| {});
    v.status(class, a.send_stats(NODE, request).await, code, fragment);
    v.refusal_audited(class, a.node_audit(NODE, &id), a.researcher(), fragment);
}

fn with_filters(count: usize) -> v1::StatsQuery {
    v1::StatsQuery {
        filters: vec!["sector=finance".to_owned(); count],
        ..stats_query(0.05)
    }
}

fn with_table(table: String) -> v1::StatsQuery {
    v1::StatsQuery {
        table,
        ..stats_query(0.05)
    }
}

fn with_budget(budget: Option<Budget>) -> v1::StatsQuery {
    v1::StatsQuery {
        budget,
        ..stats_query(0.05)
    }
}

fn random_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|_| rand::random::<u8>()).collect()
}

// ---------------------------------------------------------------- lookups

#[test]
fn lookup_tag_whose_seed_fork_is_not_the_stream_start_gets_invalid_argument() -> anyhow::Result<()>
{
    let a = attacker();
    let honest = a.honest_bitwise_tag(NODE).to_vec();
    // The layout edited below is tfhe's: an honest tag's masks start at (0, 0).
    assert_eq!(tag::read(&honest, TagField::GlweSize), 2);
    assert_eq!(tag::read(&honest, TagField::PolynomialSize), 2048);
    assert_eq!(tag::read(&honest, TagField::ModulusScalarBits), 64);
    assert_eq!(tag::read(&honest, TagField::FirstAesIndex), 0);
    assert_eq!(tag::read(&honest, TagField::FirstByteIndex), 0);
    let mut v = Verdicts::new("seed fork not at the start");
    runtime().block_on(async {
        for (class, field, value) in [
            // tfhe: ForkTooLarge, unwrapped while regenerating the masks.
            (
                "tag forked at AES block u128::MAX",
                TagField::FirstAesIndex,
                u128::MAX,
            ),
            ("tag forked at AES block 1", TagField::FirstAesIndex, 1),
            (
                "tag forked at AES block 2^64",
                TagField::FirstAesIndex,
                1 << 64,
            ),
            (
                "tag forked at byte 1 of its block",
                TagField::FirstByteIndex,
                1,
            ),
            (
                "tag forked at byte 16 of its block",
                TagField::FirstByteIndex,
                16,
            ),
        ] {
            let forged = tag::with(&honest, field, value);
            bad_lookup(
                &mut v,
                class,
                |r| r.items[0].encrypted_tag = forged,
                Code::InvalidArgument,
                "encrypted tag",
                "invalid request",
            )
            .await;
        }
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn lookup_tag_with_other_tfhe_parameters_or_an_xof_seed_gets_invalid_argument() -> anyhow::Result<()>
{
    let honest = attacker().honest_bitwise_tag(NODE).to_vec();
    let mut v = Verdicts::new("tag with other parameters");
    let mut forged: Vec<(String, Vec<u8>)> = Vec::new();
    for (field, values) in [
        (TagField::GlweSize, &[0u128, 1, 3, u128::from(u64::MAX)][..]),
        (
            TagField::PolynomialSize,
            &[0, 1024, 4096, u128::from(u64::MAX)],
        ),
        (TagField::DecompBaseLog, &[0, 22, 64]),
        (TagField::DecompLevelCount, &[0, 2, u128::from(u64::MAX)]),
        (TagField::Modulus, &[1, 1 << 32, u128::MAX]),
        (TagField::ModulusScalarBits, &[0, 32, 128]),
        (TagField::SeedKind, &[2, u128::from(u32::MAX)]),
    ] {
        for &value in values {
            forged.push((
                format!("tag with {field:?} = {value}"),
                tag::with(&honest, field, value),
            ));
        }
    }
    for len in [0, 16, 100] {
        forged.push((
            format!("tag with an XOF seed of {len} bytes"),
            tag::with_xof_seed(&honest, len),
        ));
    }
    runtime().block_on(async {
        for (class, bytes) in forged {
            bad_lookup(
                &mut v,
                &class,
                |r| r.items[0].encrypted_tag = bytes,
                Code::InvalidArgument,
                "encrypted tag",
                "invalid request",
            )
            .await;
        }
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn lookup_tag_with_a_wrong_number_of_ggsw_ciphertexts_gets_invalid_argument() -> anyhow::Result<()>
{
    let honest = attacker().honest_bitwise_tag(NODE).to_vec();
    let ggsw = fedq_crypto::lookup::query::ggsw_bytes();
    let bits = (honest.len() - 1 - 8 - tag::TAIL_BYTES) / ggsw;
    assert_eq!(
        tag::with_ggsw_count(&honest, ggsw, bits).len(),
        honest.len()
    );
    let mut v = Verdicts::new("wrong GGSW count");
    runtime().block_on(async {
        for count in [0, 1, bits - 1, bits + 1] {
            bad_lookup(
                &mut v,
                &format!("tag of {count} GGSW ciphertexts instead of {bits}"),
                |r| r.items[0].encrypted_tag = tag::with_ggsw_count(&honest, ggsw, count),
                Code::InvalidArgument,
                "encrypted tag",
                "invalid request",
            )
            .await;
        }
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn truncated_lookup_tag_gets_invalid_argument() -> anyhow::Result<()> {
    let honest = attacker().honest_tag(NODE).to_vec();
    let mut v = Verdicts::new("truncated tag");
    runtime().block_on(async {
        for keep in [0, 1, 1000, honest.len() - 1] {
            let truncated = honest[..keep].to_vec();
            bad_lookup(
                &mut v,
                &format!("tag truncated to {keep} bytes"),
                |r| r.items[0].encrypted_tag = truncated,
                Code::InvalidArgument,
                "encrypted tag",
                "invalid request",
            )
            .await;
        }
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn random_bytes_as_lookup_tag_get_invalid_argument() -> anyhow::Result<()> {
    let a = attacker();
    let honest = a.honest_bitwise_tag(NODE).to_vec();
    let mut v = Verdicts::new("random tag");
    // Version byte and length prefix kept, everything else random.
    let mut shaped = random_bytes(honest.len());
    shaped[..9].copy_from_slice(&honest[..9]);
    let mut versioned = random_bytes(4096);
    versioned[0] = honest[0];
    let rounded = a.honest_tag(NODE);
    let mut rounded_versioned = random_bytes(4096);
    rounded_versioned[0] = rounded[0];
    runtime().block_on(async {
        for (class, bytes) in [
            ("4 KiB of random bytes as tag", random_bytes(4096)),
            ("random bytes after the version byte", versioned),
            ("random bytes of an honest tag's shape", shaped),
            (
                "random bytes after format 2's version byte",
                rounded_versioned,
            ),
        ] {
            bad_lookup(
                &mut v,
                class,
                |r| r.items[0].encrypted_tag = bytes,
                Code::InvalidArgument,
                "encrypted tag",
                "invalid request",
            )
            .await;
        }
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn random_bytes_of_a_format_2_tags_shape_are_a_ciphertext_and_answered() -> anyhow::Result<()> {
    // Format 2 has no field but its length: any bytes of that length are the
    // encryption of something under some key, as a requester may send
    // anyway. The node evaluates them like any tag and stays well.
    let a = attacker();
    let mut shaped = random_bytes(a.honest_tag(NODE).len());
    shaped[0] = a.honest_tag(NODE)[0];
    let mut v = Verdicts::new("random format 2 tag");
    runtime().block_on(async {
        let mut request = a.lookup(NODE, &unique("lookup"));
        request.items[0].encrypted_tag = shaped;
        a.sign_lookup(NODE, &mut request, |_| {});
        let answered = match a.send_lookup(NODE, request).await {
            Ok(response) if response.answers.len() == 1 => Ok(()),
            Ok(response) => Err(format!("{} answers to one item", response.answers.len())),
            Err(status) => Err(format!("refused: {status:?}")),
        };
        v.require("random bytes of format 2's shape: one answer", answered);
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn a_compressed_lookup_asks_once_for_its_expansion_key_and_counts() -> anyhow::Result<()> {
    // The node has never seen this key: it answers FAILED_PRECONDITION with
    // the resend metadata before admission (nothing audited, the envelope
    // not spent), answers the same signed request once the key is attached,
    // and answers from its cache afterwards.
    let a = attacker();
    let key = a.expansion_key();
    let key_id = fedq_crypto::lookup::ExpansionKey::id_of(&key)?;
    let mut v = Verdicts::new("compressed lookup");
    // The honest compressed lookup under `key_id`, signed.
    let compressed_lookup = |id: &str| {
        let mut request = a.lookup(NODE, id);
        request.items[0].encrypted_tag = a.compressed_tag(NODE).to_vec();
        request.expansion_key_id = key_id.as_str().to_owned();
        a.sign_lookup(NODE, &mut request, |_| {});
        request
    };
    runtime().block_on(async {
        let id = unique("compressed");
        let mut request = compressed_lookup(&id);
        let class = "a compressed lookup under an uncached expansion key";
        if let Some(status) = v.status(
            class,
            a.send_lookup(NODE, request.clone()).await,
            Code::FailedPrecondition,
            "expansion key not cached",
        ) {
            let asks = status
                .metadata()
                .get(fedq_proto::RESEND_METADATA)
                .is_some_and(|value| value == fedq_proto::RESEND_EXPANSION_KEY);
            v.require(
                "the refusal asks for the expansion key",
                asks.then_some(())
                    .ok_or_else(|| format!("metadata {:?}", status.metadata())),
            );
        }
        v.not_audited(class, a.node_audit(NODE, &id));
        request.expansion_key = key.clone();
        let answered = match a.send_lookup(NODE, request).await {
            Ok(response) => a.counts_one(NODE, &response),
            Err(status) => Err(format!("refused with the key attached: {status:?}")),
        };
        v.require("the same request with its key counts 1", answered);
        let cached = compressed_lookup(&unique("compressed"));
        let answered = match a.send_lookup(NODE, cached).await {
            Ok(response) => a.counts_one(NODE, &response),
            Err(status) => Err(format!("refused once cached: {status:?}")),
        };
        v.require("a later request without the key counts 1", answered);
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn tags_compressed_further_than_the_federation_chose_get_invalid_argument() -> anyhow::Result<()> {
    // A requester's client that ignores its federation's `compression`
    // (or a requester that packs to send less): the node refuses before any
    // work, whatever key comes with the tags, and still serves what the
    // federation allows.
    type Tags = fn(&Attacker<'_>) -> Vec<Vec<u8>>;
    let cases: [(TagCompression, &str, Tags); 2] = [
        (
            TagCompression::Single,
            "a packed group where the federation sends single items",
            |a| a.packed_group(NODE).to_vec(),
        ),
        (
            TagCompression::None,
            "a compressed item where the federation compresses nothing",
            |a| vec![a.compressed_tag(NODE).to_vec()],
        ),
    ];
    let mut v = Verdicts::new("compression chosen by the federation");
    runtime().block_on(async {
        for (compression, class, tags) in cases {
            let sandbox = FederationSandbox::builder()
                .jurisdiction(NODE)
                .people(200)
                .compression(compression)
                .build()
                .await?;
            let a = Attacker::new(&sandbox)?;
            let key = a.expansion_key();
            let id = unique("overcompressed");
            let mut request = a.lookup(NODE, &id);
            with_group(&mut request, &tags(&a));
            request.expansion_key_id = fedq_crypto::lookup::ExpansionKey::id_of(&key)?
                .as_str()
                .to_owned();
            request.expansion_key = key;
            a.sign_lookup(NODE, &mut request, |_| {});
            v.status(
                class,
                a.send_lookup(NODE, request).await,
                Code::InvalidArgument,
                "compressed further than this federation allows",
            );
            v.refusal_audited(
                class,
                a.node_audit(NODE, &id),
                a.requester(),
                "invalid request",
            );
            v.require("afterwards", a.node_serves(NODE).await);
        }
        anyhow::Ok(())
    })?;
    v.finish()
}

#[test]
fn an_expansion_key_that_is_not_its_signed_id_gets_invalid_argument() -> anyhow::Result<()> {
    // A coordinator that swaps the requester's expansion key (or a requester
    // naming one key and sending another): the bytes must hash to the id in
    // the signed payload.
    let a = attacker();
    let named = fedq_crypto::lookup::ExpansionKey::id_of(&a.expansion_key())?;
    let sent = a.expansion_key();
    let mut v = Verdicts::new("swapped expansion key");
    runtime().block_on(async {
        let compressed = a.compressed_tag(NODE).to_vec();
        bad_lookup(
            &mut v,
            "an expansion key that does not hash to the signed id",
            |r| {
                r.items[0].encrypted_tag = compressed;
                r.expansion_key_id = named.as_str().to_owned();
                r.expansion_key = sent;
            },
            Code::InvalidArgument,
            "expansion key does not match its id",
            "invalid request",
        )
        .await;
        let compressed = a.compressed_tag(NODE).to_vec();
        bad_lookup(
            &mut v,
            "a compressed tag without an expansion key id",
            |r| r.items[0].encrypted_tag = compressed,
            Code::InvalidArgument,
            "needs the requester's expansion key",
            "invalid request",
        )
        .await;
        let named = named.as_str().to_owned();
        bad_lookup(
            &mut v,
            "an expansion key of the wrong size",
            |r| {
                r.expansion_key_id = named;
                r.expansion_key = random_bytes(1 << 20);
            },
            Code::InvalidArgument,
            "expansion key",
            "invalid request",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

/// `request`'s one item replaced by a packed group of the same kind and
/// bucket, one item per encoding in `tags`.
fn with_group(request: &mut v1::NodeLookupRequest, tags: &[Vec<u8>]) {
    let item = request.items[0].clone();
    request.items = tags
        .iter()
        .map(|tag| v1::LookupItem {
            encrypted_tag: tag.clone(),
            ..item.clone()
        })
        .collect();
}

#[test]
fn a_packed_group_counts_each_item_and_malformed_groups_get_invalid_argument() -> anyhow::Result<()>
{
    // Format 4 from the requester's side: an honest group of three counts
    // its held identifier in slot 0 and nothing else; a group that lies
    // about its size, reorders or drops its slots, is cut, or comes without
    // an expansion key is refused, audited, and the node goes on serving.
    let a = attacker();
    let key = a.expansion_key();
    let key_id = fedq_crypto::lookup::ExpansionKey::id_of(&key)?
        .as_str()
        .to_owned();
    let group = a.packed_group(NODE).to_vec();
    let mut v = Verdicts::new("packed group");
    runtime().block_on(async {
        let mut request = a.lookup(NODE, &unique("packed"));
        with_group(&mut request, &group);
        request.expansion_key_id = key_id.clone();
        request.expansion_key = key.clone();
        a.sign_lookup(NODE, &mut request, |_| {});
        let counted = match a.send_lookup(NODE, request).await {
            Ok(response) => a.counts(NODE, &response).and_then(|counts| {
                (counts == [1, 0, 0])
                    .then_some(())
                    .ok_or_else(|| format!("counts {counts:?}"))
            }),
            Err(status) => Err(format!("refused: {status:?}")),
        };
        v.require("an honest packed group counts [1, 0, 0]", counted);

        let mut more = group[0].clone();
        more[1] = 4;
        let swapped = vec![group[0].clone(), group[2].clone(), group[1].clone()];
        let mut cut = group.clone();
        cut[0].pop();
        let cases: [(&str, Vec<Vec<u8>>, &str); 5] = [
            (
                "a group claiming more items than follow",
                vec![more, group[1].clone(), group[2].clone()],
                "item count",
            ),
            (
                "a group of three sent with two items",
                group[..2].to_vec(),
                "item count",
            ),
            ("a group whose slots are swapped", swapped, "slot"),
            (
                "a slot with no group before it",
                group[1..].to_vec(),
                "slot outside a group",
            ),
            (
                "a group whose GLWE is cut by a byte",
                cut,
                "malformed packed tags",
            ),
        ];
        for (class, tags, fragment) in cases {
            // The key travels each time: another test may have replaced
            // this requester's cached one meanwhile.
            let (key_id, key) = (key_id.clone(), key.clone());
            bad_lookup(
                &mut v,
                class,
                |r| {
                    with_group(r, &tags);
                    r.expansion_key_id = key_id;
                    r.expansion_key = key;
                },
                Code::InvalidArgument,
                fragment,
                "invalid request",
            )
            .await;
        }
        bad_lookup(
            &mut v,
            "a packed group without an expansion key id",
            |r| with_group(r, &group),
            Code::InvalidArgument,
            "needs the requester's expansion key",
            "invalid request",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn a_format_1_tag_of_an_older_client_is_still_answered() -> anyhow::Result<()> {
    let a = attacker();
    let mut v = Verdicts::new("format 1 tag");
    runtime().block_on(async {
        v.require(
            "a format 1 tag of an identifier the node holds counts 1",
            a.node_finds(NODE, a.honest_bitwise_tag(NODE).to_vec())
                .await,
        );
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn lookup_of_an_unknown_identifier_kind_gets_invalid_argument_and_is_audited() -> anyhow::Result<()>
{
    let mut v = Verdicts::new("unknown kind");
    runtime().block_on(async {
        for kind in [42, 0, -1] {
            bad_lookup(
                &mut v,
                &format!("lookup item of kind {kind}"),
                |r| r.items[0].kind = kind,
                Code::InvalidArgument,
                "unknown identifier kind",
                "unknown identifier kind",
            )
            .await;
        }
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn lookup_bucket_out_of_range_gets_invalid_argument() -> anyhow::Result<()> {
    let mut v = Verdicts::new("bucket out of range");
    runtime().block_on(async {
        for bucket in [1 << 12, 1 << 20, u32::MAX] {
            bad_lookup(
                &mut v,
                &format!("lookup of bucket {bucket}"),
                |r| r.items[0].bucket = bucket,
                Code::InvalidArgument,
                "bucket out of range",
                "bucket out of range",
            )
            .await;
        }
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn lookup_without_items_gets_invalid_argument() -> anyhow::Result<()> {
    let mut v = Verdicts::new("no items");
    runtime().block_on(async {
        bad_lookup(
            &mut v,
            "lookup of 0 items",
            |r| r.items.clear(),
            Code::InvalidArgument,
            "no items",
            "no items",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn lookup_of_49_items_gets_invalid_argument() -> anyhow::Result<()> {
    let mut v = Verdicts::new("49 items");
    runtime().block_on(async {
        bad_lookup(
            &mut v,
            "lookup of 49 items",
            |r| {
                let item = v1::LookupItem {
                    encrypted_tag: vec![7; 16],
                    ..r.items[0].clone()
                };
                r.items = vec![item; fedq_proto::MAX_ITEMS_PER_REQUEST + 1];
            },
            Code::InvalidArgument,
            "more than 48 items",
            "more than 48 items",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn lookup_public_key_not_matching_its_key_id_gets_invalid_argument() -> anyhow::Result<()> {
    let mut v = Verdicts::new("key id mismatch");
    runtime().block_on(async {
        bad_lookup(
            &mut v,
            "public key under another key id",
            |r| r.key_id = "0".repeat(32),
            Code::InvalidArgument,
            "does not match its key id",
            "does not match its key id",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn lookup_with_a_malformed_key_id_gets_invalid_argument_and_is_audited() -> anyhow::Result<()> {
    let mut v = Verdicts::new("malformed key id");
    runtime().block_on(async {
        for key_id in [
            "not-a-key-id".to_owned(),
            String::new(),
            "A".repeat(32),
            "0".repeat(4096),
        ] {
            let class = format!("key id {:?}", &key_id[..key_id.len().min(16)]);
            bad_lookup(
                &mut v,
                &class,
                |r| r.key_id = key_id,
                Code::InvalidArgument,
                "malformed key id",
                "malformed key id",
            )
            .await;
        }
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn lookup_with_malformed_public_key_bytes_gets_invalid_argument() -> anyhow::Result<()> {
    let honest = attacker().public_key().to_bytes().to_vec();
    // Layout: version, data (u64 length, values), polynomial size (u64),
    // modulus (u128 value, u64 scalar bits).
    let mut zero_n = honest.clone();
    let at = zero_n.len() - 32;
    zero_n[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
    let mut v = Verdicts::new("malformed public key");
    runtime().block_on(async {
        for (class, key) in [
            ("garbage public key", random_bytes(300)),
            ("empty public key", Vec::new()),
            ("public key with polynomial size 0", zero_n),
            ("truncated public key", honest[..honest.len() - 8].to_vec()),
        ] {
            bad_lookup(
                &mut v,
                class,
                |r| r.public_key = key,
                Code::InvalidArgument,
                "public key",
                "public key",
            )
            .await;
        }
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn lookup_under_an_oprf_key_the_node_does_not_use_gets_aborted() -> anyhow::Result<()> {
    let mut v = Verdicts::new("stale oprf key");
    runtime().block_on(async {
        for oprf_key_id in ["0".repeat(16), String::new(), "x".repeat(5000)] {
            bad_lookup(
                &mut v,
                &format!("oprf key id of {} bytes", oprf_key_id.len()),
                |r| r.oprf_key_id = oprf_key_id,
                Code::Aborted,
                "a key this node no longer uses",
                "a key this node no longer uses",
            )
            .await;
        }
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn lookup_with_a_64_kib_query_id_gets_invalid_argument_and_stays_out_of_the_audit_log(
) -> anyhow::Result<()> {
    let a = attacker();
    let mut v = Verdicts::new("huge query id");
    let class = "lookup with a 64 KiB query id";
    runtime().block_on(async {
        let id = format!("{}{}", unique("long"), "q".repeat(64 * 1024));
        let mut request = a.lookup(NODE, &id);
        a.sign_lookup(NODE, &mut request, |_| {});
        v.status(
            class,
            a.send_lookup(NODE, request).await,
            Code::InvalidArgument,
            "query id",
        );
        match a.node_audit(NODE, &id) {
            Ok(records) => v.check(class, records.is_empty(), || {
                format!("{} audit entries hold the 64 KiB query id", records.len())
            }),
            Err(e) => v.check(class, false, || format!("audit log: {e:#}")),
        }
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn lookup_telling_another_requester_than_the_envelopes_signer_gets_unauthenticated(
) -> anyhow::Result<()> {
    let mut v = Verdicts::new("requester mismatch");
    runtime().block_on(async {
        for told in ["bob", ""] {
            bad_lookup(
                &mut v,
                &format!("lookup told requester {told:?}, signed by alice"),
                |r| r.requester = told.to_owned(),
                Code::Unauthenticated,
                "requester",
                "requester",
            )
            .await;
        }
        node_still_serves(&mut v).await;
    });
    v.finish()
}

// -------------------------------------------------------------- envelopes

#[test]
fn an_envelope_for_another_node_or_a_partial_federation_gets_permission_denied(
) -> anyhow::Result<()> {
    attacker();
    let mut v = Verdicts::new("audience");
    runtime().block_on(async {
        // What a coordinator replaying another node's envelope here would carry.
        bad_envelope(
            &mut v,
            "lookup envelope addressed to de only",
            |e| e.audience = vec!["de".to_owned()],
            |_| {},
            (Code::PermissionDenied, "not addressed to this node"),
            "alice",
        )
        .await;
        bad_envelope(
            &mut v,
            "lookup envelope naming a node the federation does not have",
            |e| e.audience = vec!["de".to_owned(), NODE.to_owned()],
            |_| {},
            (Code::PermissionDenied, "every node of the federation"),
            "alice",
        )
        .await;
        // Every node, one of them twice: the audience's length sets the
        // count's encoding and how much each answer is flooded.
        bad_envelope(
            &mut v,
            "lookup envelope naming a node twice",
            |e| e.audience.push(NODE.to_owned()),
            |_| {},
            (Code::PermissionDenied, "names a node more than once"),
            "alice",
        )
        .await;
        bad_envelope(
            &mut v,
            "lookup envelope with an empty audience",
            |e| e.audience.clear(),
            |_| {},
            (Code::InvalidArgument, "audience"),
            // A malformed envelope is not parsed, so nothing is claimed.
            "",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn an_oprf_key_id_changed_after_signing_gets_unauthenticated() -> anyhow::Result<()> {
    attacker();
    let mut v = Verdicts::new("oprf key id edited");
    runtime().block_on(async {
        bad_envelope(
            &mut v,
            "oprf key id replaced by the coordinator",
            |_| {},
            |r| r.oprf_key_id = "0".repeat(16),
            (Code::Unauthenticated, "does not match the query"),
            "alice",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn envelope_issued_at_i64_min_gets_unauthenticated() -> anyhow::Result<()> {
    let mut v = Verdicts::new("issued_at i64::MIN");
    runtime().block_on(async {
        bad_envelope(
            &mut v,
            "envelope issued at i64::MIN",
            |e| e.issued_at = i64::MIN,
            |_| {},
            (Code::Unauthenticated, "stale request time"),
            "alice",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn envelope_issued_at_i64_max_gets_unauthenticated() -> anyhow::Result<()> {
    let mut v = Verdicts::new("issued_at i64::MAX");
    runtime().block_on(async {
        bad_envelope(
            &mut v,
            "envelope issued at i64::MAX",
            |e| e.issued_at = i64::MAX,
            |_| {},
            (Code::Unauthenticated, "stale request time"),
            "alice",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn replayed_envelope_nonce_gets_permission_denied() -> anyhow::Result<()> {
    let a = attacker();
    let mut v = Verdicts::new("replay");
    let class = "lookup replayed with its nonce";
    runtime().block_on(async {
        let mut request = a.lookup(NODE, &unique("first"));
        a.sign_lookup(NODE, &mut request, |_| {});
        let first = a.send_lookup(NODE, request.clone()).await;
        v.check(class, first.is_ok(), || {
            format!("the original was refused: {first:?}")
        });
        // The query id is not signed: the replay carries another one.
        let replay_id = unique("replay");
        request.query_id = replay_id.clone();
        v.status(
            class,
            a.send_lookup(NODE, request).await,
            Code::PermissionDenied,
            "replayed request",
        );
        v.refusal_audited(
            class,
            a.node_audit(NODE, &replay_id),
            "alice",
            "envelope: replayed",
        );
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn envelope_with_a_bad_signature_gets_unauthenticated() -> anyhow::Result<()> {
    let mut v = Verdicts::new("bad signature");
    runtime().block_on(async {
        let edits: [(&str, SignatureEdit); 3] = [
            ("signature with one bit flipped", |s| s[10] ^= 1),
            ("empty signature", |s| s.clear()),
            ("signature of 1000 bytes", |s| s.resize(1000, 0xab)),
        ];
        for (class, edit) in edits {
            bad_envelope(
                &mut v,
                class,
                |_| {},
                |r| {
                    let envelope = r.context.as_mut().and_then(|c| c.envelope.as_mut());
                    edit(&mut envelope.expect("signed").signature);
                },
                (Code::Unauthenticated, "bad envelope signature"),
                "alice",
            )
            .await;
        }
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn envelope_for_another_payload_gets_unauthenticated() -> anyhow::Result<()> {
    let mut v = Verdicts::new("envelope for another payload");
    runtime().block_on(async {
        bad_envelope(
            &mut v,
            "envelope signed for another bucket",
            |_| {},
            |r| r.items[0].bucket ^= 1,
            (Code::Unauthenticated, "does not match the query"),
            "alice",
        )
        .await;
        bad_envelope(
            &mut v,
            "envelope signed for another action (stats)",
            |e| e.action = "stats".to_owned(),
            |_| {},
            (Code::Unauthenticated, "does not match the query"),
            "alice",
        )
        .await;
        bad_envelope(
            &mut v,
            "envelope signed for disclosure it does not ask",
            |_| {},
            |r| {
                r.disclose = true;
                r.authorization = "AUTH-H".to_owned();
            },
            (Code::Unauthenticated, "does not match the query"),
            "alice",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn request_without_an_envelope_gets_invalid_argument() -> anyhow::Result<()> {
    let mut v = Verdicts::new("no envelope");
    runtime().block_on(async {
        bad_envelope(
            &mut v,
            "lookup without envelope",
            |_| {},
            |r| r.context.as_mut().expect("context").envelope = None,
            (Code::InvalidArgument, "no envelope"),
            "",
        )
        .await;
        bad_envelope(
            &mut v,
            "lookup without context",
            |_| {},
            |r| r.context = None,
            (Code::InvalidArgument, "no envelope"),
            "",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn garbage_envelope_bytes_get_invalid_argument() -> anyhow::Result<()> {
    let mut v = Verdicts::new("garbage envelope");
    runtime().block_on(async {
        for (class, bytes) in [
            ("random envelope bytes", random_bytes(300)),
            (
                "envelope JSON of another shape",
                br#"{"requester":"alice"}"#.to_vec(),
            ),
            ("envelope JSON with an unknown field", {
                let a = attacker();
                let context = fedq_tests::hostile::context("fraud", "H");
                let envelope = a.envelope("lookup", &context, &"0".repeat(64));
                let mut json: serde_json::Value = serde_json::to_value(&envelope)?;
                json["node"] = serde_json::Value::from("fr");
                serde_json::to_vec(&json)?
            }),
        ] {
            bad_envelope(
                &mut v,
                class,
                |_| {},
                |r| {
                    let envelope = r.context.as_mut().and_then(|c| c.envelope.as_mut());
                    envelope.expect("signed").envelope = bytes;
                },
                (Code::InvalidArgument, "envelope"),
                "",
            )
            .await;
        }
        node_still_serves(&mut v).await;
        anyhow::Ok(())
    })?;
    v.finish()
}

#[test]
fn envelope_over_8_kib_gets_invalid_argument() -> anyhow::Result<()> {
    let mut v = Verdicts::new("envelope over 8 KiB");
    runtime().block_on(async {
        // Properly signed by alice, but larger than any envelope may be.
        bad_envelope(
            &mut v,
            "signed envelope of 9 KiB",
            |e| e.legal_basis = "b".repeat(9 * 1024),
            |_| {},
            (Code::InvalidArgument, "envelope too large"),
            "",
        )
        .await;
        bad_envelope(
            &mut v,
            "1 MiB of envelope bytes",
            |_| {},
            |r| {
                let envelope = r.context.as_mut().and_then(|c| c.envelope.as_mut());
                envelope.expect("signed").envelope = vec![b' '; 1 << 20];
            },
            (Code::InvalidArgument, "envelope too large"),
            "",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn envelope_of_a_requester_the_federation_does_not_list_gets_unauthenticated() -> anyhow::Result<()>
{
    let a = attacker();
    let mut v = Verdicts::new("unknown requester");
    let class = "envelope signed by mallory";
    runtime().block_on(async {
        let id = unique("mallory");
        let mut request = a.lookup(NODE, &id);
        let hash = fedq_proto::payload::node_lookup_payload_hash(NODE, &request);
        let context = request.context.as_mut().expect("context");
        let mut envelope = a.envelope("lookup", context, &hash);
        envelope.requester = "mallory".to_owned();
        let mallory = fedq_crypto::envelope::SigningKey::generate();
        context.envelope = Some(fedq_proto::payload::to_wire(mallory.sign(&envelope)));
        v.status(
            class,
            a.send_lookup(NODE, request).await,
            Code::Unauthenticated,
            "unknown requester",
        );
        v.refusal_audited(
            class,
            a.node_audit(NODE, &id),
            "mallory",
            "envelope: unknown requester",
        );
        node_still_serves(&mut v).await;
    });
    v.finish()
}

// ------------------------------------------------------------------- OPRF

#[test]
fn oprf_with_kinds_and_elements_of_different_counts_gets_invalid_argument() -> anyhow::Result<()> {
    let phone = wire_kind(IdentifierKind::Phone);
    let two = blinded_phones(2)?;
    let mut v = Verdicts::new("oprf count mismatch");
    runtime().block_on(async {
        bad_oprf(
            &mut v,
            "oprf of 2 kinds and 1 element",
            vec![phone; 2],
            two[..1].to_vec(),
            "one declared kind per blinded element",
        )
        .await;
        bad_oprf(
            &mut v,
            "oprf of 1 kind and 2 elements",
            vec![phone],
            two,
            "one declared kind per blinded element",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn oprf_element_that_is_not_a_ristretto_point_gets_invalid_argument() -> anyhow::Result<()> {
    let phone = wire_kind(IdentifierKind::Phone);
    let mut v = Verdicts::new("oprf invalid point");
    runtime().block_on(async {
        for (class, element) in [
            ("oprf element 0xff * 32 (not canonical)", vec![0xff; 32]),
            ("oprf element of the identity", vec![0; 32]),
            (
                "oprf element of 31 bytes",
                blinded_phones(1)?[0][..31].to_vec(),
            ),
            (
                "oprf element of 33 bytes",
                [blinded_phones(1)?[0].clone(), vec![0]].concat(),
            ),
        ] {
            bad_oprf(&mut v, class, vec![phone], vec![element], "OPRF element").await;
        }
        node_still_serves(&mut v).await;
        anyhow::Ok(())
    })?;
    v.finish()
}

#[test]
fn oprf_of_49_elements_gets_invalid_argument() -> anyhow::Result<()> {
    let phone = wire_kind(IdentifierKind::Phone);
    let count = fedq_proto::MAX_ITEMS_PER_REQUEST + 1;
    let elements = blinded_phones(count)?;
    let mut v = Verdicts::new("oprf of 49");
    runtime().block_on(async {
        bad_oprf(
            &mut v,
            "oprf of 49 elements",
            vec![phone; count],
            elements,
            "at most 48 items",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn empty_oprf_request_gets_invalid_argument() -> anyhow::Result<()> {
    let mut v = Verdicts::new("empty oprf");
    runtime().block_on(async {
        bad_oprf(
            &mut v,
            "oprf of no elements",
            Vec::new(),
            Vec::new(),
            "at least one element",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn oprf_of_an_unknown_identifier_kind_gets_invalid_argument_and_is_audited() -> anyhow::Result<()> {
    let element = blinded_phones(1)?;
    let mut v = Verdicts::new("oprf unknown kind");
    runtime().block_on(async {
        bad_oprf(
            &mut v,
            "oprf declaring kind 42",
            vec![42],
            element,
            "unknown identifier kind",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn oprf_under_a_key_the_node_does_not_know_gets_invalid_argument_and_is_audited(
) -> anyhow::Result<()> {
    let element = blinded_phones(1)?;
    let mut v = Verdicts::new("oprf unknown key");
    // Built outside the runtime: the sandbox starts its own.
    let a = attacker();
    runtime().block_on(async {
        let id = unique("oprf-key");
        let mut request = node_oprf(
            a.requester(),
            &id,
            vec![wire_kind(IdentifierKind::Phone)],
            element,
        );
        request.key = 7;
        a.sign_oprf(NODE, &mut request, |_| {});
        let class = "oprf naming key 7";
        v.status(
            class,
            a.send_oprf(NODE, request).await,
            Code::InvalidArgument,
            "unknown OPRF key 7",
        );
        v.refusal_audited(
            class,
            a.node_audit(NODE, &id),
            a.requester(),
            "unknown OPRF key",
        );
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn a_lookup_oprf_envelope_spent_on_the_deconfliction_key_gets_unauthenticated() -> anyhow::Result<()>
{
    let element = blinded_phones(1)?;
    let mut v = Verdicts::new("oprf envelope on the deconfliction key");
    // Built outside the runtime: the sandbox starts its own.
    let a = attacker();
    runtime().block_on(async {
        let id = unique("oprf-deconflict");
        let mut request = node_oprf(
            a.requester(),
            &id,
            vec![wire_kind(IdentifierKind::Phone)],
            element,
        );
        // Signed for the node's own key, then pointed at its deconfliction
        // share: the action and the payload's domain both differ.
        a.sign_oprf(NODE, &mut request, |_| {});
        request.key = v1::OprfKey::Deconfliction.into();
        let class = "oprf envelope sent for a deconfliction evaluation";
        v.status(
            class,
            a.send_oprf(NODE, request).await,
            Code::Unauthenticated,
            "does not match the query",
        );
        v.refusal_audited(class, a.node_audit(NODE, &id), a.requester(), "envelope: ");
        node_still_serves(&mut v).await;
    });
    v.finish()
}

// ------------------------------------------------------- stats at a node

#[test]
fn stats_with_17_filters_gets_invalid_argument() -> anyhow::Result<()> {
    let mut v = Verdicts::new("17 filters");
    runtime().block_on(async {
        bad_stats(
            &mut v,
            "stats with 17 filters",
            with_filters(17),
            Code::InvalidArgument,
            "at most 16 filters",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn stats_with_200000_filters_gets_resource_exhausted_before_decoding() -> anyhow::Result<()> {
    let a = attacker();
    let mut v = Verdicts::new("200,000 filters");
    let class = "stats with 200,000 filters";
    runtime().block_on(async {
        let id = unique("filters");
        let mut request = node_stats(a.researcher(), &id, with_filters(200_000));
        a.sign_stats(&mut request, |_| {});
        v.status(
            class,
            a.send_stats(NODE, request).await,
            Code::ResourceExhausted,
            "request larger than",
        );
        v.not_audited(class, a.node_audit(NODE, &id));
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn stats_table_name_over_128_bytes_gets_invalid_argument() -> anyhow::Result<()> {
    let mut v = Verdicts::new("long table name");
    runtime().block_on(async {
        bad_stats(
            &mut v,
            "stats on a 129-byte table name",
            with_table("t".repeat(129)),
            Code::InvalidArgument,
            "longer than 128 bytes",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn stats_with_epsilon_1e_300_gets_invalid_argument_and_is_audited() -> anyhow::Result<()> {
    let mut v = Verdicts::new("epsilon 1e-300");
    runtime().block_on(async {
        bad_stats(
            &mut v,
            "stats at epsilon 1e-300",
            stats_query(1e-300),
            Code::InvalidArgument,
            "below this node's minimum",
        )
        .await;
        bad_stats(
            &mut v,
            "stats at rho 1e-300",
            with_budget(Some(Budget::Rho(1e-300))),
            Code::InvalidArgument,
            "below this node's minimum",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn stats_with_a_negative_nan_or_infinite_budget_gets_invalid_argument_and_is_audited(
) -> anyhow::Result<()> {
    let mut v = Verdicts::new("epsilon not a positive number");
    runtime().block_on(async {
        for (class, budget, fragment) in [
            (
                "epsilon -1",
                Budget::Epsilon(-1.0),
                "epsilon must be finite",
            ),
            (
                "epsilon -0",
                Budget::Epsilon(-0.0),
                "epsilon must be finite",
            ),
            (
                "epsilon NaN",
                Budget::Epsilon(f64::NAN),
                "epsilon must be finite",
            ),
            (
                "epsilon +inf",
                Budget::Epsilon(f64::INFINITY),
                "epsilon must be finite",
            ),
            (
                "epsilon -inf",
                Budget::Epsilon(f64::NEG_INFINITY),
                "epsilon must be finite",
            ),
            ("rho -1", Budget::Rho(-1.0), "rho must be finite"),
            ("rho NaN", Budget::Rho(f64::NAN), "rho must be finite"),
            ("rho +inf", Budget::Rho(f64::INFINITY), "rho must be finite"),
        ] {
            bad_stats(
                &mut v,
                &format!("stats at {class}"),
                with_budget(Some(budget)),
                Code::InvalidArgument,
                fragment,
            )
            .await;
        }
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn stats_without_a_budget_gets_invalid_argument_and_is_audited() -> anyhow::Result<()> {
    let mut v = Verdicts::new("no budget");
    runtime().block_on(async {
        bad_stats(
            &mut v,
            "stats without epsilon or rho",
            with_budget(None),
            Code::InvalidArgument,
            "exactly one of epsilon or rho",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn stats_on_an_unknown_table_gets_permission_denied() -> anyhow::Result<()> {
    let mut v = Verdicts::new("unknown table");
    runtime().block_on(async {
        bad_stats(
            &mut v,
            "stats on table salaries",
            with_table("salaries".to_owned()),
            Code::PermissionDenied,
            "rule table",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn stats_over_the_requesters_budget_cap_gets_resource_exhausted() -> anyhow::Result<()> {
    let mut v = Verdicts::new("over the cap");
    runtime().block_on(async {
        bad_stats(
            &mut v,
            "stats at epsilon 10.5 (rho 55, over the default cap of 1)",
            stats_query(10.5),
            Code::ResourceExhausted,
            "privacy budget exhausted",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn stats_with_three_group_by_entries_gets_invalid_argument() -> anyhow::Result<()> {
    let mut v = Verdicts::new("three group-bys");
    runtime().block_on(async {
        bad_stats(
            &mut v,
            "stats grouped by three columns",
            v1::StatsQuery {
                group_by: vec!["category".into(), "sector".into(), "month".into()],
                ..stats_query(0.05)
            },
            Code::InvalidArgument,
            "at most 2 group-by entries",
        )
        .await;
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn stats_past_the_per_requester_hourly_limit_get_resource_exhausted() -> anyhow::Result<()> {
    // Its own federation: a limit of 3 an hour would refuse other tests.
    runtime().block_on(async {
        let sandbox = FederationSandbox::builder()
            .jurisdiction("rl")
            .people(200)
            .edit_node_toml(|t| t.replace("[policy.stats]\n", "[policy.stats]\nper_hour = 3\n"))
            .build()
            .await?;
        let a = Attacker::new(&sandbox)?;
        let mut v = Verdicts::new("stats rate limit");
        for i in 0..3 {
            let mut request = node_stats(a.researcher(), &unique("within"), stats_query(0.05));
            a.sign_stats(&mut request, |_| {});
            let answer = a.send_stats("rl", request).await;
            v.check("stats within the limit", answer.is_ok(), || {
                format!("query {i} of 3 refused: {answer:?}")
            });
        }
        let class = "4th stats query within an hour (limit 3)";
        let id = unique("past");
        let mut request = node_stats(a.researcher(), &id, stats_query(0.05));
        a.sign_stats(&mut request, |_| {});
        v.status(
            class,
            a.send_stats("rl", request).await,
            Code::ResourceExhausted,
            "rule rate_limit",
        );
        v.refusal_audited(
            class,
            a.node_audit("rl", &id),
            a.researcher(),
            "rule rate_limit",
        );
        // Through the coordinator: reported as refused by the node.
        let response = a
            .send_coordinator_stats(a.coordinator_stats(&unique("c"), stats_query(0.05)))
            .await;
        match response {
            Ok(response) => v.check(
                "5th stats query, via the coordinator",
                response.nodes.len() == 1
                    && response.nodes[0].outcome() == NodeOutcome::Refused
                    && response.nodes[0].reason.contains("rate_limit"),
                || format!("{:?}", response.nodes),
            ),
            Err(status) => v.check("5th stats query, via the coordinator", false, || {
                format!("{status:?}")
            }),
        }
        v.require("afterwards", a.node_serves("rl").await);
        v.finish()
    })
}

// ---------------------------------------------- stats via the coordinator

/// Sends `query` to the coordinator and expects `code` with `fragment`, and
/// (when `audited`) its refusal in the coordinator's audit log.
async fn bad_coordinator_stats(
    v: &mut Verdicts,
    class: &str,
    query: v1::StatsQuery,
    edit: impl FnOnce(&mut v1::StatsRequest),
    (code, fragment): (Code, &str),
    audited: bool,
) {
    let a = attacker();
    let case = unique("case");
    let mut request = a.coordinator_stats(&case, query);
    edit(&mut request);
    v.status(
        class,
        a.send_coordinator_stats(request).await,
        code,
        fragment,
    );
    if audited {
        v.refusal_audited(class, a.coordinator_audit(&case), a.researcher(), fragment);
    } else {
        v.not_audited(class, a.coordinator_audit(&case));
    }
}

#[test]
fn a_caller_carrying_an_envelope_it_did_not_sign_for_itself_gets_unauthenticated(
) -> anyhow::Result<()> {
    let a = attacker();
    let mut v = Verdicts::new("caller is not the signer");
    let query = || stats_query(0.5);
    let mut bobs = a.envelope("stats", &Default::default(), &"0".repeat(64));
    bobs.requester = "bob".to_owned();
    runtime().block_on(async {
        // Bob's envelope (his own key) on rosa's connection (statistics are
        // the researcher's).
        let bob = fedq_crypto::envelope::SigningKey::generate();
        bad_coordinator_stats(
            &mut v,
            "bob's envelope on rosa's connection",
            query(),
            |r| {
                let context = r.context.as_mut().expect("context");
                let mut envelope = bobs.clone();
                envelope.payload_hash =
                    fedq_proto::payload::stats_payload_hash(r.query.as_ref().expect("query"));
                envelope.purpose = context.purpose.clone();
                context.envelope = Some(fedq_proto::payload::to_wire(bob.sign(&envelope)));
            },
            (Code::Unauthenticated, "not signed by the caller"),
            true,
        )
        .await;
        // A federation member's key (alice's), naming bob, on rosa's connection.
        bad_coordinator_stats(
            &mut v,
            "alice's signature over an envelope naming bob, on rosa's connection",
            query(),
            |r| {
                let context = r.context.as_mut().expect("context");
                let mut envelope = a.envelope(
                    "stats",
                    context,
                    &fedq_proto::payload::stats_payload_hash(r.query.as_ref().expect("query")),
                );
                envelope.requester = "bob".to_owned();
                context.envelope = Some(a.sign(&envelope));
            },
            (Code::Unauthenticated, "not signed by the caller"),
            true,
        )
        .await;
        both_still_serve(&mut v).await;
    });
    v.finish()
}

#[test]
fn coordinator_stats_with_17_filters_gets_invalid_argument() -> anyhow::Result<()> {
    let mut v = Verdicts::new("coordinator 17 filters");
    runtime().block_on(async {
        bad_coordinator_stats(
            &mut v,
            "coordinator stats with 17 filters",
            with_filters(17),
            |_| {},
            (Code::InvalidArgument, "at most 16 filters"),
            true,
        )
        .await;
        both_still_serve(&mut v).await;
    });
    v.finish()
}

#[test]
fn coordinator_stats_with_200000_filters_gets_resource_exhausted_before_decoding(
) -> anyhow::Result<()> {
    let mut v = Verdicts::new("coordinator 200,000 filters");
    runtime().block_on(async {
        bad_coordinator_stats(
            &mut v,
            "coordinator stats with 200,000 filters",
            with_filters(200_000),
            |_| {},
            (Code::ResourceExhausted, "request larger than"),
            false,
        )
        .await;
        both_still_serve(&mut v).await;
    });
    v.finish()
}

#[test]
fn coordinator_stats_table_name_over_128_bytes_gets_invalid_argument() -> anyhow::Result<()> {
    let mut v = Verdicts::new("coordinator long table name");
    runtime().block_on(async {
        bad_coordinator_stats(
            &mut v,
            "coordinator stats on a 129-byte table name",
            with_table("t".repeat(129)),
            |_| {},
            (Code::InvalidArgument, "longer than 128 bytes"),
            true,
        )
        .await;
        both_still_serve(&mut v).await;
    });
    v.finish()
}

#[test]
fn coordinator_stats_with_a_purpose_over_256_bytes_gets_invalid_argument() -> anyhow::Result<()> {
    let mut v = Verdicts::new("coordinator long purpose");
    runtime().block_on(async {
        bad_coordinator_stats(
            &mut v,
            "coordinator stats with a 300-byte purpose",
            stats_query(0.05),
            |r| r.context.as_mut().expect("context").purpose = "p".repeat(300),
            (Code::InvalidArgument, "longer than 256 bytes"),
            true,
        )
        .await;
        both_still_serve(&mut v).await;
    });
    v.finish()
}

/// Sends `query` through the coordinator, which answers; every node must
/// report it invalid with `fragment`, and have audited its refusal.
async fn invalid_at_every_node(
    v: &mut Verdicts,
    class: &str,
    query: v1::StatsQuery,
    fragment: &str,
) {
    let a = attacker();
    let request = a.coordinator_stats(&unique("case"), query);
    match a.send_coordinator_stats(request).await {
        Ok(response) => {
            eprintln!("[hostile] {class}: answered, nodes {:?}", response.nodes);
            v.check(class, !response.nodes.is_empty(), || {
                "no node statuses".to_owned()
            });
            for node in &response.nodes {
                v.check(
                    class,
                    node.outcome() == NodeOutcome::Invalid && node.reason.contains(fragment),
                    || format!("node {} reported {node:?}", node.node),
                );
                v.refusal_audited(
                    &format!("{class} (audit at {})", node.node),
                    a.node_audit(&node.node, &response.query_id),
                    a.researcher(),
                    fragment,
                );
            }
            v.check(class, response.groups.is_empty(), || {
                "groups were released".to_owned()
            });
        }
        Err(status) => {
            eprintln!(
                "[hostile] {class}: {:?} {:?}",
                status.code(),
                status.message()
            );
            v.check(class, false, || {
                format!("the coordinator refused: {status:?}")
            });
        }
    }
}

#[test]
fn coordinator_stats_at_epsilon_1e_300_is_reported_invalid_by_every_node() -> anyhow::Result<()> {
    let mut v = Verdicts::new("coordinator epsilon 1e-300");
    runtime().block_on(async {
        invalid_at_every_node(
            &mut v,
            "coordinator stats at epsilon 1e-300",
            stats_query(1e-300),
            "below this node's minimum",
        )
        .await;
        both_still_serve(&mut v).await;
    });
    v.finish()
}

#[test]
fn coordinator_stats_at_nan_epsilon_is_reported_invalid_by_every_node() -> anyhow::Result<()> {
    let mut v = Verdicts::new("coordinator NaN epsilon");
    runtime().block_on(async {
        invalid_at_every_node(
            &mut v,
            "coordinator stats at epsilon NaN",
            stats_query(f64::NAN),
            "epsilon must be finite",
        )
        .await;
        both_still_serve(&mut v).await;
    });
    v.finish()
}

// -------------------------------------------------------------- transport

#[test]
fn requester_certificate_calling_a_node_with_40_mb_gets_permission_denied() -> anyhow::Result<()> {
    let a = attacker();
    let mut v = Verdicts::new("requester calls a node");
    let class = "alice's certificate, 40 MB lookup, straight to the node";
    runtime().block_on(async {
        let id = unique("direct");
        let mut request = a.lookup(NODE, &id);
        request.items[0].encrypted_tag = vec![0x5a; 40 << 20];
        a.sign_lookup(NODE, &mut request, |_| {});
        let started = Instant::now();
        let result = match a.node_client(NODE, As::Requester).await {
            Ok(mut client) => client.lookup(request).await.map(|r| r.into_inner()),
            Err(status) => Err(status),
        };
        v.status(class, result, Code::PermissionDenied, "caller not allowed");
        v.check(class, started.elapsed() < Duration::from_secs(30), || {
            format!("the refusal took {:?}", started.elapsed())
        });
        v.not_audited(class, a.node_audit(NODE, &id));

        let class = "a node's certificate calling a node";
        let id = unique("node-cert");
        let mut request = a.lookup(NODE, &id);
        a.sign_lookup(NODE, &mut request, |_| {});
        let result = match a.node_client(NODE, As::Node(NODE)).await {
            Ok(mut client) => client.lookup(request).await.map(|r| r.into_inner()),
            Err(status) => Err(status),
        };
        // Refused before any request: the node's certificate carries server
        // authentication only, so the handshake fails (seen as a transport
        // error or a cancelled call, depending on when the alert arrives).
        v.check(class, refused_at_handshake(&result), || {
            format!("{result:?}")
        });
        v.not_audited(class, a.node_audit(NODE, &id));
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn bodies_over_the_per_rpc_limit_get_resource_exhausted_before_decoding() -> anyhow::Result<()> {
    let a = attacker();
    let mut v = Verdicts::new("body over the per-RPC limit");
    runtime().block_on(async {
        let class = "1 MB stats request (table name) to the node";
        let id = unique("mb");
        let mut request = node_stats(a.researcher(), &id, with_table("t".repeat(1 << 20)));
        a.sign_stats(&mut request, |_| {});
        v.status(
            class,
            a.send_stats(NODE, request).await,
            Code::ResourceExhausted,
            "request larger than",
        );
        v.not_audited(class, a.node_audit(NODE, &id));

        let class = "100 KB OPRF request (3,000 elements) to the node";
        let id = unique("oprf-kb");
        let elements = vec![vec![1u8; 32]; 3_000];
        let mut request = node_oprf(a.requester(), &id, vec![3; 3_000], elements);
        a.sign_oprf(NODE, &mut request, |_| {});
        v.status(
            class,
            a.send_oprf(NODE, request).await,
            Code::ResourceExhausted,
            "request larger than",
        );
        v.not_audited(class, a.node_audit(NODE, &id));

        let class = "32 KB budget request to the node";
        let result = match a.node_client(NODE, As::Coordinator).await {
            Ok(mut client) => client
                .budget(v1::BudgetRequest {
                    requester: "a".repeat(32 * 1024),
                })
                .await
                .map(|r| r.into_inner()),
            Err(status) => Err(status),
        };
        v.status(
            class,
            result,
            Code::ResourceExhausted,
            "request larger than",
        );

        let class = "1 MB stats request (purpose) to the coordinator";
        let mut request = a.coordinator_stats(&unique("case"), stats_query(0.05));
        request.context.as_mut().expect("context").purpose = "p".repeat(1 << 20);
        v.status(
            class,
            a.send_coordinator_stats(request).await,
            Code::ResourceExhausted,
            "request larger than",
        );
        both_still_serve(&mut v).await;
    });
    v.finish()
}

#[test]
fn bytes_that_are_not_a_protobuf_message_get_invalid_argument_and_the_node_keeps_serving(
) -> anyhow::Result<()> {
    let a = attacker();
    let mut v = Verdicts::new("not protobuf");
    runtime().block_on(async {
        for (class, who, path, bytes) in [
            (
                "0xff * 64 as a node stats request",
                As::Coordinator,
                "/fedq.v1.Node/Stats",
                vec![0xff; 64],
            ),
            (
                "random bytes as a node lookup",
                As::Coordinator,
                "/fedq.v1.Node/Lookup",
                random_bytes(4096),
            ),
            // Field 1 (query_id, a string) as a varint: the wrong wire type.
            (
                "wrong wire type in a node oprf request",
                As::Coordinator,
                "/fedq.v1.Node/Oprf",
                vec![0x08, 0x01],
            ),
            // Field 3 (context) declaring 1 GB of bytes that never come.
            (
                "length prefix past the end in a node stats request",
                As::Coordinator,
                "/fedq.v1.Node/Stats",
                vec![0x1a, 0x80, 0x80, 0x80, 0x80, 0x04, 0x00],
            ),
            (
                "0xff * 64 as a coordinator stats request",
                As::Requester,
                "/fedq.v1.Coordinator/Stats",
                vec![0xff; 64],
            ),
        ] {
            let channel = if matches!(who, As::Requester) {
                a.coordinator_channel(who).await
            } else {
                a.node_channel(NODE, who).await
            };
            let result = match channel {
                Ok(channel) => raw::unary(channel, path, bytes).await,
                Err(e) => Err(tonic::Status::unavailable(format!("{e:#}"))),
            };
            if let Some(status) = v.status(class, result, Code::InvalidArgument, "does not decode")
            {
                v.check(class, !status.message().is_empty(), || {
                    "no reason given".to_owned()
                });
            }
        }
        both_still_serve(&mut v).await;
    });
    v.finish()
}

/// Opens `count` TCP connections to `address` that send `prefix` and then
/// nothing; returns how long each stayed open (`None`: still open after 10 s).
fn idle_connections(
    address: &str,
    count: usize,
    prefix: &'static [u8],
) -> Vec<std::thread::JoinHandle<Option<Duration>>> {
    (0..count)
        .map(|_| {
            let address = address.to_owned();
            std::thread::spawn(move || {
                let started = Instant::now();
                let mut stream = std::net::TcpStream::connect(&address).ok()?;
                stream.write_all(prefix).ok()?;
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .ok()?;
                let mut buffer = [0u8; 1024];
                loop {
                    match stream.read(&mut buffer) {
                        // Closed (EOF or reset): how long it lived.
                        Ok(0) => return Some(started.elapsed()),
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) =>
                        {
                            return None
                        }
                        Err(_) => return Some(started.elapsed()),
                        // A TLS alert: keep reading until the close.
                        Ok(_) => {}
                    }
                }
            })
        })
        .collect()
}

#[test]
fn tcp_connections_that_never_finish_a_tls_handshake_are_closed_after_one_second(
) -> anyhow::Result<()> {
    let a = attacker();
    let mut v = Verdicts::new("idle handshakes");
    // A TLS record header announcing a ClientHello that never comes.
    const SILENT: &[u8] = &[];
    const PARTIAL_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01];
    let node = a.node_address(NODE)?;
    let coordinator = a.coordinator_address();
    let mut waiting = Vec::new();
    for (class, address, prefix) in [
        ("silent TCP connection to the node", &node, SILENT),
        ("partial ClientHello to the node", &node, PARTIAL_HELLO),
        (
            "silent TCP connection to the coordinator",
            &coordinator,
            SILENT,
        ),
        (
            "partial ClientHello to the coordinator",
            &coordinator,
            PARTIAL_HELLO,
        ),
    ] {
        waiting.push((class, idle_connections(address, 10, prefix)));
    }
    // While forty handshakes hang, honest calls are served.
    runtime().block_on(both_still_serve(&mut v));
    for (class, threads) in waiting {
        let lifetimes: Vec<Option<Duration>> = threads
            .into_iter()
            .map(|t| t.join().unwrap_or(None))
            .collect();
        eprintln!("[hostile] {class}: closed after {lifetimes:?}");
        v.check(
            class,
            lifetimes.iter().all(|l| {
                l.is_some_and(|l| l >= Duration::from_millis(900) && l < Duration::from_secs(5))
            }),
            || format!("with a 1 s handshake timeout, connections lived {lifetimes:?}"),
        );
    }
    runtime().block_on(both_still_serve(&mut v));
    v.finish()
}

// ------------------------------------------------------------ coordinator

#[test]
fn certificates_of_non_requesters_calling_the_coordinator_get_permission_denied(
) -> anyhow::Result<()> {
    let a = attacker();
    let mut v = Verdicts::new("non-requester calls the coordinator");
    runtime().block_on(async {
        for (class, who) in [
            (
                "a node's certificate calling the coordinator",
                As::Node(NODE),
            ),
            (
                "the coordinator's certificate calling the coordinator",
                As::Coordinator,
            ),
        ] {
            let case = unique("case");
            let result = match a.coordinator_client(who).await {
                Ok(mut client) => client
                    .stats(a.coordinator_stats(&case, stats_query(0.05)))
                    .await
                    .map(|r| r.into_inner()),
                Err(status) => Err(status),
            };
            // A node's certificate is for serving only: refused at the handshake.
            if matches!(who, As::Node(_)) {
                v.check(class, refused_at_handshake(&result), || {
                    format!("{result:?}")
                });
            } else {
                v.status(class, result, Code::PermissionDenied, "caller not allowed");
            }
            v.not_audited(class, a.coordinator_audit(&case));
        }
        both_still_serve(&mut v).await;
    });
    v.finish()
}

#[test]
fn register_key_of_5_mb_gets_resource_exhausted() -> anyhow::Result<()> {
    let a = attacker();
    let mut v = Verdicts::new("5 MB key");
    runtime().block_on(async {
        let result = match a.coordinator_client(As::Requester).await {
            Ok(mut client) => client
                .register_key(v1::RegisterKeyRequest {
                    public_key: random_bytes(1 << 20),
                    expansion_key: random_bytes(4 << 20),
                })
                .await
                .map(|r| r.into_inner()),
            Err(status) => Err(status),
        };
        v.status(
            "RegisterKey with 5 MB of keys",
            result,
            Code::ResourceExhausted,
            "request larger than",
        );
        both_still_serve(&mut v).await;
    });
    v.finish()
}

#[test]
fn register_key_with_a_garbage_key_gets_invalid_argument() -> anyhow::Result<()> {
    let a = attacker();
    let honest = a.public_key().to_bytes().to_vec();
    let mut zero_n = honest.clone();
    let at = zero_n.len() - 32;
    zero_n[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
    let mut v = Verdicts::new("garbage key");
    runtime().block_on(async {
        for (class, key) in [
            ("RegisterKey with 1 KiB of garbage", random_bytes(1024)),
            ("RegisterKey with an empty key", Vec::new()),
            ("RegisterKey with polynomial size 0", zero_n),
        ] {
            let result = match a.coordinator_client(As::Requester).await {
                Ok(mut client) => client
                    .register_key(v1::RegisterKeyRequest {
                        public_key: key,
                        expansion_key: Vec::new(),
                    })
                    .await
                    .map(|r| r.into_inner()),
                Err(status) => Err(status),
            };
            v.status(class, result, Code::InvalidArgument, "public key");
        }
        // An honest public key with an expansion key of the wrong size or
        // format: refused whole, nothing registered.
        let size = fedq_crypto::lookup::ExpansionKey::encoded_len();
        let mut wrong_format = random_bytes(size);
        wrong_format[0] = 9;
        for (class, expansion_key) in [
            (
                "RegisterKey with a 1 MiB expansion key",
                random_bytes(1 << 20),
            ),
            (
                "RegisterKey with an expansion key of another format",
                wrong_format,
            ),
        ] {
            let result = match a.coordinator_client(As::Requester).await {
                Ok(mut client) => client
                    .register_key(v1::RegisterKeyRequest {
                        public_key: honest.clone(),
                        expansion_key,
                    })
                    .await
                    .map(|r| r.into_inner()),
                Err(status) => Err(status),
            };
            v.status(class, result, Code::InvalidArgument, "expansion key");
        }
        both_still_serve(&mut v).await;
    });
    v.finish()
}

#[test]
fn an_investigators_statistics_and_a_researchers_lookup_get_permission_denied() -> anyhow::Result<()>
{
    let a = attacker();
    let mut v = Verdicts::new("roles per action");
    runtime().block_on(async {
        let class = "alice (investigator) asks statistics";
        let id = unique("role-stats");
        let mut request = node_stats(a.requester(), &id, stats_query(0.5));
        a.sign_stats(&mut request, |e| {
            e.requester = a.requester().to_owned();
            e.role = "investigator".to_owned();
        });
        v.status(
            class,
            a.send_stats(NODE, request).await,
            Code::PermissionDenied,
            "role investigator may not stats",
        );
        v.refusal_audited(class, a.node_audit(NODE, &id), a.requester(), "rule role");

        let class = "rosa (researcher) looks an identifier up";
        let id = unique("role-lookup");
        let mut request = a.lookup(NODE, &id);
        request.requester = a.researcher().to_owned();
        a.sign_lookup(NODE, &mut request, |e| {
            e.requester = a.researcher().to_owned();
            e.role = "researcher".to_owned();
        });
        v.status(
            class,
            a.send_lookup(NODE, request).await,
            Code::PermissionDenied,
            "role researcher may not lookup",
        );
        v.refusal_audited(class, a.node_audit(NODE, &id), a.researcher(), "rule role");
        both_still_serve(&mut v).await;
    });
    v.finish()
}

#[test]
fn a_dry_run_turned_into_a_release_on_the_way_gets_unauthenticated() -> anyhow::Result<()> {
    let a = attacker();
    let mut v = Verdicts::new("dry run flipped");
    runtime().block_on(async {
        // The researcher signs a dry run; a coordinator flips it into a
        // charged release before passing it on.
        let class = "signed dry run forwarded as a release";
        let id = unique("dry-flip");
        let mut query = stats_query(0.5);
        query.dry_run = true;
        let mut request = node_stats(a.researcher(), &id, query);
        a.sign_stats(&mut request, |_| {});
        if let Some(query) = request.query.as_mut() {
            query.dry_run = false;
        }
        v.status(
            class,
            a.send_stats(NODE, request).await,
            Code::Unauthenticated,
            "does not match",
        );
        v.refusal_audited(class, a.node_audit(NODE, &id), a.researcher(), "envelope: ");
        node_still_serves(&mut v).await;
    });
    v.finish()
}

#[test]
fn a_flood_of_refusals_cannot_fill_the_audit_log() -> anyhow::Result<()> {
    // Its own federation: its limit of 20 refusals a minute would mute the
    // other tests' checks.
    runtime().block_on(async {
        let sandbox = FederationSandbox::builder()
            .jurisdiction("fl")
            .people(200)
            .edit_node_toml(|t| format!("{t}\n[limits]\nrefusal_audits_per_minute = 20\n"))
            .build()
            .await?;
        let a = Attacker::new(&sandbox)?;
        let mut v = Verdicts::new("refusal flood");
        let class = "100 stats requests with a bad signature";
        let mut ids = Vec::new();
        for _ in 0..100 {
            let id = unique("flood");
            let mut request = node_stats(a.researcher(), &id, stats_query(0.05));
            a.sign_stats(&mut request, |_| {});
            if let Some(envelope) = request.context.as_mut().and_then(|c| c.envelope.as_mut()) {
                envelope.signature[10] ^= 1;
            }
            let answer = a.send_stats("fl", request).await;
            v.check(
                class,
                answer.as_ref().err().map(tonic::Status::code) == Some(Code::Unauthenticated),
                || format!("not refused as unauthenticated: {answer:?}"),
            );
            ids.push(id);
        }
        let mut audited = 0;
        for id in &ids {
            audited += a.node_audit("fl", id)?.len();
        }
        v.check(class, audited == 20, || {
            format!("{audited} of 100 refusals audited one by one, want the limit of 20")
        });
        // The flood of unverified requests does not mute a verified
        // requester: its refusal (a budget below the minimum) is audited.
        let id = unique("after");
        let mut request = node_stats(a.researcher(), &id, stats_query(1e-300));
        a.sign_stats(&mut request, |_| {});
        v.status(
            "a verified refusal after the flood",
            a.send_stats("fl", request).await,
            Code::InvalidArgument,
            "below this node's minimum",
        );
        v.refusal_audited(
            "a verified refusal after the flood",
            a.node_audit("fl", &id),
            a.researcher(),
            "below this node's minimum",
        );
        let serves = a.node_serves("fl").await;
        v.check("node serves after the flood", serves.is_ok(), || {
            format!("{serves:?}")
        });
        v.finish()
    })
}

/// Health `Watch` and reflection are streams that any certificate of the
/// federation may open, before the caller check. A requester holding more of
/// them open (four health streams and a reflection stream on each of three
/// connections) than the node and the coordinator allow requests in flight must
/// not crowd out a lookup: a stream's handler returns at once, so it does
/// not keep a slot of the in-flight limit while it stays open.
#[test]
fn open_health_streams_do_not_crowd_out_lookups() -> anyhow::Result<()> {
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, ServerReflectionRequest,
    };
    const IN_FLIGHT: usize = 4;
    runtime().block_on(async {
        let limits = format!("[limits]\nmax_requests_in_flight = {IN_FLIGHT}\n");
        let sandbox = FederationSandbox::builder()
            .jurisdiction("hs")
            .people(100)
            .node_toml(&limits)
            .coordinator_toml(&limits)
            .build()
            .await?;
        let alice = fedq_client::ClientConfig::load(&sandbox.output.client)?;
        let federation = &alice.federation;
        let parties = [
            (federation.nodes[0].address.clone(), "hs", "fedq.v1.Node"),
            (
                federation.coordinator.address.clone(),
                "coordinator",
                "fedq.v1.Coordinator",
            ),
        ];
        let mut open = Vec::new();
        let mut reflections = Vec::new();
        for (address, server_name, service) in parties {
            // Three times the limit, over connections of four streams each.
            for _ in 0..3 {
                let channel =
                    tonic::transport::Endpoint::from_shared(format!("https://{address}"))?
                        .tls_config(fedq_transport::tls::client_config(&alice.tls, server_name)?)?
                        .connect()
                        .await?;
                for _ in 0..IN_FLIGHT {
                    let mut stream = HealthClient::new(channel.clone())
                        .watch(HealthCheckRequest {
                            service: service.to_owned(),
                        })
                        .await?
                        .into_inner();
                    // The first status arrives: the stream is open and stays so.
                    anyhow::ensure!(stream.message().await?.is_some(), "{service}: no status");
                    open.push(stream);
                }
                // And a reflection stream whose requests never end.
                let list = ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(MessageRequest::ListServices(String::new())),
                };
                let requests = tokio_stream::StreamExt::chain(
                    tokio_stream::iter([list]),
                    tokio_stream::pending(),
                );
                let mut reflection = ServerReflectionClient::new(channel)
                    .server_reflection_info(requests)
                    .await?
                    .into_inner();
                anyhow::ensure!(
                    reflection.message().await?.is_some(),
                    "{service}: no services listed"
                );
                reflections.push(reflection);
            }
        }
        let mut requester = sandbox.requester().await?;
        let input = fedq_client::LookupInput {
            kind: IdentifierKind::Email,
            value: "nobody.at.all@example.invalid".to_owned(),
        };
        let report = requester
            .lookup(std::slice::from_ref(&input), "fraud", "T-1")
            .await?;
        assert!(
            report.nodes.iter().all(|n| n.status == NodeOutcome::Ok),
            "{} open health and {} reflection streams crowded out a lookup: {:?}",
            open.len(),
            reflections.len(),
            report.nodes
        );
        assert_eq!(report.results[0].jurisdictions, 0);
        drop((open, reflections));
        Ok(())
    })
}
