//! A requester connected to the coordinator: its TFHE keys, statistics,
//! catalog and budget. Lookups are in `lookup.rs`.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use fedq_crypto::lookup::keys::danger;
use fedq_crypto::lookup::{
    generate_keys, CompressedTag, ExpansionKey, FhePublicKey, FheSecretKey, KeyId,
};
use fedq_proto::federation::TagCompression;
use fedq_proto::v1::{self, coordinator_client::CoordinatorClient};
use tonic::transport::{Channel, Endpoint};

use crate::config::ClientConfig;

const SECRET_KEY_FILE: &str = "lookup.secret";
const PUBLIC_KEY_FILE: &str = "lookup.public";
/// The expansion key registered with the public key: lookups send
/// compressed tags (format 3) when it is here.
const EXPANSION_KEY_FILE: &str = "lookup.expansion";

/// A requester's lookup keys.
pub(crate) struct LookupKeys {
    pub(crate) secret: FheSecretKey,
    pub(crate) public: FhePublicKey,
    /// The id of the registered expansion key, if there is one and the
    /// federation compresses: the lookup's tags are then compressed.
    pub(crate) expansion: Option<KeyId>,
    /// Whether compressed items go in packed groups (format 4) rather than
    /// one by one (format 3): the federation's choice.
    pub(crate) packed: bool,
}

/// A connected requester.
pub struct Requester {
    pub(crate) config: ClientConfig,
    pub(crate) client: CoordinatorClient<Channel>,
}

