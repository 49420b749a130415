//! Encrypted lookups across a federation of three nodes and a coordinator,
//! over mutual TLS sockets on loopback.

use std::sync::{Arc, OnceLock};

use anyhow::Context;
use fedq_client::LookupInput;
use fedq_crypto::lookup::{
    generate_keys, CountEncoding, EncryptedCount, EncryptedTag, FhePublicKey, FheSecretKey,
};
use fedq_crypto::{FingerprintParams, IdentifierKind};
use fedq_proto::v1;
use fedq_tests::fixtures::GroundTruth;
use fedq_tests::sandbox::{runtime, FederationSandbox};
use prost::Message;

fn sandbox() -> &'static FederationSandbox {
    static SANDBOX: OnceLock<FederationSandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        runtime()
            .block_on(
                FederationSandbox::builder()
                    .jurisdiction("fr")
                    .jurisdiction("de")
                    .jurisdiction("nl")
                    .people(2_000)
                    .build(),
            )
            .expect("sandbox starts")
    })
}

fn params() -> FingerprintParams {
    FingerprintParams::new(12, 28).expect("default parameters")
}

fn truth() -> &'static GroundTruth {
    static TRUTH: OnceLock<GroundTruth> = OnceLock::new();
    TRUTH.get_or_init(|| GroundTruth::load(sandbox(), params()).expect("ground truth"))
}

/// The count in one node's answer, decoded as a federation of `nodes`
/// encodes it (the envelope's audience).
fn count(answer: &[u8], nodes: usize) -> anyhow::Result<u32> {
    let (secret, _) = direct_keys();
    Ok(EncryptedCount::from_bytes(answer)?.decrypt(secret, CountEncoding::for_nodes(nodes)?))
}

/// A key pair for talking to nodes directly (test-only path).
fn direct_keys() -> &'static (FheSecretKey, FhePublicKey) {
    static KEYS: OnceLock<(FheSecretKey, FhePublicKey)> = OnceLock::new();
    KEYS.get_or_init(generate_keys)
}

/// Calls one node directly with the coordinator's certificate, as the
/// coordinator would, so each node's answer can be decrypted on its own.
async fn ask_node(
    node: &str,
    request: v1::NodeLookupRequest,
) -> anyhow::Result<v1::NodeLookupResponse> {
    ask_node_in(sandbox(), node, request).await
}

/// [`ask_node`] in another sandbox.
async fn ask_node_in(
    sandbox: &FederationSandbox,
    node: &str,
    mut request: v1::NodeLookupRequest,
) -> anyhow::Result<v1::NodeLookupResponse> {
    // A fresh envelope per call: nodes refuse a replayed nonce.
    let payload_hash = fedq_proto::payload::node_lookup_payload_hash(node, &request);
    let context = request.context.get_or_insert_with(Default::default);
    context.envelope = Some(sandbox.sign("lookup", &context.purpose, payload_hash)?);
    let federation = fedq_proto::federation::FederationFile::load(&sandbox.output.federation)?;
    let coordinator =
        fedq_coordinator::config::CoordinatorConfig::load(&sandbox.output.coordinator)?;
    let entry = federation
        .nodes
        .iter()
        .find(|n| n.id == node)
        .context("node")?;
    let handles = fedq_coordinator::node_client::connect_nodes(
        std::slice::from_ref(entry),
        &coordinator.tls,
        std::time::Duration::from_secs(60),
    )?;
    let mut client = handles.into_iter().next().context("client")?.client;
    Ok(client.lookup(request).await?.into_inner())
}

