//! Where a party's mTLS material lives, as its config file names it.

use std::path::{Path, PathBuf};

use fedq_proto::toml_file::resolve;
use serde::Deserialize;

/// mTLS material: the federation CA, this party's certificate and key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    /// Federation CA certificate (PEM).
    pub ca: PathBuf,
    /// This party's certificate (PEM).
    pub cert: PathBuf,
    /// This party's private key (PEM).
    pub key: PathBuf,
}

impl TlsPaths {
    /// The same paths, resolved against the config file.
    pub fn resolved(&self, file: &Path) -> Self {
        Self {
            ca: resolve(file, &self.ca),
            cert: resolve(file, &self.cert),
            key: resolve(file, &self.key),
        }
    }
}
