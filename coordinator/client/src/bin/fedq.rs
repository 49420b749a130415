//! `fedq`: the command line of investigators, researchers and operators.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use fedq_client::{init, stats_cli};
use fedq_client::{ClientConfig, DemoArgs, ItemAnswer, LookupInput, LookupReport, Requester};
use fedq_proto::exit::Exit;
use fedq_proto::federation::Parameters;
use fedq_proto::outcome::{Disclosure, NodeOutcome};

#[derive(Parser)]
#[command(
    name = "fedq",
    version,
    about = "Privacy-preserving federated lookups and statistics",
    after_help = fedq_proto::exit::TABLE
)]
struct Cli {
    /// The requester's client.toml.
    #[arg(long, global = true, env = "FEDQ_CONFIG")]
    config: Option<PathBuf>,
    /// Print the answers only: no per-node lines, query ids or notes (errors
    /// still go to standard error; the exit code tells the rest).
    #[arg(long, short, global = true)]
    quiet: bool,
    /// No colours (also when NO_COLOR is set, or the output is not a terminal).
    #[arg(long, global = true)]
    no_color: bool,
    #[command(subcommand)]
    command: CliCommand,
}

/// How human output is printed.
#[derive(Debug, Clone, Copy)]
struct Look {
    quiet: bool,
    color: bool,
}

impl Look {
    fn of(cli: &Cli) -> Self {
        use std::io::IsTerminal;
        Self {
            quiet: cli.quiet,
            color: !cli.no_color
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal(),
        }
    }

