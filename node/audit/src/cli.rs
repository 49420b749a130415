//! `audit verify` and `audit export`, shared by `fedq-node` and
//! `fedq-coordinator`: both keep the same hash-chained log.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use fedq_crypto::audit_key::AuditPublicKey;
use fedq_proto::exit::Exit;

use super::AuditLog;

/// Exit status when the log fails to verify (the exit table's "tampered").
pub const EXIT_TAMPERED: u8 = Exit::Tampered.code();
/// Exit status when the log cannot be read (the exit table's "error").
pub const EXIT_AUDIT_ERROR: u8 = Exit::Error.code();

/// `--config FILE`: the party's config file, as every subcommand of
/// `fedq-node` and `fedq-coordinator` takes it.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// The config file (node.toml or coordinator.toml).
    #[arg(long)]
    pub config: PathBuf,
}

/// The subcommands `fedq-node` and `fedq-coordinator` share.
#[derive(Debug, clap::Subcommand)]
pub enum PartyCommand {
    /// Serve over mutual TLS until SIGTERM.
    Serve(ConfigArg),
    /// Check the config file and what it names (federation file, TLS files;
    /// a node's policy and catalog) and report every problem with its key
    /// path; starts nothing.
    CheckConfig(ConfigArg),
    /// Check or export the tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

/// The `audit` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain, the signed checkpoint and the signature of
    /// every entry after it, against the audit key federation.toml pins,
    /// changing nothing (the store is opened read-only). Exit status: 0 if
    /// the log verifies, 5 if it was tampered with, 1 if it cannot be checked.
    Verify {
        /// The config file.
        #[arg(long)]
        config: PathBuf,
        /// Also check the log against the checkpoints the coordinator
        /// witnessed (`fedq-coordinator witness export`; a node's log only):
        /// a log rolled back below a witnessed entry, or different at one,
        /// fails with 5.
        #[arg(long)]
        witness: Option<PathBuf>,
    },
    /// Write the entries of a range of UTC days as JSON lines, for an
    /// oversight body. Exits 5 (after exporting) if the log fails to verify.
    Export {
        /// The config file.
        #[arg(long)]
        config: PathBuf,
        /// First day, YYYY-MM-DD (inclusive).
        #[arg(long)]
        since: chrono::NaiveDate,
        /// Last day, YYYY-MM-DD (inclusive).
        #[arg(long)]
        until: chrono::NaiveDate,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

impl AuditCommand {
    /// The config file named on the command line.
    pub fn config(&self) -> &Path {
        match self {
            Self::Verify { config, .. } | Self::Export { config, .. } => config,
        }
    }
}

/// What a party's log is checked against, from its `federation.toml`.
#[derive(Debug, Clone)]
pub struct Pins {
    /// The party, as messages name it ("node fr", "the coordinator").
    pub party: String,
    /// The node's id, for a node's log (witness files name it).
    pub node: Option<String>,
    /// The audit key the federation file pins for this party, if any.
    pub own: Option<AuditPublicKey>,
    /// The coordinator's pinned audit key (it countersigns witness files).
    pub coordinator: Option<AuditPublicKey>,
}

/// Runs `command` on an opened log (or the error opening it), checking it
/// against `pins`, and prints the outcome; returns the process exit status.
pub fn run(
    log: Result<AuditLog, super::AuditError>,
    command: &AuditCommand,
    pins: &Pins,
) -> ExitCode {
    let result = log.map_err(anyhow::Error::from).and_then(|log| {
        let exported = match command {
            AuditCommand::Verify { .. } => None,
            AuditCommand::Export {
                since, until, out, ..
            } => Some(export(&log, *since, *until, out.as_deref())?),
        };
        let report = match &pins.own {
            Some(pinned) => log.verify_pinned(pinned)?,
            None => {
                eprintln!(
                    "note: federation.toml pins no audit key for {}: checked against its own key file",
                    pins.party
                );
                log.verify()?
            }
        };
        Ok((log, report, exported))
    });
    let (log, report, exported) = match result {
        Ok(done) => done,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(EXIT_AUDIT_ERROR);
        }
    };
    if let Some(count) = exported {
        eprintln!("exported {count} audit entries");
    }
    let mut tampered = false;
    if let Some((seq, problem)) = &report.first_bad {
        eprintln!("error: audit log verification failed at entry {seq}: {problem}");
        tampered = true;
    }
    let witnessed = match command {
        AuditCommand::Verify {
            witness: Some(file),
            ..
        } => match super::witness_cli::check(&log, file, pins) {
            Ok(outcome) => Some(outcome),
            Err(e) => {
                eprintln!("error: cannot check the witness file: {e:#}");
                return ExitCode::from(if tampered {
                    EXIT_TAMPERED
                } else {
                    EXIT_AUDIT_ERROR
                });
            }
        },
        _ => None,
    };
    if let Some(problem) = witnessed.as_ref().and_then(|w| w.problem.as_ref()) {
        eprintln!("error: the audit log does not hold what the coordinator witnessed: {problem}");
        tampered = true;
    }
    if tampered {
        return ExitCode::from(EXIT_TAMPERED);
    }
    if exported.is_none() {
        let unsigned = match report.unsigned_entries() {
            0 => String::new(),
            n => {
                format!("; {n} newest signed one by one, not yet covered by the signed checkpoint")
            }
        };
        println!(
            "audit log ok: {} entries, head seq {}{unsigned}",
            report.entries, report.head_seq
        );
    }
    if let Some(witnessed) = witnessed {
        println!("{witnessed}");
    }
    ExitCode::SUCCESS
}

fn export(
    log: &AuditLog,
    since: chrono::NaiveDate,
    until: chrono::NaiveDate,
    out: Option<&Path>,
) -> anyhow::Result<usize> {
    let mut writer: Box<dyn Write> = match out {
        Some(path) => Box::new(std::io::BufWriter::new(
            fedq_transport::files::create_private(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let count = log.export(since, until, &mut writer)?;
    writer.flush()?;
    Ok(count)
}
