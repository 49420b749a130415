//! A hostile client against a running sandbox: requests built and signed by
//! hand (valid envelopes around bad input, or bad envelopes around valid
//! input), sent over mutual TLS under any party's certificate, raw bytes
//! where prost would refuse to encode them, and the checks every hostile
//! test makes afterwards: the exact status, the audit entry, and that the
//! node still answers a normal lookup correctly.
//!
//! - [`Attacker`]: connections, signing, the honest lookup each node must
//!   keep answering, audit entries.
//! - [`Verdicts`]: collects every mismatch of a test (and prints every
//!   observed status), so one run reports all classes, not the first failure.
//! - [`tag`]: the encrypted tag's wire layout in format 1, to forge seeded
//!   GGSW lists.
//! - [`raw`]: unary calls with arbitrary message bytes.

pub mod raw;
pub mod tag;

use std::fmt::Debug;

use anyhow::Context;
use fedq_audit::{AuditLog, AuditRecord, Decision};
use fedq_crypto::envelope::{fresh_nonce, Envelope, SigningKey};
use fedq_crypto::lookup::{
    generate_keys, CountEncoding, EncryptedCount, EncryptedTag, FhePublicKey, FheSecretKey,
};
use fedq_crypto::IdentifierKind;
use fedq_proto::federation::FederationFile;
use fedq_proto::v1::{self, coordinator_client::CoordinatorClient, node_client::NodeClient};
use fedq_transport::TlsPaths;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::sandbox::FederationSandbox;

/// Purpose of lookups and OPRF calls (admitted by the generated policy).
pub const LOOKUP_PURPOSE: &str = "fraud";
/// Purpose of statistics queries (admitted by the generated policy).
pub const STATS_PURPOSE: &str = "research";

/// Whose certificate a call presents.
#[derive(Debug, Clone, Copy)]
pub enum As<'a> {
    /// The coordinator's (the only caller a node admits).
    Coordinator,
    /// The sandbox's requester (alice).
    Requester,
    /// The sandbox's researcher (rosa), who asks the statistics.
    Researcher,
    /// A node's.
    Node(&'a str),
}

/// A fresh id for a request, so that its audit entry can be found among
/// those of tests running at the same time.
pub fn unique(label: &str) -> String {
    format!("hostile-{label}-{:016x}", rand::random::<u64>())
}

/// The honest lookup a node must keep answering: one identifier it holds,
/// its tag encrypted under a key pair of the attacker's.
struct Probe {
    node: String,
    request: v1::NodeLookupRequest,
    /// The request's tag in format 1 (tfhe's layout, one GGSW per bit).
    bitwise_tag: Vec<u8>,
    /// The same identifier's tag in format 3 (compressed).
    compressed_tag: Vec<u8>,
    /// A packed group (format 4): the same identifier's tag in slot 0, two
    /// absent ones after it.
    packed_group: Vec<Vec<u8>>,
}

/// A requester identity of the sandbox, as the attacker holds it.
struct Signer {
    signing_key: SigningKey,
    requester: String,
    agency: String,
    role: String,
}

impl Signer {
    fn load(client_toml: &std::path::Path) -> anyhow::Result<Self> {
        let client = fedq_client::ClientConfig::load(client_toml)?;
        let entry = client
            .federation
            .requesters
            .iter()
            .find(|r| r.id == client.requester)
            .context("the requester is listed")?;
        Ok(Self {
            signing_key: SigningKey::from_text(&std::fs::read_to_string(&client.signing_key)?)?,
            requester: entry.id.clone(),
            agency: entry.agency.clone(),
            role: entry.role.as_str().to_owned(),
        })
    }
}

/// A hostile client of one sandbox.
pub struct Attacker<'a> {
    /// The federation attacked.
    pub sandbox: &'a FederationSandbox,
    federation: FederationFile,
    /// Alice, the investigator: lookups, OPRF, disclosure.
    investigator: Signer,
    /// Rosa, the researcher: statistics (nodes let each role do its own).
    researcher: Signer,
    secret: FheSecretKey,
    public: FhePublicKey,
    probes: Vec<Probe>,
}

