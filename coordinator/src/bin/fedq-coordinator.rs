//! `fedq-coordinator`: serve the coordinator.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fedq_audit::cli::{self as audit_cli, AuditCommand};
use fedq_audit::AuditLog;
use fedq_coordinator::config::CoordinatorConfig;

#[derive(Parser)]
#[command(
    name = "fedq-coordinator",
    version,
    about = "The fedq coordinator: fan-out and encrypted combination"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve over mutual TLS until SIGTERM.
    Serve {
        /// The coordinator's config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Check or export the coordinator's tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

fn main() -> ExitCode {
    fedq_transport::logging::init_tracing();
    let config = match Cli::parse().command {
        Command::Serve { config } => config,
        Command::Audit { command } => {
            return match CoordinatorConfig::load(command.config()) {
                Ok(config) => audit_cli::run(
                    AuditLog::open(
                        &config.key_store,
                        &config.audit_checkpoint,
                        &config.audit_key,
                    ),
                    &command,
                ),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(64)
                }
            };
        }
    };
    let config = match CoordinatorConfig::load(&config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(64);
        }
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
