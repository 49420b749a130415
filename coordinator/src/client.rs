//! The requester's client library: keys, lookups, and the `client.toml` file.
//!
//! Identifiers are normalised and fingerprinted here, on the requester's
//! machine; only the kind, the bucket and the encrypted tag bits leave it.
//! The TFHE secret key lives in a 0600 file and in memory only.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use fedq_crypto::envelope::{fresh_nonce, Envelope, SigningKey};
use fedq_crypto::lookup::keys::danger;
use fedq_crypto::lookup::{
    generate_keys, EncryptedCount, EncryptedTag, FhePublicKey, FheSecretKey, KeyId,
};
use fedq_crypto::oprf::{BlindedItems, NodeOprfPublicKey};
use fedq_crypto::{Fingerprint, IdentifierKind, NormalForm};
use fedq_node::config::{read_toml, resolve, TlsPaths, CONFIG_VERSION};
use fedq_node::federation::FederationFile;
use fedq_proto::v1::{self, coordinator_client::CoordinatorClient};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tonic::transport::{Channel, Endpoint};

const SECRET_KEY_FILE: &str = "lookup.secret";
const PUBLIC_KEY_FILE: &str = "lookup.public";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientConfigBuilder {
    version: u32,
    requester: String,
    federation: PathBuf,
    #[serde(default = "default_keys_dir")]
    keys_dir: PathBuf,
    #[serde(default = "default_signing_key")]
    signing_key: PathBuf,
    #[serde(default)]
    legal_basis: Option<String>,
    tls: TlsPaths,
}

fn default_signing_key() -> PathBuf {
    PathBuf::from("signing.key")
}

fn default_keys_dir() -> PathBuf {
    PathBuf::from("keys")
}

/// A requester's validated `client.toml`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Requester id (its certificate's common name).
    pub requester: String,
    /// The federation.
    pub federation: FederationFile,
    /// Directory of the requester's TFHE keys.
    pub keys_dir: PathBuf,
    /// mTLS material.
    pub tls: TlsPaths,
    /// The Ed25519 key that signs request envelopes.
    pub signing_key: PathBuf,
    /// Legal basis stated when a command gives none.
    pub legal_basis: Option<String>,
}

impl ClientConfig {
    /// Reads and validates a client config.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let builder: ClientConfigBuilder = read_toml(path)?;
        if builder.version != CONFIG_VERSION {
            bail!(
                "{}: version: expected {CONFIG_VERSION}, found {}",
                path.display(),
                builder.version
            );
        }
        Ok(Self {
            federation: FederationFile::load(&resolve(path, &builder.federation))?,
            requester: builder.requester,
            keys_dir: resolve(path, &builder.keys_dir),
            signing_key: resolve(path, &builder.signing_key),
            legal_basis: builder.legal_basis,
            tls: builder.tls.resolved(path),
        })
    }

    /// Signs a request envelope for `action` over a payload hash, as this
    /// requester (its key must match the federation file's public key).
    pub fn sign(
        &self,
        action: &str,
        context: &v1::RequestContext,
        payload_hash: String,
    ) -> anyhow::Result<v1::SignedEnvelope> {
        let entry = self
            .federation
            .requesters
            .iter()
            .find(|r| r.id == self.requester)
            .with_context(|| {
                format!(
                    "requester {:?} is not listed in the federation file",
                    self.requester
                )
            })?;
        let text =
            zeroize::Zeroizing::new(std::fs::read_to_string(&self.signing_key).with_context(
                || format!("cannot read the signing key {}", self.signing_key.display()),
            )?);
        let key = SigningKey::from_text(&text)?;
        if key.verifying_key().to_text() != entry.public_key {
            bail!("the signing key does not match the public key in the federation file");
        }
        let legal_basis = match context.legal_basis.trim() {
            "" => self.legal_basis.clone().unwrap_or_default(),
            given => given.to_owned(),
        };
        if legal_basis.trim().is_empty() {
            bail!("state a legal basis (--legal-basis, or legal_basis in client.toml)");
        }
        let envelope = Envelope {
            requester: entry.id.clone(),
            agency: entry.agency.clone(),
            role: entry.role.clone(),
            purpose: context.purpose.clone(),
            legal_basis,
            case_ref: context.case_reference.clone(),
            action: action.to_owned(),
            issued_at: chrono::Utc::now().timestamp(),
            nonce: fresh_nonce(),
            payload_hash,
        };
        envelope.check_shape()?;
        Ok(fedq_node::envelope::to_wire(key.sign(&envelope)))
    }
}

