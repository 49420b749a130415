//! A federation sandbox: `federation init`, `generate`, `import`, then every
//! node and the coordinator serving on 127.0.0.1 over mutual TLS, inside one
//! shared tokio runtime so that many `#[test]`s can use it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use crate::local::{start_coordinator, start_node, Running};
use anyhow::Context;
use fedq_client::init::{init, InitOptions, InitOutput, ReservedPorts};
use fedq_client::{ClientConfig, Requester};
use fedq_node::NodeService;
use fedq_proto::federation::{Parameters, TagCompression};
use fedq_proto::v1;
use fedq_synth::{generate, GenerateOptions};
use tokio::runtime::Runtime;

/// Runtime hosting every sandbox of a test binary.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// A running federation.
pub struct FederationSandbox {
    /// Keeps the directory alive.
    _temp: tempfile::TempDir,
    /// Federation directory.
    pub dir: PathBuf,
    /// Paths written by `federation init`.
    pub output: InitOutput,
    /// Per node id, its service (for test-only checks of what it holds).
    pub nodes: Vec<(String, Arc<NodeService>)>,
    running: Mutex<Vec<Running>>,
}

/// Rewrites a generated config file's text before the parties start.
type ConfigEdit = Box<dyn Fn(&str) -> String + Send + Sync>;

/// Builder of a [`FederationSandbox`].
pub struct FederationSandboxBuilder {
    nodes: Vec<String>,
    people: usize,
    seed: u64,
    padded_candidates: usize,
    compression: TagCompression,
    node_edits: Vec<ConfigEdit>,
    coordinator_edits: Vec<ConfigEdit>,
}

impl FederationSandbox {
    /// Starts building a sandbox.
    pub fn builder() -> FederationSandboxBuilder {
        FederationSandboxBuilder {
            nodes: Vec::new(),
            people: 2_000,
            seed: 11,
            padded_candidates: 64,
            compression: TagCompression::default(),
            node_edits: Vec::new(),
            coordinator_edits: Vec::new(),
        }
    }

    /// Connects the sandbox's requester to the coordinator, with keys registered.
    pub async fn requester(&self) -> anyhow::Result<Requester> {
        let mut requester = Requester::connect(ClientConfig::load(&self.output.client)?).await?;
        requester.keys_init(false).await?;
        Ok(requester)
    }

    /// Connects the sandbox's researcher (rosa), who asks the statistics.
    pub async fn researcher(&self) -> anyhow::Result<Requester> {
        Requester::connect(ClientConfig::load(&self.output.researcher_client)?).await
    }

    /// Signs a request envelope as the sandbox's requester would (rosa for
    /// statistics, alice for the rest), for tests that call a node directly.
    pub fn sign(
        &self,
        action: &str,
        purpose: &str,
        payload_hash: String,
    ) -> anyhow::Result<v1::SignedEnvelope> {
        let context = v1::RequestContext {
            purpose: purpose.to_owned(),
            case_reference: "T-1".to_owned(),
            legal_basis: "integration test on synthetic data".to_owned(),
            envelope: None,
        };
        let client = if action == "stats" {
            &self.output.researcher_client
        } else {
            &self.output.client
        };
        ClientConfig::load(client)?.sign(action, &context, payload_hash)
    }

    /// The node's `identifiers.csv`.
    pub fn identifiers_csv(&self, node: &str) -> PathBuf {
        self.dir
            .join("nodes")
            .join(node)
            .join("data")
            .join("identifiers.csv")
    }

    /// Stops one node (its gRPC server drains and exits).
    pub async fn stop_node(&self, node: &str) -> anyhow::Result<()> {
        let party = {
            let mut running = self.running.lock().expect("sandbox lock");
            let index = running
                .iter()
                .position(|r| r.name == node)
                .context("no such running node")?;
            running.remove(index)
        };
        party.stop().await
    }

    /// Restarts a stopped node from its config.
    pub async fn restart_node(&self, node: &str) -> anyhow::Result<()> {
        let (running, _) = start_node(self.node_toml(node)?, &ReservedPorts::default()).await?;
        self.running.lock().expect("sandbox lock").push(running);
        Ok(())
    }
}

impl FederationSandboxBuilder {
    /// Adds a jurisdiction.
    pub fn jurisdiction(mut self, id: &str) -> Self {
        self.nodes.push(id.to_owned());
        self
    }

    /// People per jurisdiction in the synthetic data.
    pub fn people(mut self, people: usize) -> Self {
        self.people = people;
        self
    }

    /// The federation's choice of compression (`fedq federation init
    /// --compression`); packed by default.
    pub fn compression(mut self, compression: TagCompression) -> Self {
        self.compression = compression;
        self
    }

    /// Appends `toml` (whole tables, e.g. `[limits]`) to every `node.toml`
    /// before the parties start.
    pub fn node_toml(self, toml: &str) -> Self {
        let toml = toml.to_owned();
        self.edit_node_toml(move |text| format!("{text}\n{toml}\n"))
    }

