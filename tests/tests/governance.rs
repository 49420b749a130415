//! Governance at the node: every refusal path gives a clear status and an
//! audit entry, and the node keeps serving. Requests go straight to the
//! node's service (the gRPC adapter only converts types); no TFHE is needed
//! because the gate decides before any ciphertext is decoded.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use fedq_audit::Decision;
use fedq_client::init::{add_requester, init, InitOptions, InitOutput};
use fedq_crypto::envelope::{fresh_nonce, Envelope, SignedEnvelope, SigningKey};
use fedq_crypto::{Bucket, IdentifierKind};
use fedq_node::service::stats::{budget_from, StatsRequest};
use fedq_node::service::{Caller, LookupQuery, OprfQuery, QueryItem};
use fedq_node::{NodeConfig, NodeError, NodeService};
use fedq_proto::federation::{Parameters, RequesterEntry};
use fedq_proto::v1;
use fedq_tests::sandbox::runtime;

const AGENCY: &str = "test-agency";

/// A federation of node fr and requester alice in `dir`.
fn init_fr(dir: &Path) -> anyhow::Result<InitOutput> {
    init(&InitOptions {
        dir: dir.to_owned(),
        nodes: vec!["fr".to_owned()],
        requester: "alice".to_owned(),
        researcher: "rosa".to_owned(),
        agency: AGENCY.to_owned(),
        base_port: None,
        force: false,
        parameters: Parameters::default(),
    })
}

/// A one-node federation with an imported incidents table and `policy` as the
/// node's `[policy]` section (the generated one when `None`).
struct Fixture {
    _temp: tempfile::TempDir,
    dir: PathBuf,
    output: InitOutput,
    service: NodeService,
    config: NodeConfig,
}

impl Fixture {
    fn new(policy: Option<&str>) -> anyhow::Result<Self> {
        let temp = tempfile::tempdir()?;
        let dir = temp.path().join("federation");
        let output = init_fr(&dir)?;
        let node_toml = &output.nodes[0].1;
        fedq_tests::store::store_under_test(node_toml)?;
        if let Some(policy) = policy {
            let text = std::fs::read_to_string(node_toml)?;
            let start = text.find("# Who may ask what").context("policy section")?;
            std::fs::write(node_toml, format!("{}{policy}", &text[..start]))?;
        }
        let config = NodeConfig::load(node_toml)?;
        let csv = fedq_synth::generate_incidents(
            &fedq_synth::GenerateOptions {
                jurisdiction: "fr".to_owned(),
                people: 2_000,
                seed: 3,
                out: temp.path().join("data"),
            },
            1_000,
        )?;
        let catalog = config
            .catalog
            .iter()
            .find(|t| t.name == "incidents")
            .context("incidents catalog")?;
        fedq_node::stats::import_table(
            catalog,
            std::io::BufReader::new(std::fs::File::open(csv)?),
            &config.stats_dir,
            |_| {},
        )?;
        let service = NodeService::new(config.clone())?;
        Ok(Self {
            _temp: temp,
            dir,
            output,
            service,
            config,
        })
    }

    fn alice(&self) -> anyhow::Result<SigningKey> {
        key_of(&self.output.client)
    }

    /// The researcher, who asks the statistics.
    fn rosa(&self) -> anyhow::Result<SigningKey> {
        key_of(&self.output.researcher_client)
    }

    fn audit(&self) -> anyhow::Result<Vec<fedq_audit::AuditEntry>> {
        let log = self.config.open_audit()?;
        let report = log.verify()?;
        assert!(report.first_bad.is_none(), "{report:?}");
        Ok(log.entries_between(
            chrono::DateTime::<chrono::Utc>::MIN_UTC,
            chrono::DateTime::<chrono::Utc>::MAX_UTC,
        )?)
    }

    /// The audit log's newest entry.
    fn last_audit(&self) -> anyhow::Result<fedq_audit::AuditRecord> {
        Ok(self.audit()?.pop().context("an audit entry")?.record)
    }
}

fn key_of(client_toml: &Path) -> anyhow::Result<SigningKey> {
    let dir = client_toml.parent().context("client dir")?;
    Ok(SigningKey::from_text(&std::fs::read_to_string(
        dir.join("signing.key"),
    )?)?)
}