impl<'a> Attacker<'a> {
    /// Reads the sandbox's files and prepares an honest lookup per node
    /// (one TFHE key pair, one encrypted tag per node).
    pub fn new(sandbox: &'a FederationSandbox) -> anyhow::Result<Self> {
        let client = fedq_client::ClientConfig::load(&sandbox.output.client)?;
        let investigator = Signer::load(&sandbox.output.client)?;
        let researcher = Signer::load(&sandbox.output.researcher_client)?;
        let (secret, public) = generate_keys();
        let mut probes = Vec::new();
        for (node, service) in &sandbox.nodes {
            let mut reader = csv::Reader::from_path(sandbox.identifiers_csv(node))?;
            let record = reader.records().next().context("an identifier")??;
            let kind: IdentifierKind = record.get(0).unwrap_or_default().parse()?;
            let normal = fedq_crypto::normalise(kind, record.get(1).unwrap_or_default())?;
            anyhow::ensure!(
                service.holds(kind, &normal)?,
                "the node holds its first identifier"
            );
            let params = service_params(sandbox, node)?;
            let fingerprint = service.fingerprint(kind, &normal)?;
            let tag = EncryptedTag::encrypt(&secret, fingerprint.tag(params), params.tag_bits());
            let bitwise_tag =
                EncryptedTag::encrypt_bitwise(&secret, fingerprint.tag(params), params.tag_bits())
                    .to_bytes();
            let compressed_tag = fedq_crypto::lookup::CompressedTag::encrypt(
                &secret,
                fingerprint.tag(params),
                params.tag_bits(),
            )
            .to_bytes();
            let absent = |salt: u64| fedq_crypto::Tag(fingerprint.tag(params).0 ^ salt);
            let packed_group = fedq_crypto::lookup::PackedTags::encrypt(
                &secret,
                &[
                    fingerprint.tag(params),
                    absent(0x0F0F_0F0F),
                    absent(0x00F0_00F0),
                ],
                params.tag_bits(),
            )
            .to_item_bytes();
            probes.push(Probe {
                node: node.clone(),
                bitwise_tag,
                compressed_tag,
                packed_group,
                request: v1::NodeLookupRequest {
                    query_id: String::new(),
                    requester: investigator.requester.clone(),
                    key_id: public.id().as_str().to_owned(),
                    public_key: public.to_bytes().to_vec(),
                    context: Some(context(LOOKUP_PURPOSE, "H-PROBE")),
                    items: vec![v1::LookupItem {
                        kind: i32::from(kind.code()),
                        bucket: fingerprint.bucket(params).0,
                        encrypted_tag: tag.to_bytes(),
                    }],
                    disclose: false,
                    authorization: String::new(),
                    oprf_key_id: service.oprf_key_id()?.to_string(),
                    expansion_key_id: String::new(),
                    expansion_key: Vec::new(),
                },
            });
        }
        Ok(Self {
            sandbox,
            federation: client.federation.clone(),
            investigator,
            researcher,
            secret,
            public,
            probes,
        })
    }

    /// The requester whose key signs (alice).
    pub fn requester(&self) -> &str {
        &self.investigator.requester
    }

    /// The researcher's id (rosa): statistics are hers to ask.
    pub fn researcher(&self) -> &str {
        &self.researcher.requester
    }

    /// The attacker's TFHE public key.
    pub fn public_key(&self) -> &FhePublicKey {
        &self.public
    }

    fn probe(&self, node: &str) -> &Probe {
        self.probes
            .iter()
            .find(|p| p.node == node)
            .expect("a node of the sandbox")
    }

    /// An honest, unsigned lookup of one identifier `node` holds.
    pub fn lookup(&self, node: &str, query_id: &str) -> v1::NodeLookupRequest {
        let mut request = self.probe(node).request.clone();
        request.query_id = query_id.to_owned();
        request
    }

    /// The honest encrypted tag of [`Self::lookup`] (format 2).
    pub fn honest_tag(&self, node: &str) -> &[u8] {
        &self.probe(node).request.items[0].encrypted_tag
    }

