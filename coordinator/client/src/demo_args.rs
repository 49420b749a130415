//! The demo's command line, once: `fedq demo` parses it and hands it on to
//! the `fedq-demo` binary, which parses the same definition.

use std::ffi::OsString;
use std::path::PathBuf;

/// Fewest people per jurisdiction for which the generated data holds the
/// cross-border identifiers the demo shows (checked before anything is written).
pub const MIN_PEOPLE: usize = 2_000;

/// Run a whole local federation and a few lookups, explaining who learns what.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// People per jurisdiction (at least 2000).
    #[arg(long, default_value_t = 100_000, value_parser = people)]
    pub people: usize,
    /// Keep the federation in this directory instead of a temporary one
    /// (refused when it is not empty, unless --force).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Overwrite a non-empty --dir (its CA, configs and stores).
    #[arg(long, requires = "dir")]
    pub force: bool,
}

impl DemoArgs {
    /// The same arguments, for the `fedq-demo` process.
    pub fn argv(&self) -> Vec<OsString> {
        let mut argv = vec!["--people".into(), self.people.to_string().into()];
        if let Some(dir) = &self.dir {
            argv.push("--dir".into());
            argv.push(dir.into());
        }
        if self.force {
            argv.push("--force".into());
        }
        argv
    }
}

fn people(text: &str) -> Result<usize, String> {
    let people: usize = text.parse().map_err(|e| format!("{e}"))?;
    if people < MIN_PEOPLE {
        return Err(format!(
            "at least {MIN_PEOPLE}: fewer gives the demo nothing to show"
        ));
    }
    Ok(people)
}