    fn paint(self, style: anstyle::Style, text: &str) -> String {
        if self.color {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    }

    /// A spinner on standard error while a request is out, when a person
    /// is watching (a terminal, not --quiet).
    fn spinner(self, message: String) -> indicatif::ProgressBar {
        use std::io::IsTerminal;
        if self.quiet || !std::io::stderr().is_terminal() {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new_spinner().with_message(message);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    }
}

#[derive(Subcommand)]
enum CliCommand {
    /// Create and manage federations.
    #[command(subcommand)]
    Federation(FederationCommand),
    /// Manage the requester's TFHE keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Does an identifier appear in any partner's records? (hit / no-hit)
    Lookup(LookupArgs),
    /// What statistics can be asked, and at which nodes.
    Catalog {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A differentially private statistic across the federation.
    Stats(StatsArgs),
    /// Privacy budget spent and left at each node, this epoch.
    Budget {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a whole local federation and a few lookups, explaining who learns what.
    Demo(DemoArgs),
    /// Check client.toml and what it names (federation file, TLS files,
    /// signing key) and report every problem with its key path; sends nothing.
    CheckConfig,
    /// Print a shell completion script (e.g. `fedq completions bash >
    /// /etc/bash_completion.d/fedq`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Which parties answer now: the coordinator and, through it, each node.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum FederationCommand {
    /// Write a ready local federation: CA, certificates, configs.
    Init {
        /// Output directory.
        #[arg(long)]
        dir: PathBuf,
        /// Node ids, comma-separated (e.g. fr,de,nl).
        #[arg(long, value_delimiter = ',', required = true)]
        nodes: Vec<String>,
        /// First port (coordinator; nodes follow). Default: free ports.
        #[arg(long)]
        base_port: Option<u16>,
        /// The investigator to create (looks identifiers up).
        #[arg(long, default_value = "alice")]
        requester: String,
        /// The researcher to create (asks statistics): by default a node lets
        /// investigators look up and researchers ask statistics, nothing else.
        #[arg(long, default_value = "rosa")]
        researcher: String,
        /// The requester's agency.
        #[arg(long, default_value = "demo-agency")]
        agency: String,
        /// Bucket bits (at most 12 for 1,000,000 records per node).
        #[arg(long, default_value_t = fedq_proto::federation::DEFAULT_BUCKET_BITS)]
        bucket_bits: u8,
        /// Tag bits compared under encryption.
        #[arg(long, default_value_t = fedq_proto::federation::DEFAULT_TAG_BITS)]
        tag_bits: u8,
        /// Minimum padded bucket size.
        #[arg(long, default_value_t = fedq_proto::federation::DEFAULT_PADDED_CANDIDATES)]
        padded_candidates: usize,
        /// Overwrite an existing federation.
        #[arg(long)]
        force: bool,
    },
    /// Add a requester: certificate, signing key, client.toml, and its entry
    /// (with public key) in federation.toml. Nodes admit it once their policy does.
    AddRequester {
        /// The federation directory (as given to `federation init`).
        #[arg(long)]
        dir: PathBuf,
        /// Requester id (lowercase letters, digits, '-').
        #[arg(long)]
        name: String,
        /// The requester's agency.
        #[arg(long)]
        agency: String,
        /// investigator, researcher or auditor.
        #[arg(long)]
        role: String,
    },
    /// List the federation's parties: coordinator, nodes, requesters.
    List {
        /// The federation's directory.
        #[arg(long)]
        dir: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a requester from federation.toml: every node and the
    /// coordinator refuse it within seconds, without a restart.
    RemoveRequester {
        /// The federation's directory.
        #[arg(long)]
        dir: PathBuf,
        /// The requester's id.
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make the TFHE keys (secret key stays in a 0600 file) and register the public key.
    Init {
        /// Make new keys even if some exist.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Args)]
struct LookupArgs {
    /// Identifier kind: passport, national_id, phone, email, iban, crypto_wallet, name_dob.
    #[arg(long, requires = "value", conflicts_with = "batch")]
    kind: Option<String>,
    /// The identifier, in any usual spelling.
    #[arg(long, requires = "kind")]
    value: Option<String>,
    /// CSV file of `kind,value` rows (`-`: standard input).
    #[arg(long)]
    batch: Option<PathBuf>,
    /// Purpose of the request.
    #[arg(long, value_parser = stated)]
    purpose: String,
    /// Case reference.
    #[arg(long = "case", value_parser = stated)]
    case_reference: String,
    /// Legal basis (default: legal_basis in client.toml).
    #[arg(long)]
    legal_basis: Option<String>,
    /// Also ask which jurisdictions hit; each node's policy decides whether it
    /// reveals its own answer (others are reported as withheld).
    #[arg(long, requires = "authorization")]
    disclose: bool,
    /// The authorization reference a disclosure is asked under.
    #[arg(long, requires = "disclose")]
    authorization: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Exit 0 even when some node did not answer (results then say
    /// `unknown` where nothing was established); without it, exit 3.
    #[arg(long)]
    allow_partial: bool,
}

#[derive(Args)]
struct StatsArgs {
    /// Table name (see `fedq catalog`).
    #[arg(long)]
    table: String,
    /// count | sum:<column> | mean:<column> | histogram:<column>
    #[arg(long)]
    measure: String,
    /// At most two group-by columns, comma-separated (e.g. category,month).
    #[arg(long)]
    group_by: Option<String>,
    /// Filters such as sector=finance or date>=2025-01-01 (repeatable).
    #[arg(long = "where")]
    filters: Vec<String>,
    /// Pure DP privacy parameter (a positive number).
    #[arg(long, conflicts_with = "rho", required_unless_present = "rho", allow_negative_numbers = true, value_parser = positive)]
    epsilon: Option<f64>,
    /// zCDP privacy parameter (a positive number).
    #[arg(long, allow_negative_numbers = true, value_parser = positive)]
    rho: Option<f64>,
    /// Purpose of the request.
    #[arg(long, value_parser = stated)]
    purpose: String,
    /// Case reference.
    #[arg(long = "case", default_value = "")]
    case_reference: String,
    /// Legal basis (default: legal_basis in client.toml).
    #[arg(long)]
    legal_basis: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Exit 0 even when some node did not contribute; without it, exit 3.
    #[arg(long)]
    allow_partial: bool,
    /// Print, per node, the noise and 95% interval the query would have and
    /// what it would cost; read nothing and spend nothing.
    #[arg(long)]
    dry_run: bool,
}

/// A privacy parameter: finite and greater than zero (each node also has
/// its own minimum, which it states when it refuses).
fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        Ok(_) => Err("must be a finite number greater than zero".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// A purpose or case reference: something a person wrote, not blank (it is
/// what the audit log and the node's policy read).
fn stated(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(text.to_owned())
    }
}

/// `fedq demo` runs `fedq-demo`, which starts nodes and a coordinator in one
/// process and therefore links the servers; the requester's `fedq` links
/// none, so the demo is a separate binary beside it (as `git` runs `git-x`).
fn run_demo(args: &DemoArgs) -> anyhow::Result<ExitCode> {
    let name = format!("fedq-demo{}", std::env::consts::EXE_SUFFIX);
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)))
        .filter(|path| path.is_file());
    let program = beside.unwrap_or_else(|| PathBuf::from(&name));
    let status = std::process::Command::new(&program)
        .args(args.argv())
        .status()
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot run {} ({e}): build it with `cargo build --bin fedq-demo`, \
             or run `cargo run --bin fedq-demo`",
                program.display()
            )
        })?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// A mistake in the command line or the config file (exit 2, as clap's own).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

fn main() -> ExitCode {
    fedq_transport::logging::init_tracing_quiet();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                Exit::Usage.process()
            } else {
                Exit::Error.process()
            }
        }
    }
}

fn client_config(path: Option<PathBuf>) -> anyhow::Result<ClientConfig> {
    let path =
        path.ok_or_else(|| usage("--config FILE (the requester's client.toml) is required"))?;
    ClientConfig::load(&path).map_err(|e| usage(format!("{e:#}")))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Runtime::new()?;
    let look = Look::of(&cli);
    match cli.command {
        CliCommand::Federation(FederationCommand::Init {
            dir,
            nodes,
            base_port,
            requester,
            researcher,
            agency,
            bucket_bits,
            tag_bits,
            padded_candidates,
            force,
        }) => {
            let output = init::init(&init::InitOptions {
                dir: dir.clone(),
                nodes,
                requester,
                researcher,
                agency,
                base_port,
                force,
                parameters: Parameters {
                    bucket_bits,
                    tag_bits,
                    padded_candidates,
                },
            })?;
            println!("federation written to {}", dir.display());
            for (node, path) in &output.nodes {
                println!("  node {node}: {}", path.display());
            }
            println!("  coordinator: {}", output.coordinator.display());
            println!("  investigator: {}", output.client.display());
            println!("  researcher: {}", output.researcher_client.display());
        }
        CliCommand::Federation(FederationCommand::AddRequester {
            dir,
            name,
            agency,
            role,
        }) => {
            let client = init::add_requester(
                &dir,
                &fedq_proto::federation::RequesterEntry {
                    id: name.clone(),
                    agency,
                    role: role.parse().map_err(|e| usage(format!("--role: {e}")))?,
                    public_key: String::new(),
                },
            )?;
            println!(
                "requester {name} added: {} (nodes admit it once their [policy] lists its agency and role)",
                client.display()
            );
        }
        CliCommand::Federation(FederationCommand::List { dir, json }) => {
            let path = dir.join("federation.toml");
            let file = fedq_proto::federation::FederationFile::load(&path)
                .map_err(|e| usage(e.to_string()))?;
            print_federation(&file, json)?;
        }
        CliCommand::Federation(FederationCommand::RemoveRequester { dir, name }) => {
            init::remove_requester(&dir, &name)?;
            println!(
                "requester {name} removed: nodes and the coordinator refuse it within seconds"
            );
        }
        CliCommand::Keys(KeysCommand::Init { force }) => {
            let config = client_config(cli.config)?;
            let keys_dir = config.keys_dir.clone();
            let key_id = runtime.block_on(async {
                let mut requester = Requester::connect(config).await?;
                requester.keys_init(force).await
            })?;
            println!(
                "key {key_id} registered; secret key kept in {} (mode 0600)",
                keys_dir.display()
            );
        }
        CliCommand::Lookup(args) => {
            let config = client_config(cli.config)?;
            let inputs = match (&args.kind, &args.value, &args.batch) {
                (Some(kind), Some(value), None) => {
                    let kind = fedq_client::parse_kind(kind).map_err(usage)?;
                    vec![LookupInput {
                        kind,
                        value: value.clone(),
                    }]
                }
                (None, None, Some(batch)) => fedq_client::read_batch(batch)?,
                _ => return Err(usage("give either --kind and --value, or --batch FILE")),
            };
            let spinner = look.spinner(format!(
                "looking up {} item(s) at {} node(s)",
                inputs.len(),
                config.federation.nodes.len()
            ));
            let report = runtime.block_on(async {
                let mut requester = Requester::connect(config).await?;
                requester
                    .lookup_with(
                        &inputs,
                        &fedq_client::LookupOptions {
                            purpose: args.purpose.clone(),
                            case_reference: args.case_reference.clone(),
                            legal_basis: args.legal_basis.clone(),
                            disclose: args.authorization.clone().filter(|_| args.disclose),
                            progress: {
                                let spinner = spinner.clone();
                                fedq_client::Progress::new(move |step| {
                                    spinner.set_message(step.to_owned())
                                })
                            },
                        },
                    )
                    .await
            });
            spinner.finish_and_clear();
            let report = report?;
            print_report(&report, args.json, look)?;
            return Ok(lookup_exit(&report, args.allow_partial, look).process());
        }
        CliCommand::Catalog { json } => {
            let config = client_config(cli.config)?;
            let catalog =
                runtime.block_on(async { Requester::connect(config).await?.catalog().await })?;
            stats_cli::print_catalog(&catalog, json)?;
        }
        CliCommand::Budget { json } => {
            let config = client_config(cli.config)?;
            let budget =
                runtime.block_on(async { Requester::connect(config).await?.budget().await })?;
            stats_cli::print_budget(&budget, json)?;
        }
        CliCommand::Stats(args) => {
            let config = client_config(cli.config)?;
            let query = fedq_proto::v1::StatsQuery {
                table: args.table,
                measure: args.measure,
                group_by: args
                    .group_by
                    .map(|g| g.split(',').map(|s| s.trim().to_owned()).collect())
                    .unwrap_or_default(),
                filters: args.filters,
                budget: match (args.epsilon, args.rho) {
                    (Some(e), _) => Some(fedq_proto::v1::stats_query::Budget::Epsilon(e)),
                    (None, Some(r)) => Some(fedq_proto::v1::stats_query::Budget::Rho(r)),
                    (None, None) => None,
                },
                dry_run: args.dry_run,
            };
            let context = fedq_proto::v1::RequestContext {
                purpose: args.purpose,
                case_reference: args.case_reference,
                legal_basis: args.legal_basis.unwrap_or_default(),
                ..Default::default()
            };
            let response = runtime.block_on(async {
                let mut requester = Requester::connect(config).await?;
                // Validated against the nodes' published limits first: a
                // budget no node accepts is the caller's mistake (exit 2).
                if let Some(budget) = &query.budget {
                    let catalog = requester.catalog().await?;
                    stats_cli::check_budget(&catalog, budget).map_err(usage)?;
                }
                requester.stats(context, query).await
            })?;
            stats_cli::print_stats(&response, args.json, look.quiet)?;
            return Ok(stats_exit(&response, args.allow_partial, look).process());
        }
        CliCommand::Demo(args) => return run_demo(&args),
        CliCommand::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "fedq", &mut std::io::stdout());
        }
        CliCommand::CheckConfig => {
            let path = cli
                .config
                .ok_or_else(|| usage("--config FILE (the requester's client.toml) is required"))?;
            let config = client_config(Some(path.clone()))?;
            let keys = if config.keys_dir.join("lookup.secret").is_file() {
                "TFHE keys made"
            } else {
                "no TFHE keys yet (run `fedq keys init`)"
            };
            let summary = format!(
                "requester {} of a federation of {} node(s), coordinator {}; {keys}",
                config.requester,
                config.federation.nodes.len(),
                config.federation.coordinator.address
            );
            return Ok(
                fedq_proto::toml_file::report_check(&path, config.problems(), &summary).process(),
            );
        }
        CliCommand::Status { json } => {
            let config = client_config(cli.config)?;
            let coordinator = config.federation.coordinator.address.clone();
            let nodes: Vec<String> = config
                .federation
                .nodes
                .iter()
                .map(|n| n.id.clone())
                .collect();
            let info = runtime
                .block_on(async { Requester::connect(config).await?.federation_info().await })?;
            let outcomes = stats_cli::print_status(&coordinator, &nodes, &info, json)?;
            let partial = outcomes.iter().any(|o| *o != NodeOutcome::Ok);
            return Ok(Exit::of_answers(&outcomes, partial, false).process());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The parties of a federation file, in its order.
fn print_federation(
    file: &fedq_proto::federation::FederationFile,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let out = serde_json::json!({
            "coordinator": {"address": file.coordinator.address},
            "nodes": file.nodes.iter().map(|n| serde_json::json!({
                "id": n.id, "jurisdiction": n.jurisdiction, "address": n.address,
            })).collect::<Vec<_>>(),
            "requesters": file.requesters.iter().map(|r| serde_json::json!({
                "id": r.id, "agency": r.agency, "role": r.role.as_str(),
            })).collect::<Vec<_>>(),
        });
        println!("{out}");
        return Ok(());
    }
    println!("coordinator  {}", file.coordinator.address);
    for node in &file.nodes {
        println!(
            "node         {:<16} jurisdiction {:<6} {}",
            node.id, node.jurisdiction, node.address
        );
    }
    for requester in &file.requesters {
        println!(
            "requester    {:<16} {:<13} {}",
            requester.id,
            requester.role.as_str(),
            requester.agency
        );
    }
    Ok(())
}

/// 0 when every item's answer is established, 3 when some is unknown (a node
/// did not answer), 4 when no node answered because every one refused.
fn lookup_exit(report: &LookupReport, allow_partial: bool, look: Look) -> Exit {
    let unknown = report
        .results
        .iter()
        .filter(|r| r.answer == ItemAnswer::Unknown)
        .count();
    let outcomes: Vec<NodeOutcome> = report.nodes.iter().map(|n| n.status).collect();
    let exit = Exit::of_answers(&outcomes, unknown > 0, allow_partial);
    match exit {
        Exit::Refused | Exit::Error => eprintln!(
            "error: no node answered: the results above say nothing about any jurisdiction"
        ),
        Exit::Partial if look.quiet => {}
        Exit::Partial => eprintln!(
            "partial answer: {unknown} item(s) unknown because a node did not answer \
             (exit 3; --allow-partial for 0)"
        ),
        Exit::Ok | Exit::Usage | Exit::Tampered => {}
    }
    exit
}

/// 0 when every node contributed, 3 when some did not (the estimates cover
/// only those that did), 4 when every node refused, 1 when none answered.
fn stats_exit(response: &fedq_proto::v1::StatsResponse, allow_partial: bool, look: Look) -> Exit {
    let outcomes: Vec<NodeOutcome> = response.nodes.iter().map(|n| n.outcome()).collect();
    let missing = outcomes.iter().filter(|o| **o != NodeOutcome::Ok).count();
    let exit = Exit::of_answers(&outcomes, missing > 0, allow_partial);
    match exit {
        Exit::Refused | Exit::Error => {
            eprintln!("error: no node contributed: there is no estimate")
        }
        Exit::Partial if look.quiet => {}
        Exit::Partial => eprintln!(
            "partial answer: {missing} node(s) did not contribute; the estimates cover the \
             others only (exit 3; --allow-partial for 0)"
        ),
        Exit::Ok | Exit::Usage | Exit::Tampered => {}
    }
    exit
}

fn print_report(report: &LookupReport, json: bool, look: Look) -> anyhow::Result<()> {
    use anstyle::{AnsiColor, Style};
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    let hit = Style::new().bold().fg_color(Some(AnsiColor::Red.into()));
    let unknown = Style::new().fg_color(Some(AnsiColor::Yellow.into()));
    for result in &report.results {
        let partial = if result.answered < result.of {
            format!(" ({} of {} nodes answered)", result.answered, result.of)
        } else {
            String::new()
        };
        let mut verdict = match result.answer {
            ItemAnswer::Hit if result.answered < result.of => look.paint(
                hit,
                &format!(
                    "HIT in at least {} jurisdiction(s){partial}",
                    result.jurisdictions
                ),
            ),
            ItemAnswer::Hit => look.paint(
                hit,
                &format!("HIT in {} jurisdiction(s)", result.jurisdictions),
            ),
            ItemAnswer::NoHit => "no hit".to_owned(),
            ItemAnswer::Unknown if result.answered == 0 => look.paint(unknown, "no answer"),
            ItemAnswer::Unknown => look.paint(unknown, &format!("unknown{partial}")),
        };
        if let Some(held_by) = result.held_by.as_ref().filter(|h| !h.is_empty()) {
            verdict.push_str(&format!(" (revealed: {})", held_by.join(", ")));
        }
        println!("{:<14} {:<40} {verdict}", result.kind, result.value);
    }
    if look.quiet {
        return Ok(());
    }
    for node in &report.nodes {
        if node.status == NodeOutcome::Ok && node.disclosure != Disclosure::NotAsked {
            println!(
                "node {}: ok, disclosure {}",
                node.node,
                node.disclosure.word()
            );
        } else if node.status == NodeOutcome::Ok {
            println!("node {}: ok", node.node);
        } else {
            println!(
                "node {}: {} ({}) - not counted above",
                node.node,
                node.status.word(),
                node.reason
            );
        }
    }
    if !report.query_ids.is_empty() {
        println!("query {}", report.query_ids.join(", "));
    }
    Ok(())
}
