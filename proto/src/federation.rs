//! The federation file (`federation.toml`): who is in the federation and the
//! parameters every party must share.

use std::path::Path;

use fedq_crypto::FingerprintParams;
use serde::{Deserialize, Serialize};

use crate::role::Role;
use crate::toml_file::{read_toml, ConfigError, CONFIG_VERSION};

/// Default bucket width: at most 12 bits keeps >= 256 expected records per
/// bucket at 1,000,000 records, so the bucket hint stays coarse.
pub const DEFAULT_BUCKET_BITS: u8 = 12;
/// Default tag width: 28 bits keeps false positives below 2^-20 per item per
/// node with up to 256 candidates in a bucket.
pub const DEFAULT_TAG_BITS: u8 = 28;
/// Default padded bucket size: the expected 1,000,000-record bucket plus slack.
pub const DEFAULT_PADDED_CANDIDATES: usize = 320;

/// How far a federation's lookups compress their encrypted tags. Each step
/// shrinks the requester's upload and raises the evaluation noise, which the
/// flooding hides less well: the residual leak that `fedq_crypto::lookup`
/// measures. Nodes refuse tags compressed further than their federation
/// allows; clients send what it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TagCompression {
    /// Batches packed three items to a GLWE (format 4, 3,421 bytes per item
    /// and node), a lone item compressed (format 3, 24,609 bytes).
    #[default]
    Packed,
    /// Every item compressed on its own (format 3).
    Single,
    /// Uncompressed (format 2, 430 KB per item and node with 28-bit tags):
    /// the smallest leak.
    None,
}

impl TagCompression {
    /// The name in `federation.toml` and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Packed => "packed",
            Self::Single => "single",
            Self::None => "none",
        }
    }

    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl std::fmt::Display for TagCompression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for TagCompression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Self::Packed, Self::Single, Self::None]
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| format!("{s:?}: expected packed, single or none"))
    }
}

/// `[parameters]` of the federation file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameters {
    /// Bits of the clear bucket index.
    pub bucket_bits: u8,
    /// Bits of the encrypted tag.
    pub tag_bits: u8,
    /// Every bucket is padded with dummy tags to at least this many.
    pub padded_candidates: usize,
    /// How far lookups compress their tags (absent: packed, as files
    /// written before the setting existed).
    #[serde(default, skip_serializing_if = "TagCompression::is_default")]
    pub compression: TagCompression,
}

impl Default for Parameters {
    fn default() -> Self {
        Self {
            bucket_bits: DEFAULT_BUCKET_BITS,
            tag_bits: DEFAULT_TAG_BITS,
            padded_candidates: DEFAULT_PADDED_CANDIDATES,
            compression: TagCompression::default(),
        }
    }
}

/// One node of the federation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeEntry {
    /// Node id (also its certificate's common name).
    pub id: String,
    /// Jurisdiction the node answers for.
    pub jurisdiction: String,
    /// host:port of its gRPC service.
    pub address: String,
    /// The node's OPRF public keys (64 hex digits each), pinned: a requester
    /// refuses fingerprints the node proves under any other key, so that
    /// nobody relaying the OPRF (the coordinator) can answer for the node.
    /// Empty: not pinned, the node's answer names its key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oprf_keys: Vec<String>,
    /// The node's audit public key (64 hex digits), pinned by `fedq
    /// federation init`: `audit verify` and the coordinator's witness check
    /// the node's signatures against it. Files written before pins existed
    /// have none (verification then trusts the node's own key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_key: Option<String>,
    /// The node's public share of the deconfliction key (`index:64 hex`),
    /// which its partial evaluations are proved against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deconfliction_share: Option<String>,
}

impl NodeEntry {
    /// Whether `key` (the node's OPRF public key, 32 bytes) may be used: it
    /// is pinned, or nothing is.
    pub fn admits_oprf_key(&self, key: &[u8]) -> bool {
        self.oprf_keys.is_empty()
            || self.oprf_keys.iter().any(|pinned| {
                fedq_crypto::oprf::NodeOprfPublicKey::from_text(pinned)
                    .is_ok_and(|pinned| pinned.to_bytes() == key)
            })
    }
}

