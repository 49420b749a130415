//! `fedq federation init`: a ready local federation with a development CA.
//!
//! Writes the CA, an mTLS certificate per party (common name = party id), the
//! federation file and key, and a config file per node, coordinator and
//! requester. Secrets are written 0600. Meant for development and demos; a
//! production federation brings its own CA.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use fedq_crypto::envelope::SigningKey;
use fedq_proto::federation::{
    is_name, CoordinatorEntry, FederationToml, NodeEntry, Parameters, RequesterEntry,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// What to create.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Output directory.
    pub dir: PathBuf,
    /// Node ids (also their jurisdictions).
    pub nodes: Vec<String>,
    /// The investigator to create (looks identifiers up).
    pub requester: String,
    /// The researcher to create (asks statistics); by default nodes let
    /// each role do its own action only.
    pub researcher: String,
    /// Their agency.
    pub agency: String,
    /// First port; free ports are picked when absent.
    pub base_port: Option<u16>,
    /// Overwrite an existing federation in `dir`.
    pub force: bool,
    /// Federation parameters.
    pub parameters: Parameters,
}

/// Paths of what was written.
#[derive(Debug)]
pub struct InitOutput {
    /// `federation.toml`.
    pub federation: PathBuf,
    /// Per node id, its `node.toml`.
    pub nodes: Vec<(String, PathBuf)>,
    /// `coordinator.toml`.
    pub coordinator: PathBuf,
    /// The investigator's `client.toml`.
    pub client: PathBuf,
    /// The researcher's `client.toml`.
    pub researcher_client: PathBuf,
    /// The picked ports, still held open (empty with `base_port`).
    pub ports: ReservedPorts,
}

/// Listening sockets on the ports that `init` picked, held until the party
/// configured for each port starts or this is dropped. A party started in
/// the same process takes its socket from here: between picking a port and
/// listening on it, any other socket on the machine (an outgoing
/// connection, another federation being set up) could take it otherwise.
#[derive(Debug, Default)]
pub struct ReservedPorts(std::sync::Mutex<Vec<TcpListener>>);

impl ReservedPorts {
    /// The held socket for `addr`, if this reserved it.
    pub fn take(&self, addr: std::net::SocketAddr) -> Option<TcpListener> {
        let mut held = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let at = held
            .iter()
            .position(|l| l.local_addr().is_ok_and(|local| local == addr))?;
        Some(held.swap_remove(at))
    }
}

