//! `fedq-coordinator witness export` and `witness alarms`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use fedq_proto::exit::Exit;

use super::WitnessStore;
use crate::config::CoordinatorConfig;

/// The `witness` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum WitnessCommand {
    /// Write the checkpoints of one node that this coordinator witnessed and
    /// countersigned, as JSON lines, for `fedq-node audit verify --witness`.
    Export {
        /// The coordinator's config file.
        #[arg(long)]
        config: PathBuf,
        /// The node (its id in federation.toml).
        #[arg(long)]
        node: String,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the refused checkpoints (rollbacks, forks, other keys) as JSON
    /// lines. Exit status: 0 if there is none, 5 if there is any.
    Alarms {
        /// The coordinator's config file.
        #[arg(long)]
        config: PathBuf,
        /// Only this node's.
        #[arg(long)]
        node: Option<String>,
    },
}

impl WitnessCommand {
    /// The config file named on the command line.
    pub fn config(&self) -> &std::path::Path {
        match self {
            Self::Export { config, .. } | Self::Alarms { config, .. } => config,
        }
    }

    /// Runs the command on a loaded config; returns the exit status.
    pub fn run(&self, config: &CoordinatorConfig) -> ExitCode {
        match self.execute(config) {
            Ok(exit) => exit.process(),
            Err(e) => {
                eprintln!("error: {e:#}");
                Exit::Error.process()
            }
        }
    }

    fn execute(&self, config: &CoordinatorConfig) -> anyhow::Result<Exit> {
        let store = WitnessStore::open_read_only(&config.key_store)?;
        match self {
            Self::Export { node, out, .. } => {
                anyhow::ensure!(
                    config.federation.nodes.iter().any(|n| &n.id == node),
                    "{node:?} is not a node of the federation"
                );
                let mut writer: Box<dyn Write> = match out {
                    Some(path) => Box::new(std::io::BufWriter::new(
                        fedq_transport::files::create_private(path)
                            .with_context(|| format!("cannot create {}", path.display()))?,
                    )),
                    None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
                };
                let count = store.export(node, &mut writer)?;
                eprintln!("exported {count} witnessed checkpoints of node {node}");
                Ok(Exit::Ok)
            }
            Self::Alarms { node, .. } => {
                let alarms = store.alarms(node.as_deref())?;
                for alarm in &alarms {
                    println!("{}", serde_json::to_string(alarm)?);
                }
                for alarm in &alarms {
                    eprintln!("alarm: {}", alarm.describe());
                }
                Ok(if alarms.is_empty() {
                    Exit::Ok
                } else {
                    Exit::Tampered
                })
            }
        }
    }
}