/// One requester (investigator, researcher or auditor).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequesterEntry {
    /// Requester id (also its certificate's common name).
    pub id: String,
    /// Agency the requester works for.
    pub agency: String,
    /// What the requester may do.
    pub role: Role,
    /// The requester's Ed25519 public key (hex) that signs request envelopes.
    #[serde(default)]
    pub public_key: String,
}

/// `[coordinator]` of the federation file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorEntry {
    /// host:port of the coordinator's gRPC service.
    pub address: String,
    /// The coordinator's audit public key (64 hex digits): it signs the
    /// coordinator's own log and countersigns the nodes' checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_key: Option<String>,
}

/// The federation file as written on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationToml {
    /// Format version.
    pub version: u32,
    /// Federation name.
    pub name: String,
    /// Shared parameters.
    pub parameters: Parameters,
    /// The coordinator.
    pub coordinator: CoordinatorEntry,
    /// The nodes.
    pub nodes: Vec<NodeEntry>,
    /// The requesters.
    #[serde(default)]
    pub requesters: Vec<RequesterEntry>,
    /// The deconfliction key, shared among the nodes (absent: no deconfliction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deconfliction: Option<DeconflictionEntry>,
}

/// `[deconfliction]` of the federation file: the public half of the
/// threshold OPRF key whose shares the nodes hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeconflictionEntry {
    /// `t:64 hex`: how many nodes must take part, and the public key.
    pub threshold_key: String,
}

/// The deconfliction key as validated: the threshold key and every node's
/// public share, checked to lie on one polynomial.
#[derive(Debug, Clone)]
pub struct DeconflictionKeys {
    /// t and the public key.
    pub public: fedq_crypto::toprf::ThresholdPublicKey,
    /// (node id, its public share), in the file's order.
    pub shares: Vec<(String, fedq_crypto::toprf::SharePublicKey)>,
}

impl DeconflictionKeys {
    /// The public share of node `id`.
    pub fn share(&self, id: &str) -> Option<&fedq_crypto::toprf::SharePublicKey> {
        self.shares
            .iter()
            .find(|(node, _)| node == id)
            .map(|(_, s)| s)
    }
}

/// Validated federation-wide settings.
#[derive(Debug, Clone)]
pub struct FederationConfig {
    /// Federation name.
    pub name: String,
    /// How fingerprints split into bucket and tag.
    pub fingerprint: FingerprintParams,
    /// Minimum padded bucket size.
    pub padded_candidates: usize,
    /// How far lookups compress their tags.
    pub compression: TagCompression,
}

/// A loaded and validated federation file.
#[derive(Debug, Clone)]
pub struct FederationFile {
    /// Validated parameters.
    pub config: FederationConfig,
    /// The coordinator.
    pub coordinator: CoordinatorEntry,
    /// The nodes.
    pub nodes: Vec<NodeEntry>,
    /// The requesters.
    pub requesters: Vec<RequesterEntry>,
    /// The deconfliction key, if the federation has one.
    pub deconfliction: Option<DeconflictionKeys>,
}

impl FederationFile {
    /// The node called `id`, if the federation has one.
    pub fn node(&self, id: &str) -> Option<&NodeEntry> {
        self.nodes.iter().find(|node| node.id == id)
    }

