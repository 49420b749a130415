//! `fedq federation init`: a ready local federation with a development CA.
//!
//! Writes the CA, an mTLS certificate per party (common name = party id), the
//! federation file and key, and a config file per node, coordinator and
//! requester. Secrets are written 0600. Meant for development and demos; a
//! production federation brings its own CA.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use fedq_crypto::FederationKey;
use fedq_node::federation::{
    is_name, CoordinatorEntry, FederationToml, NodeEntry, Parameters, RequesterEntry,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// What to create.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Output directory.
    pub dir: PathBuf,
    /// Node ids (also their jurisdictions).
    pub nodes: Vec<String>,
    /// The requester to create.
    pub requester: String,
    /// Its agency.
    pub agency: String,
    /// First port; free ports are picked when absent.
    pub base_port: Option<u16>,
    /// Overwrite an existing federation in `dir`.
    pub force: bool,
    /// Federation parameters.
    pub parameters: Parameters,
}

/// Paths of what was written.
#[derive(Debug, Clone)]
pub struct InitOutput {
    /// `federation.toml`.
    pub federation: PathBuf,
    /// Per node id, its `node.toml`.
    pub nodes: Vec<(String, PathBuf)>,
    /// `coordinator.toml`.
    pub coordinator: PathBuf,
    /// The requester's `client.toml`.
    pub client: PathBuf,
}

fn write_secret(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents)?;
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn issue(
    ca: &CertifiedIssuer<'_, KeyPair>,
    common_name: &str,
    dir: &Path,
    stem: &str,
) -> anyhow::Result<()> {
    let mut params = CertificateParams::new(vec![common_name.to_owned(), "localhost".to_owned()])?;
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse()?));
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, ca)?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("{stem}.pem")), cert.pem())?;
    write_secret(
        &dir.join(format!("{stem}.key")),
        key.serialize_pem().as_bytes(),
    )
}