/// One identifier to look up, as typed.
#[derive(Debug, Clone)]
pub struct LookupInput {
    /// Kind.
    pub kind: IdentifierKind,
    /// The value as the user typed it.
    pub value: String,
}

/// Result for one item.
#[derive(Debug, Clone, Serialize)]
pub struct ItemResult {
    /// Kind name.
    pub kind: String,
    /// The value as typed (shown only to the requester).
    pub value: String,
    /// At least one jurisdiction holds it.
    pub hit: bool,
    /// How many jurisdictions hold it (not which).
    pub jurisdictions: u32,
    /// With disclosure: the nodes that revealed a hit (withheld ones are
    /// listed in `nodes` with `"disclosure": "withheld"`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<Vec<String>>,
}

/// How one node fared, across all requests of a lookup.
#[derive(Debug, Clone, Serialize)]
pub struct NodeResult {
    /// Node id.
    pub node: String,
    /// ok, timeout, unavailable, refused, invalid or error.
    pub status: String,
    /// Why, when not ok.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// With disclosure: revealed or withheld.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub disclosure: String,
}

/// Measurements of one lookup (for benchmarks; never printed by default).
#[derive(Debug, Clone, Default)]
pub struct LookupStats {
    /// Wall time of the OPRF round trips: blinding, the nodes' evaluations,
    /// checking their proofs and unblinding.
    pub oprf: Duration,
    /// Client time spent encrypting tags (every node's).
    pub encrypt: Duration,
    /// Wall time from first request to last answer, OPRF included.
    pub round_trip: Duration,
    /// Bytes of encrypted tags sent, all nodes together.
    pub bytes_up: usize,
    /// Nodes the items were sent to (each gets its own encrypted tags).
    pub nodes_asked: usize,
    /// Bytes of answers received.
    pub bytes_down: usize,
    /// Per node id, its reported compute time.
    pub node_compute: Vec<(String, Duration)>,
}

/// The answer to a lookup.
#[derive(Debug, Clone, Serialize)]
pub struct LookupReport {
    /// Per item, in input order.
    pub results: Vec<ItemResult>,
    /// Every node, failed ones included.
    pub nodes: Vec<NodeResult>,
    /// Measurements.
    #[serde(skip)]
    pub stats: LookupStats,
}

/// What a lookup declares, and whether it asks which jurisdictions hit.
#[derive(Debug, Clone, Default)]
pub struct LookupOptions {
    /// Purpose (checked by each node's policy).
    pub purpose: String,
    /// Case reference.
    pub case_reference: String,
    /// Legal basis; the client config's default when `None`.
    pub legal_basis: Option<String>,
    /// Staged disclosure: the authorization reference under which the
    /// requester asks which jurisdictions hit.
    pub disclose: Option<String>,
}

/// A connected requester.
pub struct Requester {
    config: ClientConfig,
    client: CoordinatorClient<Channel>,
}

