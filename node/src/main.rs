//! `fedq-node`: serve a node, import its data, generate demo data.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fedq_audit::cli::{
    self as audit_cli, AuditCommand, ConfigArg, PartyCommand, EXIT_AUDIT_ERROR, EXIT_TAMPERED,
};
use fedq_node::{config::NodeConfig, import, store::Store, NodeService};
use fedq_proto::exit::Exit;
use fedq_synth as generate;

#[derive(Parser)]
#[command(
    name = "fedq-node",
    version,
    about = "A fedq node: keeps a jurisdiction's records at home",
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
    /// Load identifiers (CSV kind,value,record_id[,expires_at]) into the node's store.
    Import {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// CSV file of identifiers (kind,value,record_id[,expires_at]); expires_at is YYYY-MM-DD or RFC 3339.
        #[arg(long, required_unless_present = "table")]
        identifiers: Option<PathBuf>,
        /// A statistics table from the catalog: NAME=FILE.csv (repeatable).
        #[arg(long)]
        table: Vec<String>,
    },
    /// Replace the node's OPRF key and re-derive every stored tag. Lookups keep
    /// working throughout; tags of the old key are erased at the end.
    /// Interrupted, it resumes with the same new key when run again.
    RotateOprfKey(ConfigArg),
    /// Print the node's OPRF public key (64 hex digits; during a rotation
    /// also the new one) for `fedq federation pin-oprf-key`, which pins it in
    /// federation.toml so that requesters refuse any other.
    OprfKey(ConfigArg),
    /// Create or upgrade the store's tables (SQLite file or PostgreSQL
    /// database) and print its schema version; refused, changing nothing,
    /// when the store was written by a newer fedq.
    Migrate(ConfigArg),
    /// Delete identifiers past their expiry (their expires_at or the
    /// [retention] period) and print how many per kind.
    Purge {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// Only count what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write deterministic synthetic data for a jurisdiction.
    Generate {
        /// Jurisdiction id (e.g. fr).
        #[arg(long)]
        jurisdiction: String,
        /// Number of people.
        #[arg(long, default_value_t = 100_000)]
        people: usize,
        /// Seed; the same seed gives the same files.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a month's transparency report: request counts by agency,
    /// purpose, kind and decision, with differentially private noise. Each
    /// run spends its epsilon and is written to the audit log before printing.
    Report {
        /// The node's config file.
        #[arg(long)]
        config: PathBuf,
        /// The month, YYYY-MM (UTC).
        #[arg(long)]
        month: String,
        /// Epsilon of the whole report (split equally between its tables).
        #[arg(long, default_value_t = fedq_node::report::DEFAULT_EPSILON)]
        epsilon: f64,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// A config that does not load is a usage error (exit 2), reported once.
fn load_config(path: &std::path::Path) -> Result<NodeConfig, ExitCode> {
    NodeConfig::load(path).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Usage.process()
    })
}

/// `check-config`: everything `load` checks, then the TLS files.
fn check_config(path: &std::path::Path) -> ExitCode {
    let config = match load_config(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    fedq_proto::toml_file::report_check(
        path,
        config.tls.problems(&config.node_id),
        &format!(
            "node {} ({}), listening on {}, {} statistics table(s)",
            config.node_id,
            config.jurisdiction,
            config.listen,
            config.catalog.len()
        ),
    )
    .process()
}

fn main() -> ExitCode {
    fedq_transport::logging::init_tracing();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Party(PartyCommand::Serve(ConfigArg { config })) => match load_config(&config) {
            Ok(config) => serve(config),
            Err(code) => return code,
        },
        Command::Party(PartyCommand::CheckConfig(ConfigArg { config })) => return check_config(&config),
        Command::Import { config, identifiers, table } => match load_config(&config) {
            Ok(config) => identifiers
                .map_or(Ok(()), |file| run_import(&config, &file))
                .and_then(|()| table.iter().try_for_each(|spec| run_table_import(&config, spec))),
            Err(code) => return code,
        },
        Command::RotateOprfKey(ConfigArg { config }) => match load_config(&config) {
            Ok(config) => run_rotate(&config),
            Err(code) => return code,
        },
        Command::OprfKey(ConfigArg { config }) => match load_config(&config) {
            Ok(config) => print_oprf_keys(&config),
            Err(code) => return code,
        },
        Command::Migrate(ConfigArg { config }) => match load_config(&config) {
            Ok(config) => fedq_node::migrate::migrate(&config).map(|done| match done.from {
                Some(from) if from == done.to => {
                    println!("store {} is at schema version {} (nothing to do)", done.location, done.to)
                }
                Some(from) => println!(
                    "store {} migrated from schema version {from} to {}",
                    done.location, done.to
                ),
                None => println!("store {} created at schema version {}", done.location, done.to),
            }),
            Err(code) => return code,
        },
        Command::Purge { config, dry_run } => match load_config(&config) {
            Ok(config) => run_purge(&config, dry_run),
            Err(code) => return code,
        },
        Command::Generate { jurisdiction, people, seed, out } => {
            generate::generate(&generate::GenerateOptions { jurisdiction, people, seed, out: out.clone() }).map(
                |summary| {
                    println!(
                        "wrote {} identifiers and {} incidents to {} ({} people shared with other jurisdictions)",
                        summary.identifiers,
                        summary.incidents,
                        out.display(),
                        summary.shared_people
                    );
                },
            )
        }
        Command::Party(PartyCommand::Audit { command }) => return run_audit(command),
        Command::Report { config, month, epsilon, json } => {
            return run_report(&config, &month, epsilon, json)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_audit(command: AuditCommand) -> ExitCode {
    match load_config(command.config()) {
        Ok(config) => {
            let federation = &config.federation_file;
            let pins = audit_cli::Pins {
                party: format!("node {}", config.node_id),
                node: Some(config.node_id.clone()),
                own: federation.node_audit_key(&config.node_id),
                coordinator: federation.coordinator_audit_key(),
            };
            audit_cli::run(config.open_audit_read_only(), &command, &pins)
        }
        Err(code) => code,
    }
}

/// `report`: 2 (usage) for a bad month or epsilon, 5 if the audit log fails
/// to verify, 1 if the report cannot be made.
fn run_report(config: &std::path::Path, month: &str, epsilon: f64, json: bool) -> ExitCode {
    use fedq_node::report;
    let options = match report::ReportOptions::new(month, epsilon) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Usage.process();
        }
    };
    let config = match load_config(config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match report::run(&config, &options, chrono::Utc::now()) {
        Ok(report) if json => println!("{}", report.to_json()),
        Ok(report) => print!("{}", report.to_text()),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(match e {
                report::ReportError::Tampered { .. } => EXIT_TAMPERED,
                e if e.is_usage() => Exit::Usage.code(),
                _ => EXIT_AUDIT_ERROR,
            });
        }
    }
    ExitCode::SUCCESS
}

fn run_purge(config: &NodeConfig, dry_run: bool) -> anyhow::Result<()> {
    let mut store = Store::open_for(config)?;
    let report = store.purge_expired(chrono::Utc::now(), dry_run)?;
    print!("{report}");
    Ok(())
}

fn serve(config: NodeConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let service = Arc::new(NodeService::new(config.clone())?);
        fedq_node::server::serve(
            listener,
            service,
            &config,
            fedq_transport::shutdown::signal(),
        )
        .await
    })
}