fn write_secret(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    fedq_transport::files::write_private(path, contents)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Where a party's audit key sits, beside its config file (the default of
/// `[audit] key` in node.toml and `audit_key` in coordinator.toml).
const AUDIT_KEY_FILE: &str = "audit.key";

/// Where a node's share of the deconfliction key sits, beside its config.
const DECONFLICTION_SHARE_FILE: &str = "deconfliction.share";

/// How many nodes must take part in a deconfliction pseudonym: a majority,
/// so that no minority of nodes (nor the coordinator, which holds no share)
/// can compute one for an identifier of its choosing, and a minority down
/// does not stop deconfliction. One node alone holds the whole key.
///
/// `federation init` deals the shares and forgets the key; a production
/// federation would generate it without a dealer (a distributed key
/// generation among the nodes), which fedq does not implement.
pub fn deconfliction_threshold(nodes: u16) -> u16 {
    nodes / 2 + 1
}

/// Creates an audit key at `path` (0600) and returns its public half, hex.
/// A key already there (`--force` over a federation) is kept and pinned:
/// the log it signed stays verifiable.
fn write_audit_key(path: &Path) -> anyhow::Result<String> {
    use fedq_crypto::audit_key::AuditSigningKey;
    let key = match std::fs::read_to_string(path) {
        Ok(text) => AuditSigningKey::from_file_text(&zeroize::Zeroizing::new(text))
            .with_context(|| format!("{}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = AuditSigningKey::generate();
            write_secret(path, key.to_file_text().as_bytes())?;
            key
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    Ok(key.public_key().to_hex())
}

/// `count` distinct free ports, below the range the system hands out for
/// outgoing connections (32768 and up on Linux): a port from that range,
/// free when picked, can be taken by any outgoing connection before the
/// party that is to listen on it starts. Each listener stays open until all
/// are picked (and after, in the returned [`ReservedPorts`]): released one
/// by one, the same port could be picked twice.
fn free_ports(count: usize) -> anyhow::Result<Vec<TcpListener>> {
    const LOW: u16 = 20_000;
    const HIGH: u16 = 32_000;
    let mut listeners = Vec::with_capacity(count);
    let mut tries = 0;
    while listeners.len() < count && tries < 20 * count + 100 {
        tries += 1;
        let port = LOW + rand::random::<u16>() % (HIGH - LOW);
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            listeners.push(listener);
        }
    }
    // A crowded machine: whatever the system gives.
    while listeners.len() < count {
        listeners.push(TcpListener::bind("127.0.0.1:0")?);
    }
    Ok(listeners)
}

/// What a certificate may be used for. Separate profiles keep a requester's
/// certificate from passing as a TLS server (it could stand in for a node
/// towards the coordinator) and a node's from calling anyone as a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    /// Serves lookups and statistics: server authentication only.
    Node,
    /// Serves requesters and calls nodes: both.
    Coordinator,
    /// Calls the coordinator: client authentication only, and no host names.
    Requester,
}

impl Profile {
    fn stem(self) -> &'static str {
        match self {
            Profile::Node => "node",
            Profile::Coordinator => "coordinator",
            Profile::Requester => "requester",
        }
    }
}

/// Issues `common_name`'s certificate and key under `dir` (the key 0600).
fn issue(
    ca: &Issuer<'_, KeyPair>,
    common_name: &str,
    dir: &Path,
    profile: Profile,
) -> anyhow::Result<()> {
    let mut names = vec![common_name.to_owned()];
    if profile != Profile::Requester {
        names.push("localhost".to_owned());
    }
    let mut params = CertificateParams::new(names)?;
    if profile != Profile::Requester {
        params
            .subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse()?));
    }
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = match profile {
        Profile::Node => vec![ExtendedKeyUsagePurpose::ServerAuth],
        Profile::Coordinator => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        Profile::Requester => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    std::fs::create_dir_all(dir)?;
    let stem = profile.stem();
    std::fs::write(dir.join(format!("{stem}.pem")), cert.pem())?;
    write_secret(
        &dir.join(format!("{stem}.key")),
        key.serialize_pem().as_bytes(),
    )
}

/// The `[stats]` section of a generated node: the privacy budget caps in
/// zCDP rho (per requester and month, per agency and month, per requester
/// for good), and the catalog of the generator's `incidents.csv`.
fn stats_section() -> anyhow::Result<String> {
    use fedq_proto::catalog::TableCatalog;
    #[derive(serde::Serialize)]
    struct Stats {
        dir: &'static str,
        rho_per_epoch: f64,
        agency_rho_per_epoch: f64,
        rho_lifetime: f64,
        delta: f64,
        tables: Vec<TableCatalog>,
    }
    #[derive(serde::Serialize)]
    struct Section {
        stats: Stats,
    }
    let section = Section {
        stats: Stats {
            dir: "data/stats",
            rho_per_epoch: 2.0,
            agency_rho_per_epoch: 6.0,
            rho_lifetime: 24.0,
            delta: 1e-6,
            tables: vec![fedq_proto::demo::incidents_catalog()],
        },
    };
    Ok(format!(
        "# Privacy budget in one currency, zCDP rho (epsilon e costs e^2/2): caps per\n\
         # requester and calendar month, per agency and month, per requester for\n\
         # good; delta shows spending as (epsilon, delta)-DP. Then the public catalog.\n{}",
        toml::to_string(&section)?
    ))
}