static QUERY: AtomicUsize = AtomicUsize::new(0);

fn envelope(requester: &str, role: &str, purpose: &str, action: &str, hash: &str) -> Envelope {
    Envelope {
        requester: requester.to_owned(),
        agency: AGENCY.to_owned(),
        role: role.to_owned(),
        purpose: purpose.to_owned(),
        legal_basis: "test".to_owned(),
        case_ref: "G-1".to_owned(),
        action: action.to_owned(),
        issued_at: chrono::Utc::now().timestamp(),
        nonce: fresh_nonce(),
        payload_hash: hash.to_owned(),
        audience: vec!["fr".to_owned()],
    }
}

fn stats_request(
    signed: impl FnOnce(&str) -> SignedEnvelope,
    table: &str,
    epsilon: f64,
) -> anyhow::Result<StatsRequest> {
    let wire = v1::StatsQuery {
        table: table.to_owned(),
        measure: "count".to_owned(),
        group_by: vec![],
        filters: vec![],
        budget: Some(v1::stats_query::Budget::Epsilon(epsilon)),
        dry_run: false,
    };
    let payload_hash = fedq_proto::payload::stats_payload_hash(&wire);
    Ok(StatsRequest {
        query_id: format!("g{}", QUERY.fetch_add(1, Ordering::Relaxed)),
        requester: "rosa".to_owned(),
        purpose: String::new(),
        envelope: signed(&payload_hash),
        payload_hash,
        table: wire.table,
        measure: wire.measure,
        group_by: wire.group_by,
        filters: wire.filters,
        budget: Some(budget_from(Some(epsilon), None)?),
        dry_run: wire.dry_run,
    })
}

/// A lookup of `items` identifiers of `kind`, with junk ciphertexts: the
/// gate decides before anything is decoded.
fn lookup_query(
    key: &SigningKey,
    purpose: &str,
    kind: IdentifierKind,
    items: usize,
) -> LookupQuery {
    let key_id = "0".repeat(32);
    let wire: Vec<v1::LookupItem> = (0..items)
        .map(|i| v1::LookupItem {
            kind: i32::from(kind.code()),
            bucket: i as u32,
            encrypted_tag: vec![7; 16],
        })
        .collect();
    let payload_hash =
        fedq_proto::payload::lookup_payload_hash("fr", (&key_id, ""), &wire, false, "", "");
    LookupQuery {
        query_id: format!("g{}", QUERY.fetch_add(1, Ordering::Relaxed)),
        requester: "alice".to_owned(),
        key_id: fedq_crypto::lookup::KeyId::parse(&key_id).expect("key id"),
        public_key: Vec::new(),
        envelope: key.sign(&envelope(
            "alice",
            "investigator",
            purpose,
            "lookup",
            &payload_hash,
        )),
        payload_hash,
        oprf_key_id: String::new(),
        disclose: false,
        authorization: String::new(),
        expansion_key_id: None,
        expansion_key: Vec::new(),
        items: wire
            .iter()
            .map(|w| QueryItem {
                kind,
                bucket: Bucket(w.bucket),
                encrypted_tag: w.encrypted_tag.clone(),
            })
            .collect(),
    }
}

fn caller() -> Caller {
    Caller("coordinator".to_owned())
}

/// Asserts a refusal's gRPC status and that it was audited as refused.
fn assert_refused(
    fixture: &Fixture,
    result: Result<impl std::fmt::Debug, NodeError>,
    code: tonic::Code,
    reason: &str,
) -> anyhow::Result<()> {
    let status = tonic::Status::from(result.expect_err("refused"));
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(reason),
        "{:?} should say {reason:?}",
        status.message()
    );
    let audited = fixture.last_audit()?;
    assert_eq!(audited.decision, Decision::Refused);
    assert!(
        audited.reason.contains(reason),
        "audit reason {:?} should say {reason:?}",
        audited.reason
    );
    Ok(())
}