    /// The same identifier's tag in format 3, compressed: it needs an
    /// expansion key of the attacker's secret ([`Self::expansion_key`]).
    pub fn compressed_tag(&self, node: &str) -> &[u8] {
        &self.probe(node).compressed_tag
    }

    /// The same identifier in a packed group of three (format 4), in slot 0;
    /// the other two are absent. It needs an expansion key too.
    pub fn packed_group(&self, node: &str) -> &[Vec<u8>] {
        &self.probe(node).packed_group
    }

    /// A fresh expansion key of the attacker's secret (one no node has
    /// cached), encoded.
    pub fn expansion_key(&self) -> Vec<u8> {
        fedq_crypto::lookup::ExpansionKey::generate(&self.secret).to_bytes()
    }

    /// The same identifier's tag in format 1, which nodes still accept:
    /// tfhe's own layout, where the seed and parameters are fields to edit.
    pub fn honest_bitwise_tag(&self, node: &str) -> &[u8] {
        &self.probe(node).bitwise_tag
    }

    /// An envelope as the requester would sign it now, with a fresh nonce.
    pub fn envelope(
        &self,
        action: &str,
        context: &v1::RequestContext,
        payload_hash: &str,
    ) -> Envelope {
        let signer = if action == "stats" {
            &self.researcher
        } else {
            &self.investigator
        };
        Envelope {
            requester: signer.requester.clone(),
            agency: signer.agency.clone(),
            role: signer.role.clone(),
            purpose: context.purpose.clone(),
            legal_basis: "hostile-client test on synthetic data".to_owned(),
            case_ref: context.case_reference.clone(),
            action: action.to_owned(),
            issued_at: chrono::Utc::now().timestamp(),
            nonce: fresh_nonce(),
            payload_hash: payload_hash.to_owned(),
            audience: self.audience(),
        }
    }

    /// Every node of the federation, sorted (what an honest client addresses).
    pub fn audience(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self.federation.nodes.iter().map(|n| n.id.clone()).collect();
        nodes.sort_unstable();
        nodes
    }

    /// How every node encodes a lookup's count for this federation.
    fn count_encoding(&self) -> Result<CountEncoding, String> {
        CountEncoding::for_nodes(self.federation.nodes.len()).map_err(|e| e.to_string())
    }

    /// Signs `envelope` with the requester's key.
    pub fn sign(&self, envelope: &Envelope) -> v1::SignedEnvelope {
        let signer = if envelope.requester == self.researcher.requester {
            &self.researcher
        } else {
            &self.investigator
        };
        fedq_proto::payload::to_wire(signer.signing_key.sign(envelope))
    }

    fn seal(
        &self,
        action: &str,
        context: &mut Option<v1::RequestContext>,
        payload_hash: &str,
        tweak: impl FnOnce(&mut Envelope),
    ) {
        let context = context.get_or_insert_with(Default::default);
        let mut envelope = self.envelope(action, context, payload_hash);
        tweak(&mut envelope);
        context.envelope = Some(self.sign(&envelope));
    }

    /// Signs a lookup for `node` as it stands (its items, key ids,
    /// disclosure), after `tweak` edits the envelope.
    pub fn sign_lookup(
        &self,
        node: &str,
        request: &mut v1::NodeLookupRequest,
        tweak: impl FnOnce(&mut Envelope),
    ) {
        let hash = fedq_proto::payload::node_lookup_payload_hash(node, request);
        self.seal("lookup", &mut request.context, &hash, tweak);
    }

    /// Signs a statistics request as it stands.
    pub fn sign_stats(
        &self,
        request: &mut v1::NodeStatsRequest,
        tweak: impl FnOnce(&mut Envelope),
    ) {
        let hash =
            fedq_proto::payload::stats_payload_hash(&request.query.clone().unwrap_or_default());
        self.seal("stats", &mut request.context, &hash, tweak);
    }

