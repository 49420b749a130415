//! Mutual TLS under the federation CA, for servers and clients alike.
//!
//! Every party's identity is the common name of its certificate: a node id,
//! `coordinator`, or a requester id. Servers require a client certificate
//! signed by the federation CA and read the caller from it.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::TlsPaths;

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
/// A connection that has not finished its handshake within
/// `handshake_timeout` is closed, so idle sockets cannot pile up.
pub fn server_config(
    paths: &TlsPaths,
    handshake_timeout: std::time::Duration,
) -> Result<ServerTlsConfig, TlsError> {
    let identity = Identity::from_pem(read(&paths.cert)?, read(&paths.key)?);
    Ok(ServerTlsConfig::new()
        .identity(identity)
        .client_ca_root(Certificate::from_pem(read(&paths.ca)?))
        .client_auth_optional(false)
        .timeout(handshake_timeout))
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
    common_name(certs.first()?.as_ref())
}

/// Common name of a DER certificate's subject.
pub fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(cn.to_owned())
}