/// The node still answers a good statistics query.
fn assert_serving(fixture: &Fixture) -> anyhow::Result<()> {
    let rosa = fixture.rosa()?;
    let good = stats_request(
        |h| rosa.sign(&envelope("rosa", "researcher", "research", "stats", h)),
        "incidents",
        0.01,
    )?;
    let query_id = good.query_id.clone();
    let answer = runtime().block_on(fixture.service.stats(&caller(), good))?;
    assert!(!answer.groups.is_empty());
    let audited = fixture.last_audit()?;
    assert_eq!(audited.decision, Decision::Admitted);
    assert_eq!(audited.action, "stats");
    // The ledger keeps the signed purpose, not the coordinator's unsigned
    // copy (empty in these requests).
    let purpose: String = fedq_db::Db::open(&fixture.config.store)?.run(|exec| {
        exec.query_one(
            "SELECT purpose FROM releases WHERE query_id = ?1",
            &[&query_id],
            |row| row.get(0),
        )
    })?;
    assert_eq!(purpose, "research");
    Ok(())
}

#[test]
fn envelope_refusals_are_audited_and_the_node_keeps_serving() -> anyhow::Result<()> {
    let fixture = Fixture::new(None)?;
    let rosa = fixture.rosa()?;
    let service = &fixture.service;
    let rt = runtime();

    // Bad signature: signed by another key.
    let mallory = SigningKey::generate();
    let forged = stats_request(
        |h| mallory.sign(&envelope("rosa", "researcher", "research", "stats", h)),
        "incidents",
        0.01,
    )?;
    assert_refused(
        &fixture,
        rt.block_on(service.stats(&caller(), forged)),
        tonic::Code::Unauthenticated,
        "bad envelope signature",
    )?;

    // Unknown requester.
    let unknown = stats_request(
        |h| mallory.sign(&envelope("mallory", "researcher", "research", "stats", h)),
        "incidents",
        0.01,
    )?;
    assert_refused(
        &fixture,
        rt.block_on(service.stats(&caller(), unknown)),
        tonic::Code::Unauthenticated,
        "unknown requester",
    )?;

    // Stale time: an hour old.
    let stale = stats_request(
        |h| {
            let mut old = envelope("rosa", "researcher", "research", "stats", h);
            old.issued_at -= 3_600;
            rosa.sign(&old)
        },
        "incidents",
        0.01,
    )?;
    assert_refused(
        &fixture,
        rt.block_on(service.stats(&caller(), stale)),
        tonic::Code::Unauthenticated,
        "stale request time",
    )?;

    // An envelope moved onto another query.
    let mut moved = stats_request(
        |h| rosa.sign(&envelope("rosa", "researcher", "research", "stats", h)),
        "incidents",
        0.01,
    )?;
    moved.measure = "sum:loss_eur".to_owned();
    moved.payload_hash = fedq_proto::payload::stats_payload_hash(&v1::StatsQuery {
        table: moved.table.clone(),
        measure: moved.measure.clone(),
        group_by: vec![],
        filters: vec![],
        budget: Some(v1::stats_query::Budget::Epsilon(0.01)),
        dry_run: false,
    });
    assert_refused(
        &fixture,
        rt.block_on(service.stats(&caller(), moved)),
        tonic::Code::Unauthenticated,
        "does not match the query",
    )?;

    // Replay: the same signed request twice.
    let once = stats_request(
        |h| rosa.sign(&envelope("rosa", "researcher", "research", "stats", h)),
        "incidents",
        0.01,
    )?;
    rt.block_on(service.stats(&caller(), once.clone()))?;
    assert_refused(
        &fixture,
        rt.block_on(service.stats(&caller(), once)),
        tonic::Code::PermissionDenied,
        "replayed request",
    )?;

    assert_serving(&fixture)
}