    /// Reads and validates a federation file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let raw: FederationToml = read_toml(path)?;
        Self::validate(raw).map_err(|problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        })
    }

    /// Validates the parsed file, collecting every problem.
    pub fn validate(raw: FederationToml) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        if raw.version != CONFIG_VERSION {
            problems.push(format!(
                "version: expected {CONFIG_VERSION}, found {}",
                raw.version
            ));
        }
        let fingerprint =
            FingerprintParams::new(raw.parameters.bucket_bits, raw.parameters.tag_bits)
                .map_err(|e| problems.push(format!("parameters: {e}")))
                .ok();
        if raw.parameters.padded_candidates == 0 || raw.parameters.padded_candidates > 1 << 16 {
            problems.push("parameters.padded_candidates: must be between 1 and 65536".to_owned());
        }
        if raw.nodes.is_empty() {
            problems.push("nodes: a federation needs at least one node".to_owned());
        }
        if raw.nodes.len() > crate::limits::MAX_FEDERATION_NODES {
            problems.push(format!(
                "nodes: a federation has at most {} nodes (each needs its own \
                 encrypted tags in one lookup request)",
                crate::limits::MAX_FEDERATION_NODES
            ));
        } else if !raw.nodes.is_empty()
            && crate::limits::items_per_request(raw.parameters.tag_bits, raw.nodes.len()) == 0
        {
            let bits = raw.parameters.tag_bits;
            let most = (1..raw.nodes.len())
                .rev()
                .find(|&n| crate::limits::items_per_request(bits, n) > 0)
                .unwrap_or(0);
            problems.push(format!(
                "nodes: with {bits}-bit tags one lookup request holds one item's tags for \
                 at most {most} nodes, not {}: use fewer tag bits or fewer nodes",
                raw.nodes.len()
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, node) in raw.nodes.iter().enumerate() {
            if !is_name(&node.id) {
                problems.push(format!(
                    "nodes[{i}].id: use lowercase letters, digits and '-'"
                ));
            }
            if !seen.insert(node.id.clone()) {
                problems.push(format!("nodes[{i}].id: duplicate node id {:?}", node.id));
            }
            for (k, key) in node.oprf_keys.iter().enumerate() {
                if fedq_crypto::oprf::NodeOprfPublicKey::from_text(key).is_err() {
                    problems.push(format!(
                        "nodes[{i}].oprf_keys[{k}]: not an OPRF public key (64 hex digits of a ristretto255 point)"
                    ));
                }
            }
        }
        let pins = raw
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("nodes[{i}].audit_key"), &n.audit_key))
            .chain([(
                "coordinator.audit_key".to_owned(),
                &raw.coordinator.audit_key,
            )]);
        for (path, pin) in pins {
            if pin
                .as_deref()
                .is_some_and(|pin| fedq_crypto::audit_key::AuditPublicKey::from_hex(pin).is_err())
            {
                problems.push(format!("{path}: not an Ed25519 public key (64 hex digits)"));
            }
        }
        for (i, requester) in raw.requesters.iter().enumerate() {
            // One namespace: a certificate's common name names one party.
            if requester.id == "coordinator" || raw.nodes.iter().any(|n| n.id == requester.id) {
                problems.push(format!(
                    "requesters[{i}].id: {:?} is also a node or the coordinator",
                    requester.id
                ));
            }
            if !seen.insert(requester.id.clone()) && !raw.nodes.iter().any(|n| n.id == requester.id)
            {
                problems.push(format!(
                    "requesters[{i}].id: duplicate requester id {:?}",
                    requester.id
                ));
            }
            if !is_name(&requester.id) {
                problems.push(format!(
                    "requesters[{i}].id: use lowercase letters, digits and '-'"
                ));
            }
            if !requester.public_key.is_empty()
                && fedq_crypto::envelope::VerifyingKey::from_text(&requester.public_key).is_err()
            {
                problems.push(format!(
                    "requesters[{i}].public_key: not an Ed25519 public key (64 hex digits)"
                ));
            }
        }
        let deconfliction = raw
            .deconfliction
            .as_ref()
            .and_then(|entry| deconfliction_keys(entry, &raw.nodes, &mut problems));
        match fingerprint {
            Some(fingerprint) if problems.is_empty() => Ok(Self {
                config: FederationConfig {
                    name: raw.name,
                    fingerprint,
                    padded_candidates: raw.parameters.padded_candidates,
                    compression: raw.parameters.compression,
                },
                coordinator: raw.coordinator,
                nodes: raw.nodes,
                requesters: raw.requesters,
                deconfliction,
            }),
            _ => Err(problems),
        }
    }
}