/// A lookup for one node, with tags under that node's own OPRF key (read
/// from the node itself: the test stands in for the blinded round trip).
fn node_request(
    node: &str,
    items: &[(IdentifierKind, &str)],
) -> anyhow::Result<v1::NodeLookupRequest> {
    let service = node_service(node)?;
    let fingerprints = items
        .iter()
        .map(|(kind, raw)| Ok(service.fingerprint(*kind, &fedq_crypto::normalise(*kind, raw)?)?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    request_with_tags(items, &fingerprints, &service.oprf_key_id()?.to_string())
}

/// A lookup of `items` with the given fingerprints, naming OPRF key `oprf_key_id`.
fn request_with_tags(
    items: &[(IdentifierKind, &str)],
    fingerprints: &[fedq_crypto::Fingerprint],
    oprf_key_id: &str,
) -> anyhow::Result<v1::NodeLookupRequest> {
    let (secret, public) = direct_keys();
    let mut wire_items = Vec::new();
    for ((kind, _), fp) in items.iter().zip(fingerprints) {
        wire_items.push(v1::LookupItem {
            kind: i32::from(kind.code()),
            bucket: fp.bucket(params()).0,
            encrypted_tag: EncryptedTag::encrypt(secret, fp.tag(params()), params().tag_bits())
                .to_bytes(),
        });
    }
    Ok(v1::NodeLookupRequest {
        query_id: "test-query".to_owned(),
        requester: "alice".to_owned(),
        key_id: public.id().as_str().to_owned(),
        public_key: public.to_bytes().to_vec(),
        context: Some(v1::RequestContext {
            purpose: "fraud".to_owned(),
            case_reference: "T-1".to_owned(),
            ..Default::default()
        }),
        items: wire_items,
        disclose: false,
        authorization: String::new(),
        oprf_key_id: oprf_key_id.to_owned(),
        expansion_key_id: String::new(),
        expansion_key: Vec::new(),
    })
}

fn node_service(node: &str) -> anyhow::Result<std::sync::Arc<fedq_node::NodeService>> {
    sandbox().node(node)
}

#[test]
fn each_node_hits_exactly_when_it_holds_the_identifier() -> anyhow::Result<()> {
    let truth = truth();
    let shared = truth.held_by(IdentifierKind::Phone, 2);
    let single = truth.held_by(IdentifierKind::Email, 1);
    let picks = [
        shared.first().context("a shared phone")?,
        single.first().context("a local email")?,
    ];
    let items: Vec<(IdentifierKind, &str)> =
        picks.iter().map(|i| (i.kind, i.raw.as_str())).collect();
    runtime().block_on(async {
        for (node, service) in &sandbox().nodes {
            let response = ask_node(node, node_request(node, &items)?).await?;
            assert_eq!(response.answers.len(), items.len());
            for (answer, pick) in response.answers.iter().zip(picks) {
                let count = count(answer, sandbox().nodes.len())?;
                let normal = fedq_crypto::normalise(pick.kind, &pick.raw)?;
                let holds = service.holds(pick.kind, &normal)?;
                assert_eq!(
                    holds,
                    pick.holders.contains(node),
                    "ground truth agrees with the store"
                );
                assert_eq!(
                    count,
                    u32::from(holds),
                    "node {node} answers {count} for {:?}",
                    pick.kind
                );
            }
        }
        Ok(())
    })
}

#[test]
fn the_coordinator_counts_jurisdictions_and_spelling_variants_hit() -> anyhow::Result<()> {
    let truth = truth();
    let shared = truth.held_by(IdentifierKind::Phone, 2);
    let shared = shared.first().context("a shared phone")?;
    let local = truth.held_by(IdentifierKind::Iban, 1);
    let local = local.first().context("a local iban")?;
    let normal = fedq_crypto::normalise(IdentifierKind::Phone, &shared.raw)?;
    let variant = format!("00{}", normal.as_str().trim_start_matches('+'));
    let iban_variant = fedq_crypto::normalise(IdentifierKind::Iban, &local.raw)?
        .as_str()
        .to_lowercase();
    let inputs = vec![
        LookupInput {
            kind: IdentifierKind::Phone,
            value: shared.raw.clone(),
        },
        LookupInput {
            kind: IdentifierKind::Phone,
            value: variant,
        },
        LookupInput {
            kind: IdentifierKind::Iban,
            value: iban_variant,
        },
        LookupInput {
            kind: IdentifierKind::Email,
            value: "nobody.at.all@example.invalid".to_owned(),
        },
    ];
    let report = runtime().block_on(async {
        let mut requester = sandbox().requester().await?;
        requester.lookup(&inputs, "fraud", "T-2").await
    })?;
    let counts: Vec<u32> = report.results.iter().map(|r| r.jurisdictions).collect();
    assert_eq!(counts, vec![2, 2, 1, 0]);
    // The sandbox's requester registered an expansion key: three items
    // packed in one group (format 4, 10,262 bytes for the three) and the
    // fourth compressed alone (format 3, 24,609), per node.
    assert_eq!(
        report.stats.bytes_up,
        3 * (10_262 + fedq_crypto::lookup::CompressedTag::encoded_len())
    );
    assert_eq!(
        report.stats.bytes_up,
        3 * fedq_crypto::lookup::packed::encoded_items_len(inputs.len(), 28, true)
    );
    assert_eq!(
        report.results.iter().map(|r| r.hit).collect::<Vec<_>>(),
        vec![true, true, true, false]
    );
    assert_eq!(report.nodes.len(), 3);
    assert!(
        report.nodes.iter().all(|n| n.status.word() == "ok"),
        "{:?}",
        report.nodes
    );
    let json = serde_json::to_value(&report)?;
    assert_eq!(json["results"][0]["kind"], "phone");
    assert_eq!(json["results"][0]["hit"], true);
    assert_eq!(json["results"][0]["jurisdictions"], 2);
    assert_eq!(json["nodes"][0]["status"], "ok");
    Ok(())
}

#[test]
fn empty_and_fullest_buckets_answer_correctly() -> anyhow::Result<()> {
    let truth = truth();
    let (full, size) = truth.in_fullest_bucket().context("a bucket")?;
    assert!(size >= 2, "fullest bucket has {size} candidates");
    // An identifier whose bucket (each node's own) holds nothing at any node.
    let empty = (0..10_000)
        .map(|i| format!("empty.bucket.{i}@example.org"))
        .find(|raw| {
            let normal = fedq_crypto::normalise(IdentifierKind::Email, raw).expect("email");
            sandbox().nodes.iter().all(|(node, _)| {
                let bucket = sandbox()
                    .bucket(node, IdentifierKind::Email, &normal, params())
                    .expect("bucket");
                !truth
                    .bucket_sizes
                    .contains_key(&(node.clone(), IdentifierKind::Email, bucket))
            })
        })
        .context("an empty bucket")?;
    let inputs = vec![
        LookupInput {
            kind: full.kind,
            value: full.raw.clone(),
        },
        LookupInput {
            kind: IdentifierKind::Email,
            value: empty,
        },
    ];
    let report = runtime().block_on(async {
        let mut requester = sandbox().requester().await?;
        requester.lookup(&inputs, "fraud", "T-3").await
    })?;
    assert_eq!(report.results[0].jurisdictions as usize, full.holders.len());
    assert_eq!(report.results[1].jurisdictions, 0);
    Ok(())
}

#[test]
fn invalid_identifiers_are_refused_with_a_reason_before_anything_is_sent() -> anyhow::Result<()> {
    let inputs = vec![
        LookupInput {
            kind: IdentifierKind::Phone,
            value: "06 12 34 56 78".to_owned(),
        },
        LookupInput {
            kind: IdentifierKind::Iban,
            value: "FR00 0000".to_owned(),
        },
    ];
    let error = runtime()
        .block_on(async {
            let mut requester = sandbox().requester().await?;
            requester.lookup(&inputs, "fraud", "T-4").await
        })
        .expect_err("invalid identifiers are refused");
    let message = format!("{error:#}");
    assert!(message.contains("item 1 (phone)"), "{message}");
    assert!(message.contains("item 2 (iban)"), "{message}");
    assert!(
        !message.contains("12 34 56"),
        "the reason never echoes the identifier: {message}"
    );
    assert!("fingerprint".parse::<IdentifierKind>().is_err());
    Ok(())
}

#[test]
fn nodes_refuse_malformed_requests_and_keep_serving() -> anyhow::Result<()> {
    let truth = truth();
    let known = truth.held_by(IdentifierKind::Phone, 1);
    let known = known.first().context("a phone")?;
    runtime().block_on(async {
        let good = node_request("fr", &[(known.kind, known.raw.as_str())])?;
        let mut truncated = good.clone();
        truncated.items[0].encrypted_tag.truncate(1000);
        let mut unknown_kind = good.clone();
        unknown_kind.items[0].kind = 42;
        let mut wrong_key = good.clone();
        wrong_key.public_key = generate_keys().1.to_bytes().to_vec();
        let mut bad_bucket = good.clone();
        bad_bucket.items[0].bucket = 1 << 20;
        for (bad, code) in [
            (truncated, tonic::Code::InvalidArgument),
            (unknown_kind, tonic::Code::InvalidArgument),
            (wrong_key, tonic::Code::InvalidArgument),
            (bad_bucket, tonic::Code::InvalidArgument),
        ] {
            let status = ask_node("fr", bad)
                .await
                .expect_err("refused")
                .downcast::<tonic::Status>()?;
            assert_eq!(status.code(), code, "{}", status.message());
            assert!(!status.message().is_empty());
        }
        let response = ask_node("fr", good).await?;
        assert_eq!(response.answers.len(), 1, "the node keeps serving");
        Ok(())
    })
}

#[test]
fn a_lookup_under_an_unregistered_key_is_refused() -> anyhow::Result<()> {
    let sandbox = sandbox();
    runtime().block_on(async {
        let config = fedq_client::ClientConfig::load(&sandbox.output.client)?;
        let endpoint = tonic::transport::Endpoint::from_shared(format!(
            "https://{}",
            config.federation.coordinator.address
        ))?
        .tls_config(fedq_transport::tls::client_config(
            &config.tls,
            "coordinator",
        )?)?;
        let mut client = v1::coordinator_client::CoordinatorClient::new(endpoint.connect().await?)
            .max_encoding_message_size(fedq_proto::MAX_MESSAGE_BYTES);
        let unregistered = generate_keys().1;
        let mut request = node_request("fr", &[(IdentifierKind::Email, "someone@example.org")])?;
        let payload_hash = fedq_proto::payload::lookup_payload_hash(
            "fr",
            (unregistered.id().as_str(), ""),
            &request.items,
            false,
            "",
            "",
        );
        let envelope = sandbox.sign("lookup", "fraud", payload_hash)?;
        let status = client
            .lookup(v1::LookupRequest {
                key_id: unregistered.id().as_str().to_owned(),
                context: request.context.take(),
                nodes: vec![v1::NodeItems {
                    node: "fr".to_owned(),
                    envelope: Some(envelope),
                    items: request.items,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .await
            .expect_err("unregistered key refused");
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert!(status.message().contains("not registered"));
        // The coordinator audited the refusal, and its log verifies.
        let coordinator =
            fedq_coordinator::config::CoordinatorConfig::load(&sandbox.output.coordinator)?;
        let log = fedq_audit::AuditLog::open_at(
            &coordinator.key_store,
            &coordinator.audit_checkpoint,
            &coordinator.audit_key,
        )?;
        assert!(log.verify()?.first_bad.is_none());
        let entries = log.entries_between(
            chrono::DateTime::<chrono::Utc>::MIN_UTC,
            chrono::DateTime::<chrono::Utc>::MAX_UTC,
        )?;
        assert!(entries.iter().any(|e| {
            e.record.decision == fedq_audit::Decision::Refused
                && e.record.requester == "alice"
                && e.record.reason.contains("not registered")
        }));
        Ok(())
    })
}

#[test]
fn node_answers_hold_only_fresh_ciphertexts() -> anyhow::Result<()> {
    let truth = truth();
    let known = truth.held_by(IdentifierKind::Phone, 1);
    let known = known.first().context("a phone")?;
    let node = known.holders.first().context("holder")?.clone();
    runtime().block_on(async {
        let request = node_request(&node, &[(known.kind, known.raw.as_str())])?;
        let first = ask_node(&node, request.clone()).await?;
        let second = ask_node(&node, request).await?;
        // Only the query id, the answers and the compute time come back.
        let mut stripped = first.clone();
        stripped.answers.clear();
        stripped.compute_micros = 0;
        assert_eq!(
            stripped,
            v1::NodeLookupResponse {
                query_id: "test-query".to_owned(),
                ..Default::default()
            }
        );
        assert_eq!(
            first.answers[0].len(),
            fedq_crypto::lookup::answer::answer_bytes()
        );
        // Nothing of the node's records appears in what it sends.
        let encoded = first.encode_to_vec();
        let csv = std::fs::read_to_string(sandbox().identifiers_csv(&node))?;
        for line in csv.lines().skip(1).take(200) {
            for field in line.split(',') {
                if field.len() >= 6 {
                    assert!(
                        !contains(&encoded, field.as_bytes()),
                        "a record field leaked"
                    );
                }
            }
        }
        // Re-randomised: the same query gives different ciphertexts, same count.
        assert_ne!(first.answers[0], second.answers[0]);
        let a = count(&first.answers[0], sandbox().nodes.len())?;
        let b = count(&second.answers[0], sandbox().nodes.len())?;
        assert_eq!((a, b), (1, 1));
        Ok(())
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.len() <= haystack.len() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_message_carries_the_secret_key() -> anyhow::Result<()> {
    let (secret, public) = direct_keys();
    let secret_file = fedq_crypto::lookup::keys::danger::secret_key_to_file_bytes(secret);
    // The key's bits as stored (skip the version byte and length prefix).
    let middle = secret_file.len() / 2;
    let key_bits = &secret_file[middle..middle + 512];
    let request = node_request("fr", &[(IdentifierKind::Email, "someone@example.org")])?;
    let response = runtime().block_on(ask_node("fr", request.clone()))?;
    let register = v1::RegisterKeyRequest {
        public_key: public.to_bytes().to_vec(),
        expansion_key: fedq_crypto::lookup::ExpansionKey::generate(secret).to_bytes(),
    };
    for message in [
        request.encode_to_vec(),
        response.encode_to_vec(),
        register.encode_to_vec(),
    ] {
        assert!(
            !contains(&message, key_bits),
            "a message holds the secret key"
        );
    }
    Ok(())
}

#[test]
fn a_stopped_node_is_reported_never_dropped() -> anyhow::Result<()> {
    // Uses its own federation: stopping a node must not disturb other tests.
    runtime().block_on(async {
        let sandbox = FederationSandbox::builder()
            .jurisdiction("aa")
            .jurisdiction("bb")
            .people(300)
            .build()
            .await?;
        sandbox.stop_node("bb").await?;
        let mut requester = sandbox.requester().await?;
        let inputs = vec![LookupInput {
            kind: IdentifierKind::Email,
            value: "x@example.org".to_owned(),
        }];
        let report = requester.lookup(&inputs, "fraud", "T-5").await?;
        let statuses: Vec<(String, String)> = report
            .nodes
            .iter()
            .map(|n| (n.node.clone(), n.status.word().to_owned()))
            .collect();
        assert_eq!(
            statuses,
            vec![
                ("aa".to_owned(), "ok".to_owned()),
                ("bb".to_owned(), "unavailable".to_owned())
            ]
        );
        assert_eq!(report.results[0].jurisdictions, 0);
        // bb said nothing: the item is unknown, not "no hit".
        assert_eq!(report.results[0].answer, fedq_client::ItemAnswer::Unknown);
        assert_eq!((report.results[0].answered, report.results[0].of), (1, 2));
        sandbox.restart_node("bb").await?;
        let report = requester.lookup(&inputs, "fraud", "T-6").await?;
        assert!(
            report.nodes.iter().all(|n| n.status.word() == "ok"),
            "{:?}",
            report.nodes
        );
        Ok(())
    })
}

#[test]
fn disclosure_is_revealed_or_withheld_per_node_policy() -> anyhow::Result<()> {
    let truth = truth();
    // The generated policy: only the first node ("fr") reveals, and only for
    // counter-terrorism investigators with an authorization reference.
    let shared = truth.held_by(IdentifierKind::Phone, 2);
    let with_fr = shared
        .iter()
        .find(|i| i.holders.iter().any(|h| h == "fr"))
        .context("a phone held by fr and one other node")?;
    let elsewhere = truth.held_by(IdentifierKind::Email, 1);
    let elsewhere = elsewhere
        .iter()
        .find(|i| i.holders.iter().all(|h| h != "fr"))
        .context("an email held by one node other than fr")?;
    let inputs = vec![
        LookupInput {
            kind: with_fr.kind,
            value: with_fr.raw.clone(),
        },
        LookupInput {
            kind: elsewhere.kind,
            value: elsewhere.raw.clone(),
        },
    ];
    runtime().block_on(async {
        let mut requester = sandbox().requester().await?;
        let asked = |purpose: &str| fedq_client::LookupOptions {
            purpose: purpose.to_owned(),
            case_reference: "T-7".to_owned(),
            legal_basis: None,
            disclose: Some("AUTH-7".to_owned()),
            progress: fedq_client::Progress::default(),
        };
        let report = requester
            .lookup_with(&inputs, &asked("counter-terrorism"))
            .await?;
        let disclosure: Vec<(&str, &str)> = report
            .nodes
            .iter()
            .map(|n| (n.node.as_str(), n.disclosure.word()))
            .collect();
        assert_eq!(
            disclosure,
            vec![("fr", "revealed"), ("de", "withheld"), ("nl", "withheld")]
        );
        // Counts stay complete; only fr's own bit is revealed.
        assert_eq!(report.results[0].jurisdictions, 2);
        assert_eq!(report.results[0].held_by, Some(vec!["fr".to_owned()]));
        assert_eq!(report.results[1].jurisdictions, 1);
        assert_eq!(report.results[1].held_by, Some(vec![]));

        // Another purpose: every node withholds.
        let report = requester.lookup_with(&inputs, &asked("fraud")).await?;
        assert!(report
            .nodes
            .iter()
            .all(|n| n.disclosure.word() == "withheld"));
        assert!(report
            .results
            .iter()
            .all(|r| r.held_by.as_deref() == Some(&[][..])));

        // Without --disclose nothing is said about disclosure at all.
        let report = requester.lookup(&inputs, "fraud", "T-8").await?;
        assert!(report.nodes.iter().all(|n| n.disclosure.word().is_empty()));
        assert!(report.results.iter().all(|r| r.held_by.is_none()));
        Ok(())
    })
}

#[test]
fn a_requester_added_while_running_reaches_the_nodes_and_their_policy() -> anyhow::Result<()> {
    let sandbox = sandbox();
    let client = fedq_client::init::add_requester(
        &sandbox.dir,
        &fedq_proto::federation::RequesterEntry {
            id: "bob".to_owned(),
            agency: "unlisted-agency".to_owned(),
            role: fedq_proto::Role::Investigator,
            public_key: String::new(),
        },
    )?;
    runtime().block_on(async {
        // The coordinator and the nodes re-read federation.toml for bob; the
        // nodes' policies do not list his agency, so each node refuses.
        let mut bob =
            fedq_client::Requester::connect(fedq_client::ClientConfig::load(&client)?).await?;
        bob.keys_init(false).await?;
        let inputs = vec![LookupInput {
            kind: IdentifierKind::Email,
            value: "someone@example.org".to_owned(),
        }];
        let report = bob.lookup(&inputs, "fraud", "B-1").await?;
        for node in &report.nodes {
            assert_eq!(node.status.word(), "refused", "{node:?}");
            assert!(node.reason.contains("rule agency"), "{node:?}");
        }

        // Removed while everything runs: refused within 5 seconds.
        fedq_client::init::remove_requester(&sandbox.dir, "bob")?;
        let removed = std::time::Instant::now();
        loop {
            match bob.lookup(&inputs, "fraud", "B-2").await {
                Err(e) if format!("{e:#}").contains("PermissionDenied") => break,
                other => {
                    assert!(
                        removed.elapsed() < std::time::Duration::from_secs(5),
                        "bob still served 5 s after removal: {other:?}"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
            }
        }
        Ok(())
    })
}

#[test]
fn each_node_derives_its_own_tags_and_another_nodes_tag_is_useless() -> anyhow::Result<()> {
    let truth = truth();
    let shared = truth.held_by(IdentifierKind::Phone, 2);
    let shared = shared.first().context("a shared phone")?;
    let normal = fedq_crypto::normalise(shared.kind, &shared.raw)?;
    let mut fingerprints = Vec::new();
    let mut key_ids = Vec::new();
    for (node, service) in &sandbox().nodes {
        fingerprints.push((node.clone(), service.fingerprint(shared.kind, &normal)?));
        key_ids.push(service.oprf_key_id()?);
    }
    for (i, (a, fa)) in fingerprints.iter().enumerate() {
        for (b, fb) in &fingerprints[i + 1..] {
            assert_ne!(fa, fb, "nodes {a} and {b} give one identifier the same tag");
        }
    }
    key_ids.sort();
    key_ids.dedup();
    assert_eq!(
        key_ids.len(),
        sandbox().nodes.len(),
        "one OPRF key per node"
    );

    // A holder answers 1 with its own tag and 0 with the other holder's.
    let mut holders = shared.holders.iter();
    let (first, second) = (
        holders.next().context("holder")?,
        holders.next().context("holder")?,
    );
    let of = |node: &str| {
        fingerprints
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, fp)| *fp)
            .context("fingerprint")
    };
    let item = [(shared.kind, shared.raw.as_str())];
    let key_id = node_service(second)?.oprf_key_id()?.to_string();
    runtime().block_on(async {
        let own = request_with_tags(&item, &[of(second)?], &key_id)?;
        let foreign = request_with_tags(&item, &[of(first)?], &key_id)?;
        let own = ask_node(second, own).await?;
        let foreign = ask_node(second, foreign).await?;
        assert_eq!(count(&own.answers[0], sandbox().nodes.len())?, 1);
        assert_eq!(
            count(&foreign.answers[0], sandbox().nodes.len())?,
            0,
            "node {first}'s tag means nothing at node {second}"
        );
        Ok(())
    })
}

#[test]
fn lookups_keep_finding_what_is_present_across_oprf_key_rotations() -> anyhow::Result<()> {
    // Its own federation: rotating keys must not disturb other tests.
    runtime().block_on(async {
        let sandbox = FederationSandbox::builder()
            .jurisdiction("ra")
            .people(300)
            .build()
            .await?;
        let truth = GroundTruth::load(&sandbox, params())?;
        let present = truth.held_by(IdentifierKind::Phone, 1);
        let present = present.first().context("a phone")?;
        let inputs = vec![
            LookupInput {
                kind: present.kind,
                value: present.raw.clone(),
            },
            LookupInput {
                kind: IdentifierKind::Email,
                value: "nobody.at.all@example.invalid".to_owned(),
            },
        ];
        let service = Arc::clone(&sandbox.nodes[0].1);
        let normal = fedq_crypto::normalise(present.kind, &present.raw)?;
        let old_key = service.oprf_key_id()?;
        let old_fp = service.fingerprint(present.kind, &normal)?;
        let mut requester = sandbox.requester().await?;

        // Rotate three times, each on another thread while lookups run. A
        // switch between a lookup's OPRF round trip and its lookup makes the
        // node answer `stale` and the client start the chunk again; with one
        // rotation at a time a lookup meets at most one switch.
        let config = fedq_node::NodeConfig::load(&sandbox.output.nodes[0].1)?;
        let mut lookups = 0;
        for _ in 0..3 {
            let store_location = config.store.clone();
            let rotation = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                let mut store = fedq_node::store::Store::open(&store_location)?;
                fedq_node::rotate::rotate(&mut store, |_, _| {})?;
                Ok(())
            });
            loop {
                let done = rotation.is_finished();
                let report = requester.lookup(&inputs, "fraud", "T-ROT").await?;
                let counts: Vec<u32> = report.results.iter().map(|r| r.jurisdictions).collect();
                assert_eq!(counts, vec![1, 0], "{:?}", report.nodes);
                assert!(
                    report.nodes.iter().all(|n| n.status.word() == "ok"),
                    "{:?}",
                    report.nodes
                );
                lookups += 1;
                if done {
                    break;
                }
            }
            rotation.await??;
        }
        assert!(lookups >= 3);

        let new_key = service.oprf_key_id()?;
        assert_ne!(new_key, old_key);
        let new_fp = service.fingerprint(present.kind, &normal)?;
        assert_ne!(new_fp, old_fp);
        let item = [(present.kind, present.raw.as_str())];
        // Tags under the old key are refused as stale...
        let stale = request_with_tags(&item, &[old_fp], &old_key.to_string())?;
        let status = ask_node_in(&sandbox, "ra", stale)
            .await
            .expect_err("stale key refused")
            .downcast::<tonic::Status>()?;
        assert_eq!(status.code(), tonic::Code::Aborted, "{}", status.message());
        // ...and match nothing even when sent under the new key's id.
        let old_tag = request_with_tags(&item, &[old_fp], &new_key.to_string())?;
        let answer = ask_node_in(&sandbox, "ra", old_tag).await?;
        assert_eq!(count(&answer.answers[0], sandbox.nodes.len())?, 0);
        let new_tag = request_with_tags(&item, &[new_fp], &new_key.to_string())?;
        let answer = ask_node_in(&sandbox, "ra", new_tag).await?;
        assert_eq!(count(&answer.answers[0], sandbox.nodes.len())?, 1);
        Ok(())
    })
}

#[test]
fn a_lookup_addressed_to_some_nodes_only_is_refused_and_counts_nothing() -> anyhow::Result<()> {
    // A requester whose federation file lists only fr would otherwise learn
    // fr's own answer (a count over one node is that node's bit).
    let (sandbox, truth) = (sandbox(), truth());
    runtime().block_on(async {
        let mut config = fedq_client::ClientConfig::load(&sandbox.output.client)?;
        config.federation.nodes.retain(|n| n.id == "fr");
        let mut requester = fedq_client::Requester::connect(config).await?;
        requester.keys_init(false).await?;
        // Held by fr alone: before the audience check this answered 1.
        let held = truth.held_by(IdentifierKind::Phone, 1);
        let held = held
            .iter()
            .find(|k| k.holders.contains("fr"))
            .context("a phone held by fr alone")?;
        let inputs = vec![LookupInput {
            kind: held.kind,
            value: held.raw.clone(),
        }];
        match requester.lookup(&inputs, "fraud", "T-SUBSET").await {
            Ok(report) => {
                assert_eq!(report.results[0].jurisdictions, 0, "{:?}", report.nodes);
                assert_eq!(report.results[0].answer, fedq_client::ItemAnswer::Unknown);
                let fr = report
                    .nodes
                    .iter()
                    .find(|n| n.node == "fr")
                    .context("fr reported")?;
                assert_ne!(fr.status, fedq_proto::outcome::NodeOutcome::Ok, "{fr:?}");
                // (A timeout under load says nothing either way; a refusal
                // must give the reason.)
                if fr.status == fedq_proto::outcome::NodeOutcome::Refused {
                    assert!(fr.reason.contains("every node"), "{fr:?}");
                }
            }
            Err(e) => assert!(format!("{e:#}").contains("every node"), "{e:#}"),
        }
        anyhow::Ok(())
    })
}

/// A person watching a batch is told each step as it starts.
#[test]
fn a_lookup_reports_its_steps_as_they_start() -> anyhow::Result<()> {
    let sandbox = sandbox();
    let steps = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&steps);
    runtime().block_on(async {
        let mut requester = sandbox.requester().await?;
        let options = fedq_client::LookupOptions {
            purpose: "fraud".to_owned(),
            case_reference: "T-8".to_owned(),
            progress: fedq_client::Progress::new(move |step| {
                seen.lock().expect("steps").push(step.to_owned());
            }),
            ..fedq_client::LookupOptions::default()
        };
        let inputs = [LookupInput {
            kind: IdentifierKind::Email,
            value: "nobody@example.invalid".to_owned(),
        }];
        requester.lookup_with(&inputs, &options).await?;
        anyhow::Ok(())
    })?;
    let steps = steps.lock().expect("steps").clone();
    let nodes = sandbox.nodes.len();
    assert_eq!(
        steps,
        [
            format!("asking {nodes} node(s) for the fingerprints of 1 item(s)"),
            format!("encrypting 1 item(s) for {nodes} node(s)"),
            format!("waiting for {nodes} node(s) to compare under encryption"),
        ],
    );
    Ok(())
}