#[test]
fn policy_refusals_are_audited_and_the_node_keeps_serving() -> anyhow::Result<()> {
    let fixture = Fixture::new(None)?;
    let rosa = fixture.rosa()?;
    let service = &fixture.service;
    let rt = runtime();

    // Purpose not admitted.
    let curious = stats_request(
        |h| rosa.sign(&envelope("rosa", "researcher", "curiosity", "stats", h)),
        "incidents",
        0.01,
    )?;
    assert_refused(
        &fixture,
        rt.block_on(service.stats(&caller(), curious)),
        tonic::Code::PermissionDenied,
        "rule purpose",
    )?;

    // Table not admitted.
    let table = stats_request(
        |h| rosa.sign(&envelope("rosa", "researcher", "research", "stats", h)),
        "salaries",
        0.01,
    )?;
    assert_refused(
        &fixture,
        rt.block_on(service.stats(&caller(), table)),
        tonic::Code::PermissionDenied,
        "rule table",
    )?;

    // Role not admitted: an auditor, added with `federation add-requester`.
    let auditor_toml = add_requester(
        &fixture.dir,
        &RequesterEntry {
            id: "olga".to_owned(),
            agency: AGENCY.to_owned(),
            role: fedq_proto::Role::Auditor,
            public_key: String::new(),
        },
    )?;
    let olga = key_of(&auditor_toml)?;
    let audit_query = stats_request(
        |h| olga.sign(&envelope("olga", "auditor", "research", "stats", h)),
        "incidents",
        0.01,
    )?;
    assert_refused(
        &fixture,
        rt.block_on(service.stats(&caller(), audit_query)),
        tonic::Code::PermissionDenied,
        "rule role",
    )?;

    // Agency not admitted: a requester of an agency the policy does not list.
    let other_toml = add_requester(
        &fixture.dir,
        &RequesterEntry {
            id: "oscar".to_owned(),
            agency: "other-agency".to_owned(),
            role: fedq_proto::Role::Researcher,
            public_key: String::new(),
        },
    )?;
    let oscar = key_of(&other_toml)?;
    let other = stats_request(
        |h| {
            let mut e = envelope("oscar", "researcher", "research", "stats", h);
            e.agency = "other-agency".to_owned();
            oscar.sign(&e)
        },
        "incidents",
        0.01,
    )?;
    assert_refused(
        &fixture,
        rt.block_on(service.stats(&caller(), other)),
        tonic::Code::PermissionDenied,
        "rule agency",
    )?;

    // Budget exhausted: epsilon 10.5 costs rho 55, over the default monthly cap.
    let greedy = stats_request(
        |h| rosa.sign(&envelope("rosa", "researcher", "research", "stats", h)),
        "incidents",
        10.5,
    )?;
    assert_refused(
        &fixture,
        rt.block_on(service.stats(&caller(), greedy)),
        tonic::Code::ResourceExhausted,
        "privacy budget exhausted",
    )?;

    assert_serving(&fixture)
}

#[test]
fn lookup_kinds_rate_limits_and_sunset_are_enforced() -> anyhow::Result<()> {
    let policy = "[policy]\nvalid_until = \"2099-12-31\"\nagencies = [\"test-agency\"]\n\
                  roles = [\"investigator\", \"researcher\"]\n[policy.purposes]\nlookup = [\"fraud\"]\nstats = [\"research\"]\n\
                  [policy.lookup]\nkinds = [\"phone\"]\nper_hour_per_kind = 3\n[policy.stats]\ntables = [\"incidents\"]\n";
    let fixture = Fixture::new(Some(policy))?;
    let alice = fixture.alice()?;
    let rt = runtime();

    // A kind the policy does not admit.
    let email = lookup_query(&alice, "fraud", IdentifierKind::Email, 1);
    assert_refused(
        &fixture,
        rt.block_on(fixture.service.lookup(&caller(), email)),
        tonic::Code::PermissionDenied,
        "rule kind",
    )?;

    // Three phone items an hour: two admitted (then refused as malformed
    // ciphertexts, which still counts), the next two refused by the limit.
    let admitted = rt.block_on(fixture.service.lookup(
        &caller(),
        lookup_query(&alice, "fraud", IdentifierKind::Phone, 2),
    ));
    assert_eq!(
        tonic::Status::from(admitted.expect_err("junk ciphertexts")).code(),
        tonic::Code::InvalidArgument
    );
    assert_refused(
        &fixture,
        rt.block_on(fixture.service.lookup(
            &caller(),
            lookup_query(&alice, "fraud", IdentifierKind::Phone, 2),
        )),
        tonic::Code::ResourceExhausted,
        "rule rate_limit",
    )?;
    // A restarted node does not hand out a fresh hour: it counts the last
    // hour's requests again from its audit log.
    let restarted = NodeService::new(fixture.config.clone())?;
    assert_refused(
        &fixture,
        rt.block_on(restarted.lookup(
            &caller(),
            lookup_query(&alice, "fraud", IdentifierKind::Phone, 2),
        )),
        tonic::Code::ResourceExhausted,
        "rule rate_limit",
    )?;
    drop(restarted);
    assert_serving(&fixture)?;

    // Sunset: a policy past its date admits nothing.
    let expired = Fixture::new(Some(&policy.replace("2099-12-31", "2020-01-01")))?;
    let rosa = expired.rosa()?;
    let query = stats_request(
        |h| rosa.sign(&envelope("rosa", "researcher", "research", "stats", h)),
        "incidents",
        0.01,
    )?;
    assert_refused(
        &expired,
        rt.block_on(expired.service.stats(&caller(), query)),
        tonic::Code::PermissionDenied,
        "rule sunset",
    )?;
    // Every decision above is in the audit log, and the chain verifies.
    let entries = fixture.audit()?;
    assert!(entries
        .iter()
        .any(|e| e.record.reason.contains("invalid request")));
    Ok(())
}

