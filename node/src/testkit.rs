//! Files for tests and examples: a one-node federation written by hand, as an
//! operator would, without `fedq federation init` (which lives in the
//! coordinator crate). Not part of the supported API.

use std::path::{Path, PathBuf};

/// A `[policy]` admitting investigators of `fr-police` to look up phones
/// for "fraud investigation" until the end of 2027.
pub const LOOKUP_POLICY: &str = "[policy]\nvalid_until = \"2027-12-31\"\nagencies = [\"fr-police\"]\nroles = [\"investigator\"]\n\
    [policy.purposes]\nlookup = [\"fraud investigation\"]\n\
    [policy.lookup]\nkinds = [\"phone\"]\n";

/// Writes `federation.toml` and a `node.toml` for node `fr` into `dir`, with `extra` TOML appended to the
/// node config (a `[policy]` section, say). Returns the node config's path.
pub fn write_minimal_node_config(dir: &Path, extra: &str) -> std::io::Result<PathBuf> {
    std::fs::write(
        dir.join("federation.toml"),
        "version = 1\nname = \"t\"\n[parameters]\nbucket_bits = 12\ntag_bits = 28\npadded_candidates = 64\n\
         [coordinator]\naddress = \"127.0.0.1:1\"\n[[nodes]]\nid = \"fr\"\njurisdiction = \"fr\"\naddress = \"127.0.0.1:2\"\n",
    )?;
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\nnode_id = \"fr\"\nlisten = \"127.0.0.1:2\"\nfederation = \"federation.toml\"\n\
             store = \"sqlite://store/node.db\"\n\
             [tls]\nca = \"ca.pem\"\ncert = \"node.pem\"\nkey = \"node.key\"\n{extra}"
        ),
    )?;
    Ok(config)
}

/// An admitted lookup of alice (fr-police, investigator) at `time`, as the
/// audit log records one.
pub fn lookup_record(
    time: chrono::DateTime<chrono::Utc>,
    query_id: &str,
) -> fedq_audit::AuditRecord {
    fedq_audit::AuditRecord {
        time,
        query_id: query_id.to_owned(),
        requester: "alice".to_owned(),
        agency: "fr-police".to_owned(),
        role: "investigator".to_owned(),
        purpose: "fraud investigation".to_owned(),
        legal_basis: "art. 6(1)(e)".to_owned(),
        case_ref: "case-1".to_owned(),
        action: "lookup".to_owned(),
        detail: "items=3 kinds=phone".to_owned(),
        decision: fedq_audit::Decision::Admitted,
        reason: "policy admits".to_owned(),
    }
}
