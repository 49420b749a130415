//! Ground truth from the generated files: which jurisdictions hold what.

use std::collections::{BTreeMap, BTreeSet};

use fedq_crypto::{FingerprintParams, IdentifierKind};

use crate::sandbox::FederationSandbox;

/// One identifier, as first spelled in some node's file.
#[derive(Debug, Clone)]
pub struct KnownIdentifier {
    /// Kind.
    pub kind: IdentifierKind,
    /// A raw spelling from a file.
    pub raw: String,
    /// Nodes that hold it.
    pub holders: BTreeSet<String>,
    /// Its bucket at each node (buckets come from each node's own OPRF).
    pub buckets: BTreeMap<String, u32>,
}

/// Every identifier of every node, keyed by (kind, normal form).
pub struct GroundTruth {
    /// The identifiers.
    pub identifiers: BTreeMap<(IdentifierKind, String), KnownIdentifier>,
    /// Real candidates per (node, kind, bucket).
    pub bucket_sizes: BTreeMap<(String, IdentifierKind, u32), usize>,
}

impl GroundTruth {
    /// Reads the sandbox's files; buckets are computed with each node's own
    /// OPRF key, as the node sees them.
    pub fn load(sandbox: &FederationSandbox, params: FingerprintParams) -> anyhow::Result<Self> {
        let mut identifiers: BTreeMap<(IdentifierKind, String), KnownIdentifier> = BTreeMap::new();
        let mut seen: BTreeSet<(String, IdentifierKind, String)> = BTreeSet::new();
        let mut bucket_sizes = BTreeMap::new();
        for (node, _) in &sandbox.nodes {
            let mut reader = csv::Reader::from_path(sandbox.identifiers_csv(node))?;
            for record in reader.records() {
                let record = record?;
                let kind: IdentifierKind = record.get(0).unwrap_or_default().parse()?;
                let raw = record.get(1).unwrap_or_default().to_owned();
                let normal = fedq_crypto::normalise(kind, &raw)?;
                let bucket = sandbox.bucket(node, kind, &normal, params)?;
                if seen.insert((node.clone(), kind, normal.as_str().to_owned())) {
                    *bucket_sizes
                        .entry((node.clone(), kind, bucket))
                        .or_insert(0) += 1;
                }
                let entry = identifiers
                    .entry((kind, normal.as_str().to_owned()))
                    .or_insert_with(|| KnownIdentifier {
                        kind,
                        raw,
                        holders: BTreeSet::new(),
                        buckets: BTreeMap::new(),
                    });
                entry.holders.insert(node.clone());
                entry.buckets.insert(node.clone(), bucket);
            }
        }
        Ok(Self {
            identifiers,
            bucket_sizes,
        })
    }

    /// Identifiers of `kind` held by exactly `count` nodes.
    pub fn held_by(&self, kind: IdentifierKind, count: usize) -> Vec<&KnownIdentifier> {
        self.identifiers
            .values()
            .filter(|i| i.kind == kind && i.holders.len() == count)
            .collect()
    }

    /// The identifier in the largest bucket of any node.
    pub fn in_fullest_bucket(&self) -> Option<(&KnownIdentifier, usize)> {
        let ((node, kind, bucket), size) =
            self.bucket_sizes.iter().max_by_key(|(_, size)| **size)?;
        let found = self
            .identifiers
            .values()
            .find(|i| i.kind == *kind && i.buckets.get(node) == Some(bucket))?;
        Some((found, *size))
    }
}
