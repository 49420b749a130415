//! The requester's `client.toml`, and signing request envelopes with its key.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use fedq_crypto::envelope::{fresh_nonce, Envelope, SigningKey};
use fedq_proto::federation::FederationFile;
use fedq_proto::toml_file::{read_toml, resolve, CONFIG_VERSION};
use fedq_proto::v1::{self};
use fedq_transport::TlsPaths;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientConfigBuilder {
    version: u32,
    requester: String,
    federation: PathBuf,
    #[serde(default = "default_keys_dir")]
    keys_dir: PathBuf,
    #[serde(default = "default_signing_key")]
    signing_key: PathBuf,
    #[serde(default)]
    legal_basis: Option<String>,
    tls: TlsPaths,
}

fn default_signing_key() -> PathBuf {
    PathBuf::from("signing.key")
}

fn default_keys_dir() -> PathBuf {
    PathBuf::from("keys")
}

/// A requester's validated `client.toml`.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Requester id (its certificate's common name).
    pub requester: String,
    /// The federation.
    pub federation: FederationFile,
    /// Directory of the requester's TFHE keys.
    pub keys_dir: PathBuf,
    /// mTLS material.
    pub tls: TlsPaths,
    /// The Ed25519 key that signs request envelopes.
    pub signing_key: PathBuf,
    /// Legal basis stated when a command gives none.
    pub legal_basis: Option<String>,
}

impl ClientConfig {
    /// Reads and validates a client config.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let builder: ClientConfigBuilder = read_toml(path)?;
        if builder.version != CONFIG_VERSION {
            bail!(
                "{}: version: expected {CONFIG_VERSION}, found {}",
                path.display(),
                builder.version
            );
        }
        Ok(Self {
            federation: FederationFile::load(&resolve(path, &builder.federation))?,
            requester: builder.requester,
            keys_dir: resolve(path, &builder.keys_dir),
            signing_key: resolve(path, &builder.signing_key),
            legal_basis: builder.legal_basis,
            tls: builder.tls.resolved(path),
        })
    }

    /// What `load` cannot see and a request would only meet later: the TLS
    /// files, this requester's entry in the federation file, and its signing
    /// key (private, and the one the federation file lists). One line per
    /// problem, with its key path.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = self.tls.problems(&self.requester);
        match self.entry() {
            Ok(entry) => {
                if let Err(problem) = self.signing_key_of(entry) {
                    problems.push(format!("signing_key: {problem:#}"));
                }
            }
            Err(problem) => problems.push(format!("requester: {problem:#}")),
        }
        problems
    }

    fn entry(&self) -> anyhow::Result<&fedq_proto::federation::RequesterEntry> {
        self.federation
            .requesters
            .iter()
            .find(|r| r.id == self.requester)
            .with_context(|| {
                format!(
                    "requester {:?} is not listed in the federation file",
                    self.requester
                )
            })
    }

    /// The signing key, if it is private and matches `entry`'s public key.
    fn signing_key_of(
        &self,
        entry: &fedq_proto::federation::RequesterEntry,
    ) -> anyhow::Result<SigningKey> {
        fedq_transport::files::check_private(&self.signing_key).map_err(anyhow::Error::msg)?;
        let text =
            zeroize::Zeroizing::new(std::fs::read_to_string(&self.signing_key).with_context(
                || format!("cannot read the signing key {}", self.signing_key.display()),
            )?);
        let key = SigningKey::from_text(&text)?;
        if key.verifying_key().to_text() != entry.public_key {
            bail!("the signing key does not match the public key in the federation file");
        }
        Ok(key)
    }

    /// Secret material only this requester holds, for keys of its own (the
    /// deconfliction wrap key): its id and its signing key, checked as for
    /// signing and in canonical form (not the file's bytes, which a stray
    /// newline would change).
    pub(crate) fn own_secret(&self) -> anyhow::Result<zeroize::Zeroizing<Vec<u8>>> {
        let entry = self.entry()?;
        let key = self.signing_key_of(entry)?;
        let mut material = zeroize::Zeroizing::new(entry.id.clone().into_bytes());
        material.push(0);
        material.extend_from_slice(key.to_text().as_bytes());
        Ok(material)
    }

    /// This requester's agency, as the federation file lists it.
    pub fn agency(&self) -> anyhow::Result<&str> {
        Ok(&self.entry()?.agency)
    }

    /// Every node of the federation file, sorted: the audience of each
    /// envelope (a node refuses a lookup that does not address them all).
    pub fn audience(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self.federation.nodes.iter().map(|n| n.id.clone()).collect();
        nodes.sort_unstable();
        nodes
    }

    /// Signs a request envelope for `action` over a payload hash, as this
    /// requester (its key must match the federation file's public key).
    pub fn sign(
        &self,
        action: &str,
        context: &v1::RequestContext,
        payload_hash: String,
    ) -> anyhow::Result<v1::SignedEnvelope> {
        let entry = self.entry()?;
        let key = self.signing_key_of(entry)?;
        let legal_basis = match context.legal_basis.trim() {
            "" => self.legal_basis.clone().unwrap_or_default(),
            given => given.to_owned(),
        };
        if legal_basis.trim().is_empty() {
            bail!("state a legal basis (--legal-basis, or legal_basis in client.toml)");
        }
        let envelope = Envelope {
            requester: entry.id.clone(),
            agency: entry.agency.clone(),
            role: entry.role.to_string(),
            purpose: context.purpose.clone(),
            legal_basis,
            case_ref: context.case_reference.clone(),
            action: action.to_owned(),
            issued_at: chrono::Utc::now().timestamp(),
            nonce: fresh_nonce(),
            payload_hash,
            audience: self.audience(),
        };
        envelope.check_shape()?;
        Ok(fedq_proto::payload::to_wire(key.sign(&envelope)))
    }
}