    /// Signs an OPRF request for `node` as it stands.
    pub fn sign_oprf(
        &self,
        node: &str,
        request: &mut v1::NodeOprfRequest,
        tweak: impl FnOnce(&mut Envelope),
    ) {
        let hash = fedq_proto::payload::oprf_payload_hash(node, &request.kinds, &request.blinded);
        self.seal("oprf", &mut request.context, &hash, tweak);
    }

    /// A statistics request for the coordinator, signed as the client would.
    pub fn coordinator_stats(
        &self,
        case_reference: &str,
        query: v1::StatsQuery,
    ) -> v1::StatsRequest {
        let mut context = context(STATS_PURPOSE, case_reference);
        let hash = fedq_proto::payload::stats_payload_hash(&query);
        context.envelope = Some(self.sign(&self.envelope("stats", &context, &hash)));
        v1::StatsRequest {
            context: Some(context),
            query: Some(query),
        }
    }

    /// The mTLS material of `who`.
    pub fn tls(&self, who: As<'_>) -> anyhow::Result<TlsPaths> {
        Ok(match who {
            As::Coordinator => {
                fedq_coordinator::config::CoordinatorConfig::load(&self.sandbox.output.coordinator)?
                    .tls
            }
            As::Requester => fedq_client::ClientConfig::load(&self.sandbox.output.client)?.tls,
            As::Researcher => {
                fedq_client::ClientConfig::load(&self.sandbox.output.researcher_client)?.tls
            }
            As::Node(node) => fedq_node::NodeConfig::load(&node_toml(self.sandbox, node)?)?.tls,
        })
    }

    /// `host:port` of `node`.
    pub fn node_address(&self, node: &str) -> anyhow::Result<String> {
        Ok(self
            .federation
            .nodes
            .iter()
            .find(|n| n.id == node)
            .context("no such node")?
            .address
            .clone())
    }

    /// `host:port` of the coordinator.
    pub fn coordinator_address(&self) -> String {
        self.federation.coordinator.address.clone()
    }

