//! `fedq`: the command line of investigators, researchers and operators.

mod args;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use fedq_client::{init, stats_cli};
use fedq_client::{ClientConfig, DemoArgs, LookupInput, Requester};
use fedq_proto::exit::Exit;
use fedq_proto::federation::Parameters;
use fedq_proto::outcome::NodeOutcome;

use args::{Cli, CliCommand, DeconflictCommand, FederationCommand, KeysCommand, WatchCommand};
use output::{lookup_exit, print_federation, print_report, stats_exit, Look};

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

async fn watch(config: ClientConfig, command: WatchCommand) -> anyhow::Result<ExitCode> {
    match command {
        WatchCommand::Add(args) => {
            let inputs = match (&args.kind, &args.value, &args.batch) {
                (Some(kind), Some(value), None) => vec![LookupInput {
                    kind: fedq_client::parse_kind(kind).map_err(usage)?,
                    value: value.clone(),
                }],
                (None, None, Some(batch)) => fedq_client::read_batch(batch)?,
                _ => return Err(usage("give either --kind and --value, or --batch FILE")),
            };
            let options = fedq_client::WatchOptions {
                purpose: args.purpose,
                case_reference: args.case_reference,
                legal_basis: args.legal_basis,
                until: args.until,
            };
            let mut requester = Requester::connect(config).await?;
            let mut outcomes = Vec::new();
            for input in &inputs {
                let added = requester.watch_add(input, &options).await?;
                if added.watch_id.is_empty() {
                    println!("{} {}: no node took the watch", input.kind, input.value);
                } else {
                    println!("watch {} on {} {}", added.watch_id, input.kind, input.value);
                }
                outcomes.extend(added.nodes.iter().map(|n| n.status));
                output::print_watch_nodes(&added.nodes);
            }
            // Every node must hold every watch, or the exit code says which way not.
            let partial = outcomes.iter().any(|o| *o != NodeOutcome::Ok);
            return Ok(Exit::of_answers(&outcomes, partial, false).process());
        }
        WatchCommand::List { json } => {
            let watches = Requester::connect(config).await?.watch_list().await?;
            output::print_watches(&watches, json)?;
        }
        WatchCommand::Cancel { id } => {
            let nodes = Requester::connect(config).await?.watch_cancel(&id).await?;
            println!("watch {id} cancelled; its results and alerts are deleted");
            output::print_watch_nodes(&nodes);
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn deconflict(config: ClientConfig, command: DeconflictCommand) -> anyhow::Result<()> {
    match command {
        DeconflictCommand::Register(args) => {
            let kind = fedq_client::parse_kind(&args.kind).map_err(usage)?;
            let mut requester = Requester::connect(config).await?;
            let registration = requester
                .deconflict_register(
                    &LookupInput {
                        kind,
                        value: args.value,
                    },
                    &fedq_client::DeconflictOptions {
                        purpose: args.purpose,
                        case_reference: args.case_reference,
                        legal_basis: args.legal_basis,
                        contact: args.contact,
                        until: args.until,
                    },
                )
                .await?;
            output::print_registrations(std::slice::from_ref(&registration), args.json)?;
            if !args.json && registration.matches > 0 {
                println!(
                    "another agency works this target ({} registration(s)): see `fedq alerts`",
                    registration.matches
                );
            }
        }
        DeconflictCommand::List { json } => {
            let registrations = Requester::connect(config).await?.deconflict_list().await?;
            output::print_registrations(&registrations, json)?;
        }
        DeconflictCommand::Cancel { id } => {
            Requester::connect(config)
                .await?
                .deconflict_cancel(&id)
                .await?;
            println!("registration {id} cancelled; its alerts are deleted");
        }
    }
    Ok(())
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
            compression,
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
                    compression,
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
        CliCommand::Federation(FederationCommand::PinOprfKey {
            dir,
            node,
            key,
            replace,
        }) => {
            fedq_crypto::oprf::NodeOprfPublicKey::from_text(&key).map_err(|_| {
                usage(
                    "--key: not an OPRF public key (64 hex digits, as `fedq-node oprf-key` prints)"
                        .to_owned(),
                )
            })?;
            init::pin_oprf_key(&dir, &node, &key, replace)?;
            println!(
                "node {node}'s OPRF key pinned: requesters refuse fingerprints under any other"
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
        CliCommand::Watch(command) => {
            let config = client_config(cli.config)?;
            return runtime.block_on(watch(config, command));
        }
        CliCommand::Deconflict(command) => {
            let config = client_config(cli.config)?;
            runtime.block_on(deconflict(config, command))?;
        }
        CliCommand::Alerts {
            json,
            follow,
            after,
        } => {
            let config = client_config(cli.config)?;
            runtime.block_on(async {
                let mut requester = Requester::connect(config).await?;
                if follow {
                    // Printing fails only when stdout is gone: stop then.
                    requester
                        .follow_alerts(after, |alert| match output::print_alert(&alert, json) {
                            Ok(()) => std::ops::ControlFlow::Continue(()),
                            Err(_) => std::ops::ControlFlow::Break(()),
                        })
                        .await
                } else {
                    let alerts = requester.alerts(after).await?;
                    output::print_alerts(&alerts, json)
                }
            })?;
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