/// Parses `[deconfliction]` and every node's share, and checks that the
/// shares belong to the key (a client would otherwise combine partial
/// evaluations that no threshold of nodes agrees on).
fn deconfliction_keys(
    entry: &DeconflictionEntry,
    nodes: &[NodeEntry],
    problems: &mut Vec<String>,
) -> Option<DeconflictionKeys> {
    use fedq_crypto::toprf::{check_public_shares, SharePublicKey, ThresholdPublicKey};
    let public = ThresholdPublicKey::from_text(&entry.threshold_key)
        .map_err(|e| problems.push(format!("deconfliction.threshold_key: {e}")))
        .ok()?;
    // A majority: fewer nodes than half could compute pseudonyms without
    // the others, and two disjoint groups could each.
    let threshold = usize::from(public.threshold());
    if threshold <= nodes.len() / 2 && nodes.len() > 1 {
        problems.push(format!(
            "deconfliction.threshold_key: a threshold of {threshold} of {} nodes is not a majority",
            nodes.len()
        ));
        return None;
    }
    let mut shares = Vec::with_capacity(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        match node
            .deconfliction_share
            .as_deref()
            .map(SharePublicKey::from_text)
        {
            Some(Ok(share)) => shares.push((node.id.clone(), share)),
            Some(Err(e)) => problems.push(format!("nodes[{i}].deconfliction_share: {e}")),
            None => problems.push(format!(
                "nodes[{i}].deconfliction_share: missing (the federation has [deconfliction])"
            )),
        }
    }
    if shares.len() != nodes.len() {
        return None;
    }
    let publics: Vec<SharePublicKey> = shares.iter().map(|(_, s)| s.clone()).collect();
    check_public_shares(&public, &publics)
        .map_err(|e| problems.push(format!("deconfliction: {e}")))
        .ok()?;
    Some(DeconflictionKeys { public, shares })
}

impl FederationFile {
    /// The audit key pinned for node `id`, if the file pins one.
    pub fn node_audit_key(&self, id: &str) -> Option<fedq_crypto::audit_key::AuditPublicKey> {
        pinned(self.nodes.iter().find(|n| n.id == id)?.audit_key.as_deref())
    }

    /// The coordinator's pinned audit key, if the file pins one.
    pub fn coordinator_audit_key(&self) -> Option<fedq_crypto::audit_key::AuditPublicKey> {
        pinned(self.coordinator.audit_key.as_deref())
    }
}

/// A pin as validated at load (an invalid one never loads).
fn pinned(pin: Option<&str>) -> Option<fedq_crypto::audit_key::AuditPublicKey> {
    pin.and_then(|pin| fedq_crypto::audit_key::AuditPublicKey::from_hex(pin).ok())
}

/// Ids that are safe in file names and certificate names.
pub fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !text.starts_with('-')
}

/// The federation file as it is now: re-read when it changes on disk, so that
/// a requester added or removed (revoked) while a party runs counts within
/// [`Watched::RECHECK`]. A file that stops parsing keeps the last valid
/// version in force (logged), so an operator's typo does not open or close
/// the federation by accident.
#[derive(Debug)]
pub struct Watched {
    path: std::path::PathBuf,
    state: std::sync::RwLock<WatchedState>,
}

#[derive(Debug)]
struct WatchedState {
    file: std::sync::Arc<FederationFile>,
    stamp: Option<(std::time::SystemTime, u64)>,
    checked: std::time::Instant,
}

impl Watched {
    /// How often the file's modification time is looked at, at most.
    pub const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

    /// Watches `path`, starting from its already loaded contents.
    pub fn new(path: &Path, file: FederationFile) -> Self {
        Self {
            path: path.to_owned(),
            state: std::sync::RwLock::new(WatchedState {
                file: std::sync::Arc::new(file),
                // Unknown: `file` may have been read before the file last
                // changed, so the first look at the file reloads it.
                stamp: None,
                checked: std::time::Instant::now(),
            }),
        }
    }

    /// The current federation file.
    pub fn current(&self) -> std::sync::Arc<FederationFile> {
        self.refreshed(false)
    }