/// Purposes the generated policies admit for lookups.
pub const LOOKUP_PURPOSES: [&str; 3] = ["fraud", "counter-terrorism", "demo"];
/// Purposes the generated policies admit for deconfliction.
pub const DECONFLICT_PURPOSES: [&str; 1] = ["deconfliction"];
/// Purposes the generated policies admit for statistics.
pub const STATS_PURPOSES: [&str; 2] = ["threat-report", "research"];
/// The one purpose under which the first node of a generated federation
/// reveals its own hit (staged disclosure); the other nodes never do.
pub const DISCLOSURE_PURPOSE: &str = "counter-terrorism";

/// The `[policy]` section of a generated node: the init requester's agency,
/// investigators and researchers, the purposes above, every identifier kind,
/// the incidents table, for one year. Only the first node discloses.
fn policy_section(agency: &str, discloses: bool) -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|i| format!("{i:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let kinds: Vec<&str> = fedq_crypto::IdentifierKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    let valid_until = (chrono::Utc::now().date_naive() + chrono::Days::new(365)).format("%Y-%m-%d");
    let disclosure = if discloses {
        format!(
            "\n# This node reveals its own hit to investigators of {agency:?} working\n\
             # {DISCLOSURE_PURPOSE} cases (with an authorization reference).\n\
             [policy.disclosure]\nagencies = [{agency:?}]\nroles = [\"investigator\"]\npurposes = [{DISCLOSURE_PURPOSE:?}]\n"
        )
    } else {
        "\n# No [policy.disclosure]: this node never reveals its own hit.\n".to_owned()
    };
    format!(
        "# Who may ask what of this node, for which purpose, how often, until when.\n\
         [policy]\nvalid_until = \"{valid_until}\"\nagencies = [{agency:?}]\nroles = [\"investigator\", \"researcher\"]\n\n\
         [policy.purposes]\nlookup = [{}]\nstats = [{}]\ndeconflict = [{}]\n\n\
         [policy.lookup]\nkinds = [{}]\nper_hour_per_kind = 1000\n\n\
         [policy.stats]\ntables = [\"incidents\"]\n{disclosure}",
        list(&LOOKUP_PURPOSES),
        list(&STATS_PURPOSES),
        list(&DECONFLICT_PURPOSES),
        list(&kinds),
    )
}

