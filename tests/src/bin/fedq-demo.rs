//! `fedq-demo` (also run as `fedq demo`): a whole local federation in one
//! process, a few lookups and statistics, explaining who learns what.

use std::process::ExitCode;

use clap::Parser;

/// Run a whole local federation and a few lookups, explaining who learns what.
#[derive(Parser)]
#[command(name = "fedq demo", version, after_help = fedq_proto::exit::TABLE)]
struct Args {
    #[command(flatten)]
    demo: fedq_client::DemoArgs,
}

fn main() -> ExitCode {
    fedq_transport::logging::init_tracing_quiet();
    let args = Args::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(fedq_tests::demo::run(args.demo)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