    async fn channel(&self, address: &str, server: &str, who: As<'_>) -> anyhow::Result<Channel> {
        let endpoint = Endpoint::from_shared(format!("https://{address}"))?
            .tls_config(fedq_transport::tls::client_config(&self.tls(who)?, server)?)?
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(120));
        Ok(endpoint.connect().await?)
    }

    /// A new connection to `node` under `who`'s certificate.
    pub async fn node_channel(&self, node: &str, who: As<'_>) -> anyhow::Result<Channel> {
        self.channel(&self.node_address(node)?, node, who).await
    }

    /// A new connection to the coordinator under `who`'s certificate.
    pub async fn coordinator_channel(&self, who: As<'_>) -> anyhow::Result<Channel> {
        self.channel(&self.coordinator_address(), "coordinator", who)
            .await
    }

    /// A node client under `who`'s certificate, with no size limit of its own
    /// on what it sends (the server's limits are under test).
    pub async fn node_client(
        &self,
        node: &str,
        who: As<'_>,
    ) -> Result<NodeClient<Channel>, Status> {
        let channel = self.node_channel(node, who).await.map_err(not_connected)?;
        Ok(NodeClient::new(channel)
            .max_encoding_message_size(usize::MAX)
            .max_decoding_message_size(fedq_proto::MAX_MESSAGE_BYTES))
    }

    /// A coordinator client under `who`'s certificate, unlimited on sending.
    pub async fn coordinator_client(
        &self,
        who: As<'_>,
    ) -> Result<CoordinatorClient<Channel>, Status> {
        let channel = self.coordinator_channel(who).await.map_err(not_connected)?;
        Ok(CoordinatorClient::new(channel)
            .max_encoding_message_size(usize::MAX)
            .max_decoding_message_size(fedq_proto::MAX_MESSAGE_BYTES))
    }

    /// Sends a lookup to `node` as the coordinator.
    pub async fn send_lookup(
        &self,
        node: &str,
        request: v1::NodeLookupRequest,
    ) -> Result<v1::NodeLookupResponse, Status> {
        let mut client = self.node_client(node, As::Coordinator).await?;
        Ok(client.lookup(request).await?.into_inner())
    }

    /// Sends a statistics request to `node` as the coordinator.
    pub async fn send_stats(
        &self,
        node: &str,
        request: v1::NodeStatsRequest,
    ) -> Result<v1::NodeStatsResponse, Status> {
        let mut client = self.node_client(node, As::Coordinator).await?;
        Ok(client.stats(request).await?.into_inner())
    }

    /// Sends an OPRF request to `node` as the coordinator.
    pub async fn send_oprf(
        &self,
        node: &str,
        request: v1::NodeOprfRequest,
    ) -> Result<v1::NodeOprfResponse, Status> {
        let mut client = self.node_client(node, As::Coordinator).await?;
        Ok(client.oprf(request).await?.into_inner())
    }

    /// Sends a statistics request to the coordinator as the requester.
    pub async fn send_coordinator_stats(
        &self,
        request: v1::StatsRequest,
    ) -> Result<v1::StatsResponse, Status> {
        let mut client = self.coordinator_client(As::Researcher).await?;
        Ok(client.stats(request).await?.into_inner())
    }

    /// `Ok` when `node` answers an honest, freshly signed lookup of an
    /// identifier it holds with an encrypted count of 1.
    pub async fn node_serves(&self, node: &str) -> Result<(), String> {
        self.node_finds(node, self.honest_tag(node).to_vec()).await
    }

    /// `Ok` when `node` answers an honest lookup with `tag` in place of the
    /// honest tag (another encryption of the same identifier) with 1.
    pub async fn node_finds(&self, node: &str, tag: Vec<u8>) -> Result<(), String> {
        let mut request = self.lookup(node, &unique("probe"));
        request.items[0].encrypted_tag = tag;
        self.sign_lookup(node, &mut request, |_| {});
        let response = self
            .send_lookup(node, request)
            .await
            .map_err(|s| format!("node {node} no longer answers a normal lookup: {s:?}"))?;
        self.counts_one(node, &response)
    }

    /// `Ok` when `response` holds one answer that decrypts to 1.
    pub fn counts_one(&self, node: &str, response: &v1::NodeLookupResponse) -> Result<(), String> {
        match self.counts(node, response)?.first() {
            Some(1) => Ok(()),
            Some(count) => Err(format!(
                "node {node} answered a normal lookup of an identifier it holds with {count}"
            )),
            None => Err(format!(
                "node {node} answered a normal lookup without answers"
            )),
        }
    }

    /// Every answer of `response`, decrypted.
    pub fn counts(
        &self,
        node: &str,
        response: &v1::NodeLookupResponse,
    ) -> Result<Vec<u32>, String> {
        let encoding = self.count_encoding()?;
        response
            .answers
            .iter()
            .map(|answer| {
                EncryptedCount::from_bytes(answer)
                    .map(|count| count.decrypt(&self.secret, encoding))
                    .map_err(|e| format!("node {node} answered an undecodable count: {e}"))
            })
            .collect()
    }

    /// `Ok` when the coordinator still answers the requester (its catalog,
    /// with every node reachable).
    pub async fn coordinator_serves(&self) -> Result<(), String> {
        let mut client = self
            .coordinator_client(As::Requester)
            .await
            .map_err(|s| format!("coordinator unreachable: {s:?}"))?;
        let catalog = client
            .catalog(v1::FederationCatalogRequest {})
            .await
            .map_err(|s| format!("the coordinator no longer answers: {s:?}"))?
            .into_inner();
        if catalog.unreachable.is_empty() && catalog.nodes.len() == self.sandbox.nodes.len() {
            Ok(())
        } else {
            Err(format!(
                "the coordinator lost nodes: {:?}",
                catalog.unreachable
            ))
        }
    }

    /// Every audit record of `node` with query id `query_id`.
    pub fn node_audit(&self, node: &str, query_id: &str) -> anyhow::Result<Vec<AuditRecord>> {
        let config = fedq_node::NodeConfig::load(&node_toml(self.sandbox, node)?)?;
        let log = config.open_audit()?;
        Ok(records(&log)?
            .into_iter()
            .filter(|r| r.query_id == query_id)
            .collect())
    }

    /// Every audit record of the coordinator with case reference `case_reference`.
    pub fn coordinator_audit(&self, case_reference: &str) -> anyhow::Result<Vec<AuditRecord>> {
        let config =
            fedq_coordinator::config::CoordinatorConfig::load(&self.sandbox.output.coordinator)?;
        let log = AuditLog::open_at(
            &config.key_store,
            &config.audit_checkpoint,
            &config.audit_key,
        )?;
        Ok(records(&log)?
            .into_iter()
            .filter(|r| r.case_ref == case_reference)
            .collect())
    }
}