#[test]
fn a_node_without_a_policy_admits_nothing() -> anyhow::Result<()> {
    let fixture = Fixture::new(Some(""))?;
    let rosa = fixture.rosa()?;
    let query = stats_request(
        |h| rosa.sign(&envelope("rosa", "researcher", "research", "stats", h)),
        "incidents",
        0.01,
    )?;
    let refused = runtime().block_on(fixture.service.stats(&caller(), query));
    assert_eq!(
        tonic::Status::from(refused.expect_err("refused")).code(),
        tonic::Code::PermissionDenied
    );
    Ok(())
}

/// A blinded OPRF batch of `items` identifiers, declared as `kind`.
fn oprf_query(key: &SigningKey, kind: IdentifierKind, items: usize) -> anyhow::Result<OprfQuery> {
    let normals: Vec<fedq_crypto::NormalForm> = (0..items)
        .map(|i| match kind {
            IdentifierKind::Email => fedq_crypto::normalise(kind, &format!("p{i}@example.org")),
            _ => fedq_crypto::normalise(kind, &format!("+3361234{i:04}")),
        })
        .collect::<Result<_, _>>()?;
    let pairs: Vec<(IdentifierKind, &fedq_crypto::NormalForm)> =
        normals.iter().map(|n| (kind, n)).collect();
    let (_, wire) = fedq_crypto::oprf::BlindedItems::blind(&pairs)?;
    let blinded: Vec<Vec<u8>> = wire.iter().map(|e| e.to_vec()).collect();
    let kinds = vec![i32::from(kind.code()); items];
    let payload_hash = fedq_proto::payload::oprf_payload_hash("fr", &kinds, &blinded);
    Ok(OprfQuery {
        query_id: format!("g{}", QUERY.fetch_add(1, Ordering::Relaxed)),
        envelope: key.sign(&envelope(
            "alice",
            "investigator",
            "fraud",
            "oprf",
            &payload_hash,
        )),
        payload_hash,
        deconfliction: false,
        kinds: vec![kind; items],
        blinded,
    })
}