/// Creates the federation.
pub fn init(options: &InitOptions) -> anyhow::Result<InitOutput> {
    let dir = &options.dir;
    if options.nodes.is_empty() {
        bail!("--nodes needs at least one node id");
    }
    for id in options
        .nodes
        .iter()
        .chain([&options.requester, &options.researcher])
    {
        if !is_name(id) || id == "coordinator" || id == "ca" {
            bail!("{id:?} is not a valid id: use lowercase letters, digits and '-' (not 'coordinator')");
        }
    }
    let mut unique = options.nodes.clone();
    unique.sort();
    unique.dedup();
    if unique.len() != options.nodes.len() {
        bail!("--nodes lists a node twice");
    }
    if options.requester == options.researcher {
        bail!("the investigator and the researcher need different ids");
    }
    // Refuse what no node would start with, before anything is written.
    let probe = FederationToml {
        version: fedq_proto::toml_file::CONFIG_VERSION,
        name: "probe".to_owned(),
        parameters: options.parameters.clone(),
        coordinator: CoordinatorEntry {
            address: "127.0.0.1:1".to_owned(),
            audit_key: None,
        },
        nodes: options
            .nodes
            .iter()
            .map(|id| NodeEntry {
                oprf_keys: Vec::new(),
                id: id.clone(),
                jurisdiction: id.clone(),
                address: "127.0.0.1:1".to_owned(),
                audit_key: None,
                deconfliction_share: None,
            })
            .collect(),
        requesters: Vec::new(),
        deconfliction: None,
    };
    if let Err(problems) = fedq_proto::federation::FederationFile::validate(probe) {
        bail!(
            "nothing was written; no node would accept this federation:\n  {}",
            problems.join("\n  ")
        );
    }
    let federation_path = dir.join("federation.toml");
    let occupied = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied && !options.force {
        bail!(
            "{} is not empty: nothing was written (use --force to overwrite a federation there)",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir)?;

    let parties = options.nodes.len() + 1;
    let (ports, reserved) = match options.base_port {
        Some(base) => {
            let ports = (0..parties)
                .map(|i| {
                    u16::try_from(i)
                        .ok()
                        .and_then(|i| base.checked_add(i))
                        .context("--base-port is too high")
                })
                .collect::<anyhow::Result<Vec<u16>>>()?;
            (ports, Vec::new())
        }
        None => {
            let listeners = free_ports(parties)?;
            let ports = listeners
                .iter()
                .map(|l| l.local_addr().map(|a| a.port()))
                .collect::<std::io::Result<Vec<u16>>>()?;
            (ports, listeners)
        }
    };

    let ca_dir = dir.join("ca");
    std::fs::create_dir_all(&ca_dir)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fedq development CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    std::fs::write(ca_dir.join("ca.pem"), ca.pem())?;
    write_secret(&ca_dir.join("ca.key"), ca.key().serialize_pem().as_bytes())?;

    // Every party's audit key exists before it first runs, and its public
    // half is pinned here: what a party signs is then checked against a key
    // that its own operator cannot swap unseen.
    let coordinator_dir = dir.join("coordinator");
    let coordinator_audit_key = write_audit_key(&coordinator_dir.join(AUDIT_KEY_FILE))?;
    let mut node_audit_keys = Vec::with_capacity(options.nodes.len());
    for node in &options.nodes {
        node_audit_keys.push(write_audit_key(
            &dir.join("nodes").join(node).join(AUDIT_KEY_FILE),
        )?);
    }
    // The deconfliction key: dealt here, its shares written to the nodes'
    // directories, the key itself never written (see `deconfliction_threshold`).
    let node_count = u16::try_from(options.nodes.len()).context("too many nodes")?;
    let (threshold_key, shares) =
        fedq_crypto::toprf::deal(deconfliction_threshold(node_count), node_count)?;
    for (node, share) in options.nodes.iter().zip(&shares) {
        write_secret(
            &dir.join("nodes").join(node).join(DECONFLICTION_SHARE_FILE),
            share.to_text().as_bytes(),
        )?;
    }
    let federation = FederationToml {
        version: fedq_proto::toml_file::CONFIG_VERSION,
        name: dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("federation")
            .to_owned(),
        parameters: options.parameters.clone(),
        coordinator: CoordinatorEntry {
            address: format!("127.0.0.1:{}", ports[0]),
            audit_key: Some(coordinator_audit_key),
        },
        nodes: options
            .nodes
            .iter()
            .zip(&ports[1..])
            .zip(node_audit_keys)
            .zip(&shares)
            .map(|(((id, port), audit_key), share)| NodeEntry {
                oprf_keys: Vec::new(),
                id: id.clone(),
                jurisdiction: id.clone(),
                address: format!("127.0.0.1:{port}"),
                audit_key: Some(audit_key),
                deconfliction_share: Some(share.public().to_text()),
            })
            .collect(),
        requesters: Vec::new(),
        deconfliction: Some(fedq_proto::federation::DeconflictionEntry {
            threshold_key: threshold_key.to_text(),
        }),
    };
    drop(shares);
    std::fs::write(&federation_path, toml::to_string_pretty(&federation)?)?;

    let mut nodes = Vec::new();
    for (node, port) in options.nodes.iter().zip(&ports[1..]) {
        let node_dir = dir.join("nodes").join(node);
        issue(&ca, node, &node_dir.join("tls"), Profile::Node)?;
        fedq_transport::files::create_private_dir(&node_dir.join("data"))?;
        let path = node_dir.join("node.toml");
        std::fs::write(
            &path,
            format!(
                "version = 1\nnode_id = \"{node}\"\nlisten = \"127.0.0.1:{port}\"\nfederation = \"../../federation.toml\"\n\
                 store = \"sqlite://data/node.db\"\n\n\
                 [tls]\nca = \"../../ca/ca.pem\"\ncert = \"tls/node.pem\"\nkey = \"tls/node.key\"\n\n\
                 [lookup]\n# Certificate names allowed to query this node.\nallowed_callers = [\"coordinator\"]\n\n\
                 # The key that signs this node's audit log (0600); federation.toml pins its public half.\n\
                 [audit]\nkey = \"{AUDIT_KEY_FILE}\"\n\n\
                 # This node's share of the federation's deconfliction key (0600).\n\
                 [deconfliction]\nshare = \"{DECONFLICTION_SHARE_FILE}\"\n\n{}\n{}",
                stats_section()?,
                policy_section(&options.agency, nodes.is_empty())
            ),
        )?;
        nodes.push((node.clone(), path));
    }

    issue(
        &ca,
        "coordinator",
        &coordinator_dir.join("tls"),
        Profile::Coordinator,
    )?;
    let coordinator = coordinator_dir.join("coordinator.toml");
    std::fs::write(
        &coordinator,
        format!(
            "version = 1\nlisten = \"127.0.0.1:{}\"\nfederation = \"../federation.toml\"\nkey_store = \"data/keys.db\"\n\
             node_timeout_ms = 30000\n\
             # The key that signs the coordinator's audit log and countersigns the nodes'\n\
             # checkpoints (0600); federation.toml pins its public half.\naudit_key = \"{AUDIT_KEY_FILE}\"\n\n\
             # How often every node's audit checkpoint is fetched, checked and countersigned.\n\
             [witness]\ninterval_seconds = 60\n\n[tls]\nca = \"../ca/ca.pem\"\ncert = \"tls/coordinator.pem\"\nkey = \"tls/coordinator.key\"\n",
            ports[0]
        ),
    )?;

    let client = write_requester(
        dir,
        &ca,
        &RequesterEntry {
            id: options.requester.clone(),
            agency: options.agency.clone(),
            role: fedq_proto::Role::Investigator,
            public_key: String::new(),
        },
    )?;
    let researcher_client = write_requester(
        dir,
        &ca,
        &RequesterEntry {
            id: options.researcher.clone(),
            agency: options.agency.clone(),
            role: fedq_proto::Role::Researcher,
            public_key: String::new(),
        },
    )?;
    Ok(InitOutput {
        federation: federation_path,
        nodes,
        coordinator,
        client,
        researcher_client,
        ports: ReservedPorts(std::sync::Mutex::new(reserved)),
    })
}

/// `fedq federation add-requester`: a certificate from the federation's CA, a
/// signing key, a `client.toml`, and an entry in `federation.toml`. Running
/// nodes pick the new requester up on its first signed request.
pub fn add_requester(dir: &Path, requester: &RequesterEntry) -> anyhow::Result<PathBuf> {
    if !is_name(&requester.id) || requester.id == "coordinator" || requester.id == "ca" {
        bail!(
            "{:?} is not a valid requester id: use lowercase letters, digits and '-'",
            requester.id
        );
    }
    let ca_dir = dir.join("ca");
    let read = |name: &str| {
        std::fs::read_to_string(ca_dir.join(name))
            .with_context(|| format!("cannot read {}", ca_dir.join(name).display()))
    };
    let key = KeyPair::from_pem(&read("ca.key")?).context("the CA key is invalid")?;
    let ca =
        Issuer::from_ca_cert_pem(&read("ca.pem")?, key).context("the CA certificate is invalid")?;
    write_requester(dir, &ca, requester)
}

/// Issues the requester's certificate and signing key, writes its
/// `client.toml`, and lists it (with its public key) in `federation.toml`.
fn write_requester(
    dir: &Path,
    ca: &Issuer<'_, KeyPair>,
    requester: &RequesterEntry,
) -> anyhow::Result<PathBuf> {
    let mut federation = read_federation(dir)?;
    if federation.requesters.iter().any(|r| r.id == requester.id) {
        bail!("requester {:?} already exists", requester.id);
    }
    if federation.nodes.iter().any(|n| n.id == requester.id) {
        bail!(
            "{:?} is a node of this federation: nodes, the coordinator and requesters share one \
             namespace (a certificate names one party)",
            requester.id
        );
    }
    let requester_dir = dir.join("requesters").join(&requester.id);
    issue(
        ca,
        &requester.id,
        &requester_dir.join("tls"),
        Profile::Requester,
    )?;
    let signing_key = SigningKey::generate();
    write_secret(
        &requester_dir.join("signing.key"),
        signing_key.to_text().as_bytes(),
    )?;
    let client = requester_dir.join("client.toml");
    std::fs::write(
        &client,
        format!(
            "version = 1\nrequester = \"{}\"\nfederation = \"../../federation.toml\"\n\
             keys_dir = \"keys\"\n# Ed25519 key that signs every request envelope (0600).\nsigning_key = \"signing.key\"\n\
             # Legal basis stated in every request unless --legal-basis says otherwise.\nlegal_basis = \"demo federation: synthetic data only\"\n\n\
             [tls]\nca = \"../../ca/ca.pem\"\ncert = \"tls/requester.pem\"\nkey = \"tls/requester.key\"\n",
            requester.id
        ),
    )?;
    federation.requesters.push(RequesterEntry {
        public_key: signing_key.verifying_key().to_text(),
        ..requester.clone()
    });
    write_federation(dir, &federation)?;
    Ok(client)
}

/// `fedq federation remove-requester`: drops the requester from
/// `federation.toml`. Running nodes and the coordinator re-read the file
/// within a second and refuse its requests from then on; its certificate
/// still passes TLS but names no party, and its files are left in place.
pub fn remove_requester(dir: &Path, id: &str) -> anyhow::Result<()> {
    let mut federation = read_federation(dir)?;
    let before = federation.requesters.len();
    federation.requesters.retain(|r| r.id != id);
    if federation.requesters.len() == before {
        bail!(
            "requester {id:?} is not listed in {}",
            dir.join("federation.toml").display()
        );
    }
    write_federation(dir, &federation)
}

/// Pins `key` (64 hex digits) as an OPRF public key of node `node` in the
/// federation file of `dir`; `replace` drops the keys pinned before (after a
/// rotation has finished).
pub fn pin_oprf_key(dir: &Path, node: &str, key: &str, replace: bool) -> anyhow::Result<()> {
    let key = fedq_crypto::oprf::NodeOprfPublicKey::from_text(key)
        .map_err(|_| {
            anyhow::anyhow!(
                "--key: not an OPRF public key (64 hex digits, as `fedq-node oprf-key` prints)"
            )
        })?
        .to_text();
    let mut federation = read_federation(dir)?;
    let entry = federation
        .nodes
        .iter_mut()
        .find(|n| n.id == node)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "node {node:?} is not listed in {}",
                dir.join("federation.toml").display()
            )
        })?;
    if replace {
        entry.oprf_keys.clear();
    }
    if !entry.oprf_keys.contains(&key) {
        entry.oprf_keys.push(key);
    }
    write_federation(dir, &federation)
}

fn read_federation(dir: &Path) -> anyhow::Result<FederationToml> {
    let path = dir.join("federation.toml");
    toml::from_str(
        &std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?,
    )
    .with_context(|| format!("{} is not a federation file", path.display()))
}

/// Write-then-rename: nodes and the coordinator re-read this file while they
/// run, and must never see half of it.
fn write_federation(dir: &Path, federation: &FederationToml) -> anyhow::Result<()> {
    let temp = dir.join(".federation.toml.tmp");
    std::fs::write(&temp, toml::to_string_pretty(federation)?)?;
    std::fs::rename(&temp, dir.join("federation.toml"))?;
    Ok(())
}