/// The `[stats]` section of a generated node: caps per requester and month,
/// and the catalog of the generator's `incidents.csv`.
fn stats_section() -> anyhow::Result<String> {
    use fedq_node::stats::{ColumnSpec, TableCatalog};
    let strings = |values: &[&str]| values.iter().map(|v| v.to_string()).collect::<Vec<_>>();
    let incidents = TableCatalog {
        name: "incidents".to_owned(),
        privacy_unit: "unit_id".to_owned(),
        max_rows_per_unit: 10,
        columns: vec![
            ColumnSpec::Identifier {
                name: "incident_id".to_owned(),
            },
            ColumnSpec::Identifier {
                name: "unit_id".to_owned(),
            },
            ColumnSpec::Date {
                name: "date".to_owned(),
                from: "2024-01-01".to_owned(),
                to: "2026-12-31".to_owned(),
            },
            ColumnSpec::Category {
                name: "category".to_owned(),
                values: strings(fedq_node::generate::CATEGORIES),
            },
            ColumnSpec::Category {
                name: "sector".to_owned(),
                values: strings(fedq_node::generate::SECTORS),
            },
            ColumnSpec::Integer {
                name: "loss_eur".to_owned(),
                min: 0,
                max: 1_000_000,
            },
            ColumnSpec::Integer {
                name: "severity".to_owned(),
                min: 1,
                max: 5,
            },
        ],
    };
    #[derive(serde::Serialize)]
    struct Stats {
        dir: &'static str,
        epsilon_per_epoch: f64,
        rho_per_epoch: f64,
        tables: Vec<TableCatalog>,
    }
    #[derive(serde::Serialize)]
    struct Section {
        stats: Stats,
    }
    let section = Section {
        stats: Stats {
            dir: "data/stats",
            epsilon_per_epoch: 10.0,
            rho_per_epoch: 0.5,
            tables: vec![incidents],
        },
    };
    Ok(format!(
        "# Privacy budget caps per requester and calendar month, and the public catalog.\n{}",
        toml::to_string(&section)?
    ))
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
        .chain(std::iter::once(&options.requester))
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
    let federation_path = dir.join("federation.toml");
    if federation_path.exists() && !options.force {
        bail!(
            "{} already exists (use --force to overwrite)",
            federation_path.display()
        );
    }
    std::fs::create_dir_all(dir)?;

    let mut ports = Vec::with_capacity(options.nodes.len() + 1);
    for i in 0..=options.nodes.len() {
        ports.push(match options.base_port {
            Some(base) => base
                .checked_add(i as u16)
                .context("--base-port is too high")?,
            None => free_port()?,
        });
    }

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
    write_secret(
        &dir.join("federation.key"),
        FederationKey::generate().to_hex().as_bytes(),
    )?;

    let federation = FederationToml {
        version: fedq_node::config::CONFIG_VERSION,
        name: dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("federation")
            .to_owned(),
        parameters: options.parameters.clone(),
        coordinator: CoordinatorEntry {
            address: format!("127.0.0.1:{}", ports[0]),
        },
        nodes: options
            .nodes
            .iter()
            .zip(&ports[1..])
            .map(|(id, port)| NodeEntry {
                id: id.clone(),
                jurisdiction: id.clone(),
                address: format!("127.0.0.1:{port}"),
            })
            .collect(),
        requesters: vec![RequesterEntry {
            id: options.requester.clone(),
            agency: options.agency.clone(),
            role: "investigator".to_owned(),
        }],
    };
    std::fs::write(&federation_path, toml::to_string_pretty(&federation)?)?;

    let mut nodes = Vec::new();
    for (node, port) in options.nodes.iter().zip(&ports[1..]) {
        let node_dir = dir.join("nodes").join(node);
        issue(&ca, node, &node_dir.join("tls"), "node")?;
        std::fs::create_dir_all(node_dir.join("data"))?;
        let path = node_dir.join("node.toml");
        std::fs::write(
            &path,
            format!(
                "version = 1\nnode_id = \"{node}\"\nlisten = \"127.0.0.1:{port}\"\nfederation = \"../../federation.toml\"\n\
                 federation_key = \"../../federation.key\"\nstore = \"sqlite://data/node.db\"\n\n\
                 [tls]\nca = \"../../ca/ca.pem\"\ncert = \"tls/node.pem\"\nkey = \"tls/node.key\"\n\n\
                 [lookup]\n# Certificate names allowed to query this node.\nallowed_callers = [\"coordinator\"]\n\n{}",
                stats_section()?
            ),
        )?;
        nodes.push((node.clone(), path));
    }

    let coordinator_dir = dir.join("coordinator");
    issue(
        &ca,
        "coordinator",
        &coordinator_dir.join("tls"),
        "coordinator",
    )?;
    let coordinator = coordinator_dir.join("coordinator.toml");
    std::fs::write(
        &coordinator,
        format!(
            "version = 1\nlisten = \"127.0.0.1:{}\"\nfederation = \"../federation.toml\"\nkey_store = \"data/keys.db\"\n\
             node_timeout_ms = 30000\n\n[tls]\nca = \"../ca/ca.pem\"\ncert = \"tls/coordinator.pem\"\nkey = \"tls/coordinator.key\"\n",
            ports[0]
        ),
    )?;

    let requester_dir = dir.join("requesters").join(&options.requester);
    issue(
        &ca,
        &options.requester,
        &requester_dir.join("tls"),
        "requester",
    )?;
    let client = requester_dir.join("client.toml");
    std::fs::write(
        &client,
        format!(
            "version = 1\nrequester = \"{}\"\nfederation = \"../../federation.toml\"\nfederation_key = \"../../federation.key\"\n\
             keys_dir = \"keys\"\n\n[tls]\nca = \"../../ca/ca.pem\"\ncert = \"tls/requester.pem\"\nkey = \"tls/requester.key\"\n",
            options.requester
        ),
    )?;
    Ok(InitOutput {
        federation: federation_path,
        nodes,
        coordinator,
        client,
    })
}