#[test]
fn oprf_evaluations_are_metered_and_audited() -> anyhow::Result<()> {
    let policy = "[policy]\nvalid_until = \"2099-12-31\"\nagencies = [\"test-agency\"]\n\
                  roles = [\"investigator\", \"researcher\"]\n[policy.purposes]\nlookup = [\"fraud\"]\nstats = [\"research\"]\n\
                  [policy.lookup]\nkinds = [\"phone\"]\nper_hour_per_kind = 5\n[policy.stats]\ntables = [\"incidents\"]\n";
    let fixture = Fixture::new(Some(policy))?;
    let alice = fixture.alice()?;
    let rt = runtime();

    let answer = rt.block_on(
        fixture
            .service
            .oprf(&caller(), oprf_query(&alice, IdentifierKind::Phone, 4)?),
    )?;
    assert_eq!(answer.evaluation.elements.len(), 4);
    // The audit entry says who, why and how many; never the elements.
    let audited = fixture.last_audit()?;
    assert_eq!(
        (audited.action.as_str(), audited.decision),
        ("oprf", Decision::Admitted)
    );
    assert_eq!(audited.requester, "alice");
    assert_eq!(audited.purpose, "fraud");
    assert!(
        audited.detail.contains("evaluations=4"),
        "{}",
        audited.detail
    );

    // Two more would pass the limit of 5 per rolling hour: refused whole.
    assert_refused(
        &fixture,
        rt.block_on(
            fixture
                .service
                .oprf(&caller(), oprf_query(&alice, IdentifierKind::Phone, 2)?),
        ),
        tonic::Code::ResourceExhausted,
        "oprf rate limit for kind phone is 5 items per rolling hour; 4 used, the batch asks 2 more",
    )?;
    // One more still fits: the refused batch consumed nothing.
    rt.block_on(
        fixture
            .service
            .oprf(&caller(), oprf_query(&alice, IdentifierKind::Phone, 1)?),
    )?;
    // A kind outside the policy is refused by its rule, not evaluated.
    assert_refused(
        &fixture,
        rt.block_on(
            fixture
                .service
                .oprf(&caller(), oprf_query(&alice, IdentifierKind::Email, 1)?),
        ),
        tonic::Code::PermissionDenied,
        "rule kind",
    )?;
    // Lookups are metered apart: the OPRF limit being spent does not refuse one.
    let admitted = rt.block_on(fixture.service.lookup(
        &caller(),
        lookup_query(&alice, "fraud", IdentifierKind::Phone, 2),
    ));
    assert_eq!(
        tonic::Status::from(admitted.expect_err("junk ciphertexts")).code(),
        tonic::Code::InvalidArgument
    );
    Ok(())
}

/// (server auth, client auth, DNS names) of a generated certificate.
fn usage_of(path: &std::path::Path) -> anyhow::Result<(bool, bool, Vec<String>)> {
    let pem = std::fs::read(path)?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem)?;
    let cert = pem.parse_x509()?;
    let eku = cert
        .extended_key_usage()?
        .context("an extended key usage")?
        .value;
    let names = cert
        .subject_alternative_name()?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((eku.server_auth, eku.client_auth, names))
}

#[test]
fn certificates_carry_their_partys_usage_and_party_names_are_one_namespace() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = temp.path().join("federation");
    init_fr(&dir)?;
    let (server, client, _) = usage_of(&dir.join("nodes/fr/tls/node.pem"))?;
    assert!(server && !client, "a node only serves");
    let (server, client, _) = usage_of(&dir.join("coordinator/tls/coordinator.pem"))?;
    assert!(server && client, "the coordinator serves and calls");
    // A requester's certificate cannot pass as a server (for a node's name or
    // for localhost).
    let (server, client, names) = usage_of(&dir.join("requesters/alice/tls/requester.pem"))?;
    assert!(!server && client, "a requester only calls");
    assert_eq!(names, vec!["alice".to_owned()]);

    let federation = std::fs::read(dir.join("federation.toml"))?;
    let clash = add_requester(
        &dir,
        &RequesterEntry {
            id: "fr".to_owned(),
            agency: AGENCY.to_owned(),
            role: fedq_proto::Role::Investigator,
            public_key: String::new(),
        },
    );
    let error = format!(
        "{:#}",
        clash.err().context("a requester named fr is refused")?
    );
    assert!(error.contains("node of this federation"), "{error}");
    assert_eq!(std::fs::read(dir.join("federation.toml"))?, federation);
    assert!(!dir.join("requesters/fr").exists(), "nothing issued");
    Ok(())
}

#[test]
fn init_refuses_parameters_no_node_would_accept_and_writes_nothing() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    for (bucket_bits, tag_bits) in [(12, 2), (30, 28)] {
        let dir = temp.path().join(format!("fed-{bucket_bits}-{tag_bits}"));
        let refused = init(&InitOptions {
            dir: dir.clone(),
            nodes: vec!["fr".to_owned()],
            requester: "alice".to_owned(),
            researcher: "rosa".to_owned(),
            agency: AGENCY.to_owned(),
            base_port: None,
            force: false,
            parameters: Parameters {
                bucket_bits,
                tag_bits,
                ..Parameters::default()
            },
        });
        let error = format!("{:#}", refused.err().context("refused")?);
        assert!(error.contains("parameters"), "{error}");
        assert!(
            !dir.exists(),
            "nothing written for {bucket_bits}/{tag_bits}"
        );
    }
    Ok(())
}

