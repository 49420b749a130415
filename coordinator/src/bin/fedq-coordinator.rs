//! `fedq-coordinator`: serve the coordinator, check its audit log, export
//! what it witnessed of the nodes' logs.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fedq_audit::cli::{self as audit_cli, ConfigArg, PartyCommand};
use fedq_audit::AuditLog;
use fedq_coordinator::config::CoordinatorConfig;
use fedq_coordinator::witness::cli::WitnessCommand;
use fedq_proto::exit::Exit;

#[derive(Parser)]
#[command(
    name = "fedq-coordinator",
    version,
    about = "The fedq coordinator: fan-out and encrypted combination",
    after_help = fedq_proto::exit::TABLE
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Party(PartyCommand),
    /// The nodes' audit checkpoints this coordinator witnessed.
    Witness {
        #[command(subcommand)]
        command: WitnessCommand,
    },
}

/// A config that does not load is a usage error (exit 2), reported once.
fn load(path: &std::path::Path) -> Result<CoordinatorConfig, ExitCode> {
    CoordinatorConfig::load(path).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Usage.process()
    })
}

fn main() -> ExitCode {
    fedq_transport::logging::init_tracing();
    let config = match Cli::parse().command {
        Command::Party(PartyCommand::Serve(ConfigArg { config })) => config,
        Command::Witness { command } => {
            return match load(command.config()) {
                Ok(config) => command.run(&config),
                Err(code) => code,
            };
        }
        Command::Party(PartyCommand::CheckConfig(ConfigArg { config: path })) => {
            return match load(&path) {
                Ok(config) => fedq_proto::toml_file::report_check(
                    &path,
                    config.tls.problems("coordinator"),
                    &format!(
                        "coordinator of {} node(s), listening on {}",
                        config.federation.nodes.len(),
                        config.listen
                    ),
                )
                .process(),
                Err(code) => code,
            };
        }
        Command::Party(PartyCommand::Audit { command }) => {
            return match load(command.config()) {
                Ok(config) => audit_cli::run(
                    AuditLog::open_read_only_at(
                        &config.key_store,
                        &config.audit_checkpoint,
                        &config.audit_key,
                    ),
                    &command,
                    &audit_cli::Pins {
                        party: "the coordinator".to_owned(),
                        node: None,
                        own: config.federation.coordinator_audit_key(),
                        coordinator: config.federation.coordinator_audit_key(),
                    },
                ),
                Err(code) => code,
            };
        }
    };
    let config = match load(&config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind(config.listen)
                    .await
                    .with_context(|| format!("cannot listen on {}", config.listen))?;
                fedq_coordinator::server::serve(
                    listener,
                    config,
                    fedq_transport::shutdown::signal(),
                )
                .await
            })
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