impl Requester {
    /// Connects to the coordinator named in the federation file.
    pub async fn connect(config: ClientConfig) -> anyhow::Result<Self> {
        let endpoint =
            Endpoint::from_shared(format!("https://{}", config.federation.coordinator.address))?
                .tls_config(fedq_node::tls::client_config(&config.tls, "coordinator")?)?
                .connect_timeout(Duration::from_secs(5));
        let channel = endpoint.connect().await.with_context(|| {
            format!(
                "cannot reach the coordinator at {}",
                config.federation.coordinator.address
            )
        })?;
        let client = CoordinatorClient::new(channel)
            .max_decoding_message_size(fedq_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(fedq_proto::MAX_MESSAGE_BYTES);
        Ok(Self { config, client })
    }

    /// Makes (or, with existing keys and no `force`, reuses) the TFHE keys and
    /// registers the public key. Returns the key id.
    pub async fn keys_init(&mut self, force: bool) -> anyhow::Result<KeyId> {
        let dir = &self.config.keys_dir;
        let public_path = dir.join(PUBLIC_KEY_FILE);
        let public = if dir.join(SECRET_KEY_FILE).exists() && !force {
            FhePublicKey::from_bytes(&std::fs::read(&public_path)?)
                .context("stored public key is invalid")?
        } else {
            let (secret, public) = generate_keys();
            write_secret_key(dir, &secret)?;
            std::fs::write(&public_path, public.to_bytes())?;
            public
        };
        let response = self
            .client
            .register_key(v1::RegisterKeyRequest {
                public_key: public.to_bytes().to_vec(),
            })
            .await
            .map_err(status_error)?
            .into_inner();
        if response.key_id != public.id().as_str() {
            bail!("the coordinator registered a different key id");
        }
        Ok(public.id().clone())
    }

    fn load_keys(&self) -> anyhow::Result<(FheSecretKey, FhePublicKey)> {
        let dir = &self.config.keys_dir;
        let secret_bytes = zeroize::Zeroizing::new(
            std::fs::read(dir.join(SECRET_KEY_FILE))
                .context("no lookup keys yet: run `fedq keys init` first")?,
        );
        let secret = FheSecretKey::from_file_bytes(&secret_bytes)?;
        let public = FhePublicKey::from_bytes(&std::fs::read(dir.join(PUBLIC_KEY_FILE))?)?;
        Ok((secret, public))
    }

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
        // Every node gets its own encrypted tags: keep one request within the
        // message limit whatever the federation's size.
        let chunk_len = (fedq_proto::MAX_ITEMS_PER_REQUEST / node_ids.len().max(1)).max(1);
        let mut stats = LookupStats {
            nodes_asked: node_ids.len(),
            ..LookupStats::default()
        };
        let round_trip = Instant::now();
        let mut counts = Vec::with_capacity(inputs.len());
        let mut held_by: Vec<Vec<String>> = vec![Vec::new(); inputs.len()];
        let mut nodes: Vec<NodeResult> = Vec::new();
        for (chunk_index, chunk) in normals.chunks(chunk_len).enumerate() {
            let first = chunk_index * chunk_len;
            let kinds: Vec<IdentifierKind> = inputs[first..first + chunk.len()]
                .iter()
                .map(|i| i.kind)
                .collect();
            let chunk = ChunkInput {
                kinds: &kinds,
                normals: chunk,
                context: &context,
                node_ids: &node_ids,
            };
            let answered = self
                .lookup_chunk(&chunk, options, (&secret, &public), &mut stats)
                .await?;
            for (i, count) in answered.counts.into_iter().enumerate() {
                counts.push(count);
                held_by[first + i] = answered.held_by[i].clone();
            }
            merge_node_statuses(&mut nodes, &mut stats, answered.statuses);
        }
        stats.round_trip = round_trip.elapsed();
        if counts.len() != inputs.len() {
            bail!(
                "the coordinator answered {} items out of {}",
                counts.len(),
                inputs.len()
            );
        }
        let results = inputs
            .iter()
            .zip(counts)
            .zip(held_by)
            .map(|((input, count), held_by)| ItemResult {
                kind: input.kind.as_str().to_owned(),
                value: input.value.clone(),
                hit: count > 0,
                jurisdictions: count,
                held_by: options.disclose.as_ref().map(|_| held_by),
            })
            .collect();
        Ok(LookupReport {
            results,
            nodes,
            stats,
        })
    }
}

/// One chunk of a lookup, as the client holds it.
struct ChunkInput<'a> {
    kinds: &'a [IdentifierKind],
    normals: &'a [NormalForm],
    context: &'a v1::RequestContext,
    node_ids: &'a [String],
}