fn not_connected(error: anyhow::Error) -> Status {
    Status::unavailable(format!("the test could not connect: {error:#}"))
}

/// Every record of an audit log, oldest first.
pub fn records(log: &AuditLog) -> anyhow::Result<Vec<AuditRecord>> {
    Ok(log
        .entries_between(
            chrono::DateTime::<chrono::Utc>::MIN_UTC,
            chrono::DateTime::<chrono::Utc>::MAX_UTC,
        )?
        .into_iter()
        .map(|e| e.record)
        .collect())
}

fn node_toml(sandbox: &FederationSandbox, node: &str) -> anyhow::Result<std::path::PathBuf> {
    Ok(sandbox
        .output
        .nodes
        .iter()
        .find(|(n, _)| n == node)
        .context("no such node")?
        .1
        .clone())
}

fn service_params(
    sandbox: &FederationSandbox,
    node: &str,
) -> anyhow::Result<fedq_crypto::FingerprintParams> {
    Ok(fedq_node::NodeConfig::load(&node_toml(sandbox, node)?)?.fingerprint_params())
}

/// A request context without envelope.
pub fn context(purpose: &str, case_reference: &str) -> v1::RequestContext {
    v1::RequestContext {
        purpose: purpose.to_owned(),
        case_reference: case_reference.to_owned(),
        legal_basis: "hostile-client test on synthetic data".to_owned(),
        envelope: None,
    }
}

/// A count over the incidents table, no filters, at `epsilon`.
pub fn stats_query(epsilon: f64) -> v1::StatsQuery {
    v1::StatsQuery {
        table: "incidents".to_owned(),
        measure: "count".to_owned(),
        group_by: Vec::new(),
        filters: Vec::new(),
        budget: Some(v1::stats_query::Budget::Epsilon(epsilon)),
        dry_run: false,
    }
}

/// An unsigned statistics request for a node.
pub fn node_stats(requester: &str, query_id: &str, query: v1::StatsQuery) -> v1::NodeStatsRequest {
    v1::NodeStatsRequest {
        query_id: query_id.to_owned(),
        requester: requester.to_owned(),
        context: Some(context(STATS_PURPOSE, query_id)),
        query: Some(query),
    }
}

/// An unsigned OPRF request for a node.
pub fn node_oprf(
    requester: &str,
    query_id: &str,
    kinds: Vec<i32>,
    blinded: Vec<Vec<u8>>,
) -> v1::NodeOprfRequest {
    v1::NodeOprfRequest {
        query_id: query_id.to_owned(),
        requester: requester.to_owned(),
        context: Some(context(LOOKUP_PURPOSE, query_id)),
        kinds,
        blinded,
        key: v1::OprfKey::Lookup.into(),
    }
}

/// The wire code of `kind`.
pub fn wire_kind(kind: IdentifierKind) -> i32 {
    i32::from(kind.code())
}

/// `count` honestly blinded phone numbers (valid ristretto255 elements).
pub fn blinded_phones(count: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let normals = (0..count)
        .map(|i| fedq_crypto::normalise(IdentifierKind::Phone, &format!("+3361234{i:04}")))
        .collect::<Result<Vec<_>, _>>()?;
    let pairs: Vec<_> = normals.iter().map(|n| (IdentifierKind::Phone, n)).collect();
    let (_, wire) = fedq_crypto::oprf::BlindedItems::blind(&pairs)?;
    Ok(wire.iter().map(|e| e.to_vec()).collect())
}