    /// Appends `toml` to `coordinator.toml` before the parties start.
    pub fn coordinator_toml(mut self, toml: &str) -> Self {
        let toml = toml.to_owned();
        self.coordinator_edits
            .push(Box::new(move |text| format!("{text}\n{toml}\n")));
        self
    }

    /// Rewrites every generated `node.toml` (e.g. to add a key to a table
    /// `federation init` already wrote) before anything reads it.
    pub fn edit_node_toml(mut self, edit: impl Fn(&str) -> String + Send + Sync + 'static) -> Self {
        self.node_edits.push(Box::new(edit));
        self
    }

    /// Rewrites the generated `coordinator.toml` before anything reads it.
    pub fn edit_coordinator_toml(
        mut self,
        edit: impl Fn(&str) -> String + Send + Sync + 'static,
    ) -> Self {
        self.coordinator_edits.push(Box::new(edit));
        self
    }

    /// Creates the files, imports the data and starts every party.
    pub async fn build(self) -> anyhow::Result<FederationSandbox> {
        let temp = tempfile::tempdir()?;
        let dir = temp.path().join("federation");
        let output = init(&InitOptions {
            dir: dir.clone(),
            nodes: self.nodes.clone(),
            requester: "alice".to_owned(),
            researcher: "rosa".to_owned(),
            agency: "test-agency".to_owned(),
            base_port: None,
            force: false,
            parameters: Parameters {
                padded_candidates: self.padded_candidates,
                compression: self.compression,
                ..Parameters::default()
            },
        })?;
        for (_, config) in &output.nodes {
            edit_file(config, &self.node_edits)?;
            crate::store::store_under_test(config)?;
        }
        edit_file(&output.coordinator, &self.coordinator_edits)?;
        crate::store::coordinator_store_under_test(&output.coordinator)?;
        for (node, config) in &output.nodes {
            let data = dir.join("nodes").join(node).join("data");
            generate(&GenerateOptions {
                jurisdiction: node.clone(),
                people: self.people,
                seed: self.seed,
                out: data.clone(),
            })?;
            import(config, &data.join("identifiers.csv"))?;
            crate::demo::import_incidents(&fedq_node::NodeConfig::load(config)?, &data)?;
        }
        let mut running = Vec::new();
        let mut nodes = Vec::new();
        for (node, config) in &output.nodes {
            let (party, service) = start_node(config, &output.ports).await?;
            running.push(party);
            nodes.push((node.clone(), service));
        }
        running.push(start_coordinator(&output.coordinator, &output.ports).await?);
        Ok(FederationSandbox {
            _temp: temp,
            dir,
            output,
            nodes,
            running: Mutex::new(running),
        })
    }
}

impl FederationSandbox {
    /// The bucket of an identifier at `node`, from that node's own OPRF key.
    pub fn bucket(
        &self,
        node: &str,
        kind: fedq_crypto::IdentifierKind,
        normal: &fedq_crypto::NormalForm,
        params: fedq_crypto::FingerprintParams,
    ) -> anyhow::Result<u32> {
        Ok(self.node(node)?.fingerprint(kind, normal)?.bucket(params).0)
    }

    /// Node `id`'s service as the sandbox started it (still readable once
    /// the node is stopped: its store stays open).
    pub fn node(&self, id: &str) -> anyhow::Result<Arc<NodeService>> {
        self.nodes
            .iter()
            .find(|(n, _)| n == id)
            .map(|(_, service)| Arc::clone(service))
            .with_context(|| format!("no node {id} in the sandbox"))
    }

    /// Node `id`'s `node.toml`.
    pub fn node_toml(&self, id: &str) -> anyhow::Result<&Path> {
        self.output
            .nodes
            .iter()
            .find(|(n, _)| n == id)
            .map(|(_, config)| config.as_path())
            .with_context(|| format!("no node {id} in the sandbox"))
    }
}

/// Applies `edits` in order to the file at `path`.
fn edit_file(path: &Path, edits: &[ConfigEdit]) -> anyhow::Result<()> {
    if edits.is_empty() {
        return Ok(());
    }
    let mut text = std::fs::read_to_string(path)?;
    for edit in edits {
        text = edit(&text);
    }
    std::fs::write(path, text)?;
    Ok(())
}

fn import(config: &Path, file: &Path) -> anyhow::Result<()> {
    let config = fedq_node::NodeConfig::load(config)?;
    let mut store = fedq_node::store::Store::open(&config.store)?;
    let report = fedq_node::import::import_identifiers(
        &mut store,
        std::io::BufReader::new(std::fs::File::open(file)?),
        |_| {},
    )?;
    anyhow::ensure!(
        report.rejected.is_empty(),
        "generated rows were refused: {:?}",
        report.rejected.first()
    );
    Ok(())
}