impl Requester {
    /// Connects to the coordinator named in the federation file.
    pub async fn connect(config: ClientConfig) -> anyhow::Result<Self> {
        let endpoint =
            Endpoint::from_shared(format!("https://{}", config.federation.coordinator.address))?
                .tls_config(fedq_transport::tls::client_config(
                    &config.tls,
                    "coordinator",
                )?)?
                .connect_timeout(Duration::from_secs(5));
        let channel = endpoint.connect().await.with_context(|| {
            format!(
                "cannot reach the coordinator at {}",
                config.federation.coordinator.address
            )
        })?;
        let client = CoordinatorClient::new(channel)
            .max_decoding_message_size(fedq_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(fedq_proto::MAX_MESSAGE_BYTES);
        Ok(Self { config, client })
    }

    /// Makes (or, with existing keys and no `force`, reuses) the TFHE keys and
    /// registers the public key. Returns the key id.
    pub async fn keys_init(&mut self, force: bool) -> anyhow::Result<KeyId> {
        // One at a time in a process: two first calls would each make keys
        // and register one, leaving files and registration apart.
        static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _one = ONE_AT_A_TIME.lock().await;
        let dir = &self.config.keys_dir;
        let public_path = dir.join(PUBLIC_KEY_FILE);
        let expansion_path = dir.join(EXPANSION_KEY_FILE);
        let (secret, public) = if dir.join(SECRET_KEY_FILE).exists() && !force {
            self.load_keys().context("stored lookup keys are invalid")?
        } else {
            // A new secret makes the old expansion key another secret's:
            // gone first, so that an interruption leaves none, never a stale one.
            match std::fs::remove_file(&expansion_path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
            let (secret, public) = generate_keys();
            write_secret_key(dir, &secret)?;
            std::fs::write(&public_path, public.to_bytes())?;
            (secret, public)
        };
        // Keys made before compressed lookups, or an expansion key that is
        // missing, truncated or another secret's, get a new one.
        let expansion_key = match std::fs::read(&expansion_path) {
            Ok(bytes) if ExpansionKey::belongs_to(&secret, &bytes) => bytes,
            _ => {
                let bytes = ExpansionKey::generate(&secret).to_bytes();
                write_replacing(&expansion_path, &bytes)?;
                bytes
            }
        };
        let response = self
            .client
            .register_key(v1::RegisterKeyRequest {
                public_key: public.to_bytes().to_vec(),
                expansion_key,
            })
            .await
            .map_err(status_error)?
            .into_inner();
        if response.key_id != public.id().as_str() {
            bail!("the coordinator registered a different key id");
        }
        Ok(public.id().clone())
    }

    pub(crate) fn load_keys(&self) -> anyhow::Result<(FheSecretKey, FhePublicKey)> {
        let dir = &self.config.keys_dir;
        let secret_bytes = zeroize::Zeroizing::new(
            std::fs::read(dir.join(SECRET_KEY_FILE))
                .context("no lookup keys yet: run `fedq keys init` first")?,
        );
        let secret = FheSecretKey::from_file_bytes(&secret_bytes)?;
        let public = FhePublicKey::from_bytes(&std::fs::read(dir.join(PUBLIC_KEY_FILE))?)?;
        Ok((secret, public))
    }

    /// The keys a lookup uses, and so its tags' format.
    pub(crate) fn load_lookup_keys(&self) -> anyhow::Result<LookupKeys> {
        let (secret, public) = self.load_keys()?;
        let path = self.config.keys_dir.join(EXPANSION_KEY_FILE);
        let expansion = if path.exists() {
            let bytes = std::fs::read(&path)?;
            if !ExpansionKey::belongs_to(&secret, &bytes) {
                bail!(
                    "{} is not an expansion key of this lookup key, or one of an older layout (fedq's expansion keys grew from six to eight levels): run `fedq keys init` to make and register a matching one",
                    path.display()
                );
            }
            Some(ExpansionKey::id_of(&bytes)?)
        } else {
            None
        };
        // Tags wider than format 3 holds travel uncompressed, as do all of a
        // federation that chose no compression.
        let federation = &self.config.federation.config;
        let compresses = CompressedTag::supports(federation.fingerprint.tag_bits())
            && federation.compression != TagCompression::None;
        Ok(LookupKeys {
            secret,
            public,
            expansion: expansion.filter(|_| compresses),
            packed: federation.compression == TagCompression::Packed,
        })
    }
}

impl Requester {
    /// Runs a differentially private statistics query across the federation,
    /// signing `context` into the request's envelope.
    pub async fn stats(
        &mut self,
        mut context: v1::RequestContext,
        query: v1::StatsQuery,
    ) -> anyhow::Result<v1::StatsResponse> {
        context.envelope = Some(self.config.sign(
            "stats",
            &context,
            fedq_proto::payload::stats_payload_hash(&query),
        )?);
        Ok(self
            .client
            .stats(v1::StatsRequest {
                context: Some(context),
                query: Some(query),
            })
            .await
            .map_err(status_error)?
            .into_inner())
    }

    /// Every node's public catalog.
    pub async fn catalog(&mut self) -> anyhow::Result<v1::FederationCatalogResponse> {
        Ok(self
            .client
            .catalog(v1::FederationCatalogRequest {})
            .await
            .map_err(status_error)?
            .into_inner())
    }

    /// Which nodes the coordinator reaches now, with their public facts.
    pub async fn federation_info(&mut self) -> anyhow::Result<v1::FederationInfoResponse> {
        Ok(self
            .client
            .federation_info(v1::FederationInfoRequest {})
            .await
            .map_err(status_error)?
            .into_inner())
    }

    /// The requester's budget at every node.
    pub async fn budget(&mut self) -> anyhow::Result<v1::FederationBudgetResponse> {
        Ok(self
            .client
            .budget(v1::FederationBudgetRequest {})
            .await
            .map_err(status_error)?
            .into_inner())
    }
}

pub(crate) fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!(
        "coordinator refused the request ({:?}): {}",
        status.code(),
        status.message()
    )
}

/// Writes `contents` next to `path` and renames it over `path`: a reader
/// sees the old file or the new one, never a part.
fn write_replacing(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    fedq_transport::files::write_private(&partial, contents)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path).with_context(|| format!("cannot write {}", path.display()))
}

fn write_secret_key(dir: &Path, secret: &FheSecretKey) -> anyhow::Result<()> {
    let path = dir.join(SECRET_KEY_FILE);
    let bytes = zeroize::Zeroizing::new(danger::secret_key_to_file_bytes(secret));
    fedq_transport::files::write_private(&path, &bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}