    /// The file, looked at again if `force` or if [`Self::RECHECK`] passed.
    fn refreshed(&self, force: bool) -> std::sync::Arc<FederationFile> {
        if !force {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            if state.checked.elapsed() < Self::RECHECK {
                return state.file.clone();
            }
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if force || state.checked.elapsed() >= Self::RECHECK {
            state.checked = std::time::Instant::now();
            let now = crate::toml_file::stamp(&self.path);
            if now != state.stamp {
                match FederationFile::load(&self.path) {
                    Ok(file) => {
                        state.file = std::sync::Arc::new(file);
                        state.stamp = now;
                    }
                    Err(e) => eprintln!("warning: keeping the previous federation file: {e}"),
                }
            }
        }
        state.file.clone()
    }

    /// The audit key pinned for node `id`, if the file pins one (validated
    /// at load).
    pub fn node_audit_key(&self, id: &str) -> Option<fedq_crypto::audit_key::AuditPublicKey> {
        self.current().node_audit_key(id)
    }

    /// The listed requester with this id, if any. A miss looks at the file
    /// again at once: `fedq federation add-requester` edits it while parties
    /// run, and the new requester must not wait for the next recheck.
    pub fn requester(&self, id: &str) -> Option<RequesterEntry> {
        let find = |file: &FederationFile| file.requesters.iter().find(|r| r.id == id).cloned();
        find(&self.current()).or_else(|| find(&self.refreshed(true)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "version = 1\nname = \"t\"\n[parameters]\nbucket_bits = 12\ntag_bits = 28\npadded_candidates = 64\n\
        [coordinator]\naddress = \"127.0.0.1:1\"\n[[nodes]]\nid = \"fr\"\njurisdiction = \"fr\"\naddress = \"127.0.0.1:2\"\n";

    fn requester(id: &str) -> String {
        let key = fedq_crypto::envelope::SigningKey::generate()
            .verifying_key()
            .to_text();
        format!("[[requesters]]\nid = \"{id}\"\nagency = \"a\"\nrole = \"investigator\"\npublic_key = \"{key}\"\n")
    }

    #[test]
    fn an_added_requester_counts_at_once_and_a_removed_one_within_a_recheck() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("federation.toml");
        std::fs::write(&path, format!("{BASE}{}", requester("alice"))).unwrap();
        let watched = Watched::new(&path, FederationFile::load(&path).unwrap());
        assert!(watched.requester("alice").is_some());
        assert!(watched.requester("bob").is_none());
        let temp = dir.path().join(".tmp");
        std::fs::write(
            &temp,
            format!("{BASE}{}{}", requester("alice"), requester("bob")),
        )
        .unwrap();
        std::fs::rename(&temp, &path).unwrap();
        assert!(watched.requester("bob").is_some(), "added requester");
        std::fs::write(&temp, format!("{BASE}{}", requester("bob"))).unwrap();
        std::fs::rename(&temp, &path).unwrap();
        std::thread::sleep(Watched::RECHECK);
        assert!(watched.requester("alice").is_none(), "revoked requester");
    }

    /// A federation of `nodes` nodes with `tag_bits`-bit tags.
    fn federation_of(nodes: usize, tag_bits: u8) -> FederationToml {
        let mut text = BASE
            .replace("tag_bits = 28", &format!("tag_bits = {tag_bits}"))
            .replace(
                "[[nodes]]\nid = \"fr\"\njurisdiction = \"fr\"\naddress = \"127.0.0.1:2\"\n",
                "",
            );
        for i in 0..nodes {
            text.push_str(&format!(
                "[[nodes]]\nid = \"n{i}\"\njurisdiction = \"n{i}\"\naddress = \"127.0.0.1:{}\"\n",
                1000 + i
            ));
        }
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn a_federation_is_as_large_as_one_lookup_request_carries() {
        // 28-bit tags: 64 nodes (430 KB each) fit the 48 MiB request, and
        // the count's encoding adds up no more.
        assert!(FederationFile::validate(federation_of(64, 28)).is_ok());
        let problems = FederationFile::validate(federation_of(65, 28)).expect_err("65 nodes");
        assert!(
            problems.iter().any(|p| p.contains("at most 64 nodes")),
            "{problems:?}"
        );
        // With the widest tags (40 bits, 725 KB per node) 64 nodes fit too,
        // so no valid federation is refused for its requests' size.
        let widest = fedq_crypto::fingerprint::MAX_TAG_BITS;
        assert!(FederationFile::validate(federation_of(64, widest)).is_ok());
        for bits in fedq_crypto::lookup::params::LOW_TAG_BITS + 1..=widest {
            let nodes = crate::limits::MAX_FEDERATION_NODES;
            assert!(crate::limits::items_per_request(bits, nodes) >= 1);
        }
    }

    #[test]
    fn a_requester_named_like_a_node_or_the_coordinator_or_twice_is_refused() {
        for (requesters, fragment) in [
            (requester("fr"), "also a node or the coordinator"),
            (requester("coordinator"), "also a node or the coordinator"),
            (
                format!("{}{}", requester("alice"), requester("alice")),
                "duplicate requester id",
            ),
        ] {
            let raw: FederationToml = toml::from_str(&format!("{BASE}{requesters}")).unwrap();
            let problems = FederationFile::validate(raw).expect_err("refused");
            assert!(
                problems.iter().any(|p| p.contains(fragment)),
                "{problems:?}"
            );
        }
        let raw: FederationToml = toml::from_str(&format!("{BASE}{}", requester("alice"))).unwrap();
        assert!(FederationFile::validate(raw).is_ok());
    }

    #[test]
    fn audit_keys_are_optional_pins_and_validated() {
        let raw: FederationToml = toml::from_str(BASE).unwrap();
        let file = FederationFile::validate(raw).expect("a file without pins still loads");
        assert!(file.node_audit_key("fr").is_none() && file.coordinator_audit_key().is_none());
        let key = fedq_crypto::audit_key::AuditSigningKey::generate().public_key();
        let pinned = BASE
            .replace(
                "address = \"127.0.0.1:1\"\n",
                &format!(
                    "address = \"127.0.0.1:1\"\naudit_key = \"{}\"\n",
                    key.to_hex()
                ),
            )
            .replace(
                "address = \"127.0.0.1:2\"\n",
                &format!(
                    "address = \"127.0.0.1:2\"\naudit_key = \"{}\"\n",
                    key.to_hex()
                ),
            );
        let file = FederationFile::validate(toml::from_str(&pinned).unwrap()).expect("pins load");
        assert_eq!(file.node_audit_key("fr"), Some(key));
        assert_eq!(file.coordinator_audit_key(), Some(key));
        let written = toml::to_string(&toml::from_str::<FederationToml>(&pinned).unwrap()).unwrap();
        assert!(written.contains(&key.to_hex()), "{written}");
        let bad = pinned.replacen(&key.to_hex(), "not-a-key", 1);
        let problems =
            FederationFile::validate(toml::from_str(&bad).unwrap()).expect_err("refused");
        assert!(
            problems
                .iter()
                .any(|p| p.starts_with("coordinator.audit_key:")),
            "{problems:?}"
        );
    }

    #[test]
    fn compression_defaults_to_packed_and_names_its_values() {
        let parsed = FederationFile::validate(toml::from_str(BASE).expect("toml")).expect("valid");
        assert_eq!(parsed.config.compression, TagCompression::Packed);
        let single = BASE.replace(
            "padded_candidates = 64\n",
            "padded_candidates = 64\ncompression = \"single\"\n",
        );
        let parsed =
            FederationFile::validate(toml::from_str(&single).expect("toml")).expect("valid");
        assert_eq!(parsed.config.compression, TagCompression::Single);
        let wrong = BASE.replace(
            "padded_candidates = 64\n",
            "padded_candidates = 64\ncompression = \"zip\"\n",
        );
        assert!(toml::from_str::<FederationToml>(&wrong).is_err());
        for value in [
            TagCompression::Packed,
            TagCompression::Single,
            TagCompression::None,
        ] {
            assert_eq!(value.name().parse::<TagCompression>(), Ok(value));
        }
        assert!("zip".parse::<TagCompression>().is_err());
        // The default is not written, so files stay readable by older builds.
        let written = toml::to_string(&Parameters::default()).expect("toml");
        assert!(!written.contains("compression"), "{written}");
    }
}