/// What one chunk's lookup brought back.
struct ChunkAnswer {
    counts: Vec<u32>,
    held_by: Vec<Vec<String>>,
    statuses: Vec<v1::NodeStatus>,
}

/// A node's fingerprints of the chunk's items, from its OPRF.
struct NodeTags {
    node: String,
    key_id: String,
    fingerprints: Vec<Fingerprint>,
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
        (secret, public): (&FheSecretKey, &FhePublicKey),
        stats: &mut LookupStats,
    ) -> anyhow::Result<ChunkAnswer> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let oprf_started = Instant::now();
            let (tags, mut failed) = self.oprf(chunk).await?;
            stats.oprf += oprf_started.elapsed();
            let mut answer = if tags.is_empty() {
                ChunkAnswer {
                    counts: vec![0; chunk.normals.len()],
                    held_by: vec![Vec::new(); chunk.normals.len()],
                    statuses: Vec::new(),
                }
            } else {
                self.lookup_tags(chunk, &tags, options, (secret, public), stats)
                    .await?
            };
            let stale = answer.statuses.iter().any(|s| s.status == "stale");
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
    async fn oprf(
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
                fedq_node::envelope::oprf_payload_hash(&kinds, &blinded),
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
            let evaluation = match (status.status.as_str(), result.response) {
                ("ok", Some(response)) => finalize(state, &response),
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
                    status: if status.status == "ok" {
                        "invalid".to_owned()
                    } else {
                        status.status
                    },
                    reason,
                    ..Default::default()
                }),
            }
        }
        for (node, _) in states {
            failed.push(v1::NodeStatus {
                node,
                status: "error".to_owned(),
                reason: "the coordinator did not forward the oprf request".to_owned(),
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
        (secret, public): (&FheSecretKey, &FhePublicKey),
        stats: &mut LookupStats,
    ) -> anyhow::Result<ChunkAnswer> {
        let params = self.config.federation.config.fingerprint;
        let started = Instant::now();
        let per_node: Vec<Vec<v1::LookupItem>> = tags
            .iter()
            .map(|node| {
                chunk
                    .kinds
                    .par_iter()
                    .zip(&node.fingerprints)
                    .map(|(kind, fp)| v1::LookupItem {
                        kind: i32::from(kind.code()),
                        bucket: fp.bucket(params).0,
                        encrypted_tag: EncryptedTag::encrypt(
                            secret,
                            fp.tag(params),
                            params.tag_bits(),
                        )
                        .to_bytes(),
                    })
                    .collect()
            })
            .collect();
        stats.encrypt += started.elapsed();
        let authorization = options.disclose.clone().unwrap_or_default();
        let key_id = public.id().as_str().to_owned();
        let mut shares = Vec::with_capacity(tags.len());
        for (node, items) in tags.iter().zip(per_node) {
            stats.bytes_up += items.iter().map(|i| i.encrypted_tag.len()).sum::<usize>();
            let envelope = self.config.sign(
                "lookup",
                chunk.context,
                fedq_node::envelope::lookup_payload_hash(
                    &key_id,
                    &items,
                    options.disclose.is_some(),
                    &authorization,
                ),
            )?;
            shares.push(v1::NodeItems {
                node: node.node.clone(),
                envelope: Some(envelope),
                oprf_key_id: node.key_id.clone(),
                items,
            });
        }
        let response = self
            .client
            .lookup(v1::LookupRequest {
                key_id,
                context: Some(chunk.context.clone()),
                disclose: options.disclose.is_some(),
                authorization,
                nodes: shares,
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
        let mut counts = Vec::with_capacity(items);
        for answer in &response.answers {
            stats.bytes_down += answer.len();
            counts.push(EncryptedCount::from_bytes(answer)?.decrypt(secret));
        }
        let mut held_by = vec![Vec::new(); items];
        for revealed in &response.disclosed {
            if revealed.answers.len() != items {
                bail!("node {} disclosed a wrong number of answers", revealed.node);
            }
            for (i, answer) in revealed.answers.iter().enumerate() {
                if EncryptedCount::from_bytes(answer)?.decrypt(secret) > 0 {
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
            counts,
            held_by,
            statuses,
        })
    }
}

/// Checks a node's OPRF answer against the public key it names and unblinds
/// it; the error is a reason fit for the node's status.
fn finalize(
    state: BlindedItems,
    response: &v1::NodeOprfResponse,
) -> Result<(String, Vec<Fingerprint>), String> {
    let public = NodeOprfPublicKey::from_bytes(&response.public_key)
        .map_err(|e| format!("oprf public key: {e}"))?;
    let key_id = public.key_id().to_string();
    if key_id != response.key_id {
        return Err("oprf key id does not match the public key".to_owned());
    }
    let fingerprints = state
        .finalize(&public, &response.evaluated, &response.proof)
        .map_err(|e| format!("oprf answer: {e}"))?;
    Ok((key_id, fingerprints))
}

impl Requester {
    /// Runs a differentially private statistics query across the federation,
    /// signing `context` into the request's envelope.
    pub async fn stats(
        &mut self,
        mut context: v1::RequestContext,
        query: v1::StatsQuery,
    ) -> anyhow::Result<v1::StatsResponse> {
        context.envelope = Some(self.config.sign(
            "stats",
            &context,
            fedq_node::envelope::stats_payload_hash(&query),
        )?);
        Ok(self
            .client
            .stats(v1::StatsRequest {
                context: Some(context),
                query: Some(query),
            })
            .await
            .map_err(status_error)?
            .into_inner())
    }

    /// Every node's public catalog.
    pub async fn catalog(&mut self) -> anyhow::Result<v1::FederationCatalogResponse> {
        Ok(self
            .client
            .catalog(v1::FederationCatalogRequest {})
            .await
            .map_err(status_error)?
            .into_inner())
    }

    /// The requester's budget at every node.
    pub async fn budget(&mut self) -> anyhow::Result<v1::FederationBudgetResponse> {
        Ok(self
            .client
            .budget(v1::FederationBudgetRequest {})
            .await
            .map_err(status_error)?
            .into_inner())
    }
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
            Some(existing) if existing.status == "ok" && status.status != "ok" => {
                existing.status = status.status;
                existing.reason = status.reason;
            }
            // A node that withheld any part withheld the disclosure.
            Some(existing) if status.disclosure == "withheld" => {
                existing.disclosure = status.disclosure;
            }
            Some(_) => {}
            None => nodes.push(NodeResult {
                node: status.node,
                status: status.status,
                reason: status.reason,
                disclosure: status.disclosure,
            }),
        }
    }
}

fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!(
        "coordinator refused the request ({:?}): {}",
        status.code(),
        status.message()
    )
}

fn write_secret_key(dir: &Path, secret: &FheSecretKey) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(SECRET_KEY_FILE);
    let bytes = danger::secret_key_to_file_bytes(secret);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(&bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Reads a batch file: CSV `kind,value`, with or without a header.
pub fn read_batch(path: &Path) -> anyhow::Result<Vec<LookupInput>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut inputs = Vec::new();
    let mut problems = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record?;
        let line = record.position().map_or(i as u64 + 1, |p| p.line());
        let kind_text = record.get(0).unwrap_or("").trim();
        if i == 0 && kind_text.eq_ignore_ascii_case("kind") {
            continue;
        }
        match (kind_text.parse::<IdentifierKind>(), record.get(1)) {
            (Ok(kind), Some(value)) => inputs.push(LookupInput {
                kind,
                value: value.to_owned(),
            }),
            (Err(e), _) => problems.push(format!("line {line}: {e}")),
            (Ok(_), None) => problems.push(format!("line {line}: missing value column")),
        }
    }
    if !problems.is_empty() {
        bail!(
            "{}: invalid rows, nothing was sent:\n  {}",
            path.display(),
            problems.join("\n  ")
        );
    }
    Ok(inputs)
}
