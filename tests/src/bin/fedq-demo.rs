//! `fedq-demo` (also run as `fedq demo`): a whole local federation in one
//! process, a few lookups and statistics, explaining who learns what.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Run a whole local federation and a few lookups, explaining who learns what.
#[derive(Parser)]
#[command(name = "fedq demo", version)]
struct Args {
    /// People per jurisdiction.
    #[arg(long, default_value_t = 100_000)]
    people: usize,
    /// Keep the federation in this directory instead of a temporary one.
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    fedq_transport::logging::init_tracing_quiet();
    let args = Args::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(fedq_tests::demo::run(args.people, args.dir)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
