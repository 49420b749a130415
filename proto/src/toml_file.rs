//! Reading TOML files of every party (`federation.toml`, `node.toml`,
//! `coordinator.toml`, `client.toml`): one error type naming the file, and
//! paths resolved against the file that names them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Config format version this build reads.
pub const CONFIG_VERSION: u32 = 1;
/// Errors reading or validating a configuration file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read. The cause is part of the message and not
    /// an error source, so that `{:#}` chains do not print it twice.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// File that failed.
        path: PathBuf,
        /// Cause.
        cause: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// File that failed.
        path: PathBuf,
        /// Parser message, with line and key.
        message: String,
    },
    /// One or more fields are invalid; each entry names the key path.
    #[error("invalid configuration {path}:\n  {}", .problems.join("\n  "))]
    Invalid {
        /// File that failed.
        path: PathBuf,
        /// One line per bad field.
        problems: Vec<String>,
    },
}

/// Checks a config file's `version`.
pub fn check_version(found: u32, problems: &mut Vec<String>) {
    if found != CONFIG_VERSION {
        problems.push(format!("version: expected {CONFIG_VERSION}, found {found}"));
    }
}

/// Parses `listen`, or records why not (`example` shows the form).
pub fn parse_listen(
    raw: &str,
    example: &str,
    problems: &mut Vec<String>,
) -> Option<std::net::SocketAddr> {
    raw.parse()
        .map_err(|_| problems.push(format!("listen: not a socket address like {example}")))
        .ok()
}

/// Reads a TOML file into a builder type.
pub fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
        path: path.to_owned(),
        cause,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// When and how large a config file was last written: a changed stamp is
/// what makes a running party read the file again.
pub fn stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// Resolves `value` against the directory of `file`.
pub fn resolve(file: &Path, value: &Path) -> PathBuf {
    if value.is_absolute() {
        value.to_owned()
    } else {
        file.parent().unwrap_or_else(|| Path::new(".")).join(value)
    }
}

/// The end of a `check-config` command: every problem `load` did not see
/// (files it names), one per line under the file's name, exit 2; or the
/// file's `summary` and exit 0.
pub fn report_check(path: &Path, problems: Vec<String>, summary: &str) -> crate::exit::Exit {
    if problems.is_empty() {
        println!("{}: ok: {summary}", path.display());
        return crate::exit::Exit::Ok;
    }
    eprintln!(
        "error: {}",
        ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        }
    );
    crate::exit::Exit::Usage
}
