//! Mutual TLS under the federation CA, for servers and clients alike.
//!
//! Every party's identity is the common name of its certificate: a node id,
//! `coordinator`, or a requester id. Servers require a client certificate
//! signed by the federation CA and read the caller from it.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::config::TlsPaths;

/// Errors loading TLS material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Server side: our identity, and client certificates required under the CA.
pub fn server_config(paths: &TlsPaths) -> Result<ServerTlsConfig, TlsError> {
    let identity = Identity::from_pem(read(&paths.cert)?, read(&paths.key)?);
    Ok(ServerTlsConfig::new()
        .identity(identity)
        .client_ca_root(Certificate::from_pem(read(&paths.ca)?))
        .client_auth_optional(false))
}

/// Client side: trust only the CA, present our certificate, expect `server_name`.
pub fn client_config(paths: &TlsPaths, server_name: &str) -> Result<ClientTlsConfig, TlsError> {
    let identity = Identity::from_pem(read(&paths.cert)?, read(&paths.key)?);
    Ok(ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&paths.ca)?))
        .identity(identity)
        .domain_name(server_name))
}

/// Common name of the caller's (already CA-verified) certificate.
pub fn peer_common_name<T>(request: &tonic::Request<T>) -> Option<String> {
    let certs = request.peer_certs()?;
    let leaf = certs.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_owned();
    Some(cn)
}