/// An operator who rewrites the log while the node is idle (re-hashing the
/// chain so that it is consistent again) does not get the rewrite signed by
/// the node's next request: the node refuses to answer, and `audit verify`
/// still names the rewrite afterwards.
#[test]
fn a_rewrite_of_the_idle_log_is_not_signed_by_the_next_request() -> anyhow::Result<()> {
    let fixture = Fixture::new(None)?;
    assert_serving(&fixture)?;
    assert_serving(&fixture)?;
    let entries = fixture.audit()?;
    anyhow::ensure!(entries.len() >= 2, "two audited answers");

    // While the node is idle: the first entry's purpose rewritten, the whole
    // chain re-hashed from there.
    let fedq_node::config::StoreLocation::Sqlite(store) = &fixture.config.store else {
        anyhow::bail!("the operator edits an SQLite file here");
    };
    let conn = rusqlite::Connection::open(store)?;
    conn.execute_batch(
        "DROP TRIGGER IF EXISTS audit_log_no_update; DROP TRIGGER IF EXISTS audit_log_no_delete;",
    )?;
    let mut prev = fedq_audit::GENESIS_HASH.to_owned();
    for entry in &entries {
        let mut record = entry.record.clone();
        if entry.seq == 1 {
            record.purpose = "curiosity".to_owned();
        }
        let hash = fedq_audit::AuditEntry::compute_hash(entry.seq, &prev, &record);
        conn.execute(
            "UPDATE audit_log SET purpose = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            rusqlite::params![record.purpose, prev, hash, entry.seq as i64],
        )?;
        prev = hash;
    }
    drop(conn);

    let rosa = fixture.rosa()?;
    let next = stats_request(
        |h| rosa.sign(&envelope("rosa", "researcher", "research", "stats", h)),
        "incidents",
        0.01,
    )?;
    let refused = runtime().block_on(fixture.service.stats(&caller(), next));
    let message = format!(
        "{:?}",
        refused.expect_err("the node refuses to sign a rewritten log")
    );
    assert!(
        message.contains("refusing to sign the audit log"),
        "{message}"
    );
    let log = fixture.config.open_audit_read_only()?;
    let report = log.verify()?;
    assert!(!report.is_ok(), "the rewrite is still detected: {report:?}");
    Ok(())
}

/// One signed request sent sixteen times at once (a replaying requester
/// racing itself) is answered once: the nonce's primary key decides, on
/// SQLite and, in the PostgreSQL pass, on PostgreSQL.
#[test]
fn one_envelope_sent_many_times_at_once_is_answered_once() -> anyhow::Result<()> {
    let policy = "[policy]\nvalid_until = \"2099-12-31\"\nagencies = [\"test-agency\"]\n\
                  roles = [\"investigator\"]\n[policy.purposes]\nlookup = [\"fraud\"]\n\
                  [policy.lookup]\nkinds = [\"phone\"]\nper_hour_per_kind = 1000\n";
    let fixture = Fixture::new(Some(policy))?;
    let query = oprf_query(&fixture.alice()?, IdentifierKind::Phone, 1)?;
    let rt = runtime();
    let outcomes: Vec<Result<_, _>> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..16)
            .map(|_| {
                let query = query.clone();
                let service = &fixture.service;
                scope.spawn(move || rt.block_on(service.oprf(&caller(), query)))
            })
            .collect();
        racers
            .into_iter()
            .map(|racer| racer.join().expect("no panic"))
            .collect()
    });
    let answered = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    assert_eq!(answered, 1, "exactly one of the sixteen is answered");
    for outcome in outcomes.into_iter().filter_map(Result::err) {
        let status = tonic::Status::from(outcome);
        assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
        assert!(status.message().contains("replayed"), "{status:?}");
    }
    Ok(())
}