fn run_table_import(config: &NodeConfig, spec: &str) -> anyhow::Result<()> {
    let (name, file) = spec
        .split_once('=')
        .context("--table takes NAME=FILE.csv")?;
    let catalog = config
        .catalog
        .iter()
        .find(|t| t.name == name)
        .with_context(|| {
            format!("table {name:?} is not in the node's catalog ([[stats.tables]] in the config)")
        })?;
    let input = std::fs::File::open(file).with_context(|| format!("cannot open {file}"))?;
    let started = std::time::Instant::now();
    let report = fedq_node::stats::import_table(
        catalog,
        std::io::BufReader::new(input),
        &config.stats_dir,
        |_| {},
    )?;
    print_rejected(
        report
            .rejected
            .iter()
            .map(|(line, reason)| (*line, reason.as_str())),
    );
    println!(
        "table {name}: read {} rows: {} imported, {} invalid ({})",
        report.rows,
        report.imported,
        report.rejected.len(),
        pace(report.rows, started)
    );
    Ok(())
}

/// "2.0 s, 50000 rows/s": how long an import took and its rate.
fn pace(rows: usize, started: std::time::Instant) -> String {
    let seconds = started.elapsed().as_secs_f64();
    format!(
        "{seconds:.1} s, {:.0} rows/s",
        rows as f64 / seconds.max(1e-9)
    )
}

/// Prints the first invalid rows of an import (line and reason, never the
/// values) and how many more there were.
fn print_rejected<'a>(rejected: impl ExactSizeIterator<Item = (u64, &'a str)>) {
    const SHOWN: usize = 50;
    let total = rejected.len();
    for (line, reason) in rejected.take(SHOWN) {
        eprintln!("line {line}: {reason}");
    }
    if total > SHOWN {
        eprintln!("... and {} more invalid rows", total - SHOWN);
    }
}

fn print_oprf_keys(config: &NodeConfig) -> anyhow::Result<()> {
    let keys = Store::open(&config.store)?.oprf_keys()?;
    println!("{}", keys.active.public_key().to_text());
    if let Some(pending) = &keys.pending {
        println!(
            "{} (rotation under way: pin both)",
            pending.public_key().to_text()
        );
    }
    Ok(())
}

fn run_rotate(config: &NodeConfig) -> anyhow::Result<()> {
    let mut store = Store::open(&config.store)?;
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} re-deriving tags [{bar:40}] {pos}/{len} ({eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let report = fedq_node::rotate::rotate(&mut store, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    println!(
        "oprf key rotated: {} -> {}; {} identifiers re-derived, {} old tags erased ({:.1} s)",
        report.old_key,
        report.new_key,
        report.rederived,
        report.erased,
        started.elapsed().as_secs_f64()
    );
    println!(
        "where federation.toml pins this node's OPRF keys, pin the new one \
         (`fedq-node oprf-key`, `fedq federation pin-oprf-key`) before requesters use it"
    );
    Ok(())
}

fn run_import(config: &NodeConfig, file: &std::path::Path) -> anyhow::Result<()> {
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let size = input.metadata().map(|m| m.len()).unwrap_or(0);
    let mut store = Store::open(&config.store)?;
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(size),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} importing [{bar:40}] {bytes}/{total_bytes} ({eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = std::time::Instant::now();
    let report = import::import_identifiers(&mut store, std::io::BufReader::new(input), |pos| {
        bar.set_position(pos)
    })?;
    bar.finish_and_clear();
    print_rejected(report.rejected.iter().map(|r| (r.line, r.reason.as_str())));
    println!(
        "read {} rows: {} imported, {} already present, {} invalid ({})",
        report.rows,
        report.inserted,
        report.duplicates,
        report.rejected.len(),
        pace(report.rows, started)
    );
    Ok(())
}