/// What one hostile test observed; it fails once, at the end, listing every
/// mismatch, so one run tells how each class behaves.
#[derive(Debug)]
pub struct Verdicts {
    test: &'static str,
    failures: Vec<String>,
}

impl Verdicts {
    /// Verdicts of test `test`.
    pub fn new(test: &'static str) -> Self {
        Self {
            test,
            failures: Vec::new(),
        }
    }

    /// Records a failure unless `ok`.
    pub fn check(&mut self, class: &str, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(format!("{class}: {}", what()));
        }
    }

    /// Records a failure from a check that returned why it failed.
    pub fn require(&mut self, class: &str, result: Result<(), String>) {
        if let Err(why) = result {
            self.failures.push(format!("{class}: {why}"));
        }
    }

    /// Expects `result` to be refused with `code` and `fragment` in the
    /// message; prints what came back either way. Returns the status.
    pub fn status<T: Debug>(
        &mut self,
        class: &str,
        result: Result<T, Status>,
        code: Code,
        fragment: &str,
    ) -> Option<Status> {
        match result {
            Ok(answer) => {
                eprintln!("[hostile] {class}: answered OK");
                let mut shown = format!("{answer:?}");
                shown.truncate(300);
                self.failures.push(format!(
                    "{class}: expected {code:?}, the call was answered: {shown}"
                ));
                None
            }
            Err(status) => {
                eprintln!(
                    "[hostile] {class}: {:?} {:?}",
                    status.code(),
                    status.message()
                );
                if status.code() != code {
                    self.failures.push(format!(
                        "{class}: expected {code:?}, got {:?} {:?}",
                        status.code(),
                        status.message()
                    ));
                } else if !status.message().contains(fragment) {
                    self.failures.push(format!(
                        "{class}: {code:?} as expected, but the message {:?} does not say {fragment:?}",
                        status.message()
                    ));
                }
                Some(status)
            }
        }
    }

    /// Expects exactly one refusal in `records`, by `requester` (the
    /// verified envelope's, or `""` when none verified), whose reason says
    /// `fragment`.
    pub fn refusal_audited(
        &mut self,
        class: &str,
        records: anyhow::Result<Vec<AuditRecord>>,
        requester: &str,
        fragment: &str,
    ) {
        let records = match records {
            Ok(records) => records,
            Err(e) => {
                self.failures
                    .push(format!("{class}: cannot read the audit log: {e:#}"));
                return;
            }
        };
        let refused: Vec<&AuditRecord> = records
            .iter()
            .filter(|r| r.decision == Decision::Refused)
            .collect();
        match refused.as_slice() {
            [record] => {
                if record.requester != requester {
                    self.failures.push(format!(
                        "{class}: audited as requester {:?}, expected {requester:?}",
                        record.requester
                    ));
                }
                if !record.reason.contains(fragment) {
                    self.failures.push(format!(
                        "{class}: audit reason {:?} does not say {fragment:?}",
                        record.reason
                    ));
                }
            }
            [] => self.failures.push(format!(
                "{class}: no audit entry of the refusal (entries for it: {records:?})"
            )),
            more => self.failures.push(format!(
                "{class}: {} refusals audited for one request",
                more.len()
            )),
        }
        if records.iter().any(|r| r.decision == Decision::Admitted) {
            self.failures.push(format!(
                "{class}: an admission was audited for a refused request"
            ));
        }
    }

    /// Expects no audit entry at all (the request was refused before its
    /// bytes were decoded, so nothing in it was read).
    pub fn not_audited(&mut self, class: &str, records: anyhow::Result<Vec<AuditRecord>>) {
        match records {
            Ok(records) if records.is_empty() => {}
            Ok(records) => self.failures.push(format!(
                "{class}: refused before decoding, yet audited: {records:?}"
            )),
            Err(e) => self
                .failures
                .push(format!("{class}: cannot read the audit log: {e:#}")),
        }
    }

    /// Fails the test with every mismatch recorded.
    pub fn finish(self) -> anyhow::Result<()> {
        if self.failures.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "{}: {} mismatch(es):\n  - {}",
            self.test,
            self.failures.len(),
            self.failures.join("\n  - ")
        )
    }
}
