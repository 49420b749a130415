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

    /// What a party would only meet when it starts or connects: each file
    /// readable PEM, the key private, and the certificate issued to `name`
    /// (the id the config file gives). One line per problem, `tls.` key paths.
    pub fn problems(&self, name: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut certificate = |key: &str, path: &Path| -> Option<Vec<u8>> {
            let problem = match std::fs::read(path) {
                Ok(pem) => match x509_parser::pem::parse_x509_pem(&pem) {
                    Ok((_, block)) if block.label == "CERTIFICATE" => return Some(block.contents),
                    _ => "not a PEM certificate".to_owned(),
                },
                Err(e) => format!("cannot read {}: {e}", path.display()),
            };
            problems.push(format!("tls.{key}: {problem}"));
            None
        };
        let _ = certificate("ca", &self.ca);
        let cert = certificate("cert", &self.cert);
        if let Some(der) = cert {
            match crate::tls::common_name(&der) {
                Some(cn) if cn == name => {}
                Some(cn) => problems.push(format!(
                    "tls.cert: issued to {cn:?}, but this config is for {name:?}"
                )),
                None => problems.push("tls.cert: not a certificate with a common name".to_owned()),
            }
        }
        if let Err(problem) = crate::files::check_private(&self.key) {
            problems.push(format!("tls.key: {problem}"));
        }
        problems
    }
}
