//! Fuzz target bodies for the node's decoders of untrusted input beyond
//! `fedq-crypto`'s: a statistics query as a coordinator delivers it, and the
//! rows of the two CSV imports (an operator's files come from elsewhere: a
//! partner system's export, a hand edit).
//!
//! `node/fuzz` (cargo-fuzz) calls them on generated inputs and
//! `tests/fuzz_corpus.rs` replays the committed corpus and crashes through
//! them (`fedq_crypto::fuzzing::corpus`). As there, a body only goes
//! through the node's own entry points, asserts what must hold of anything
//! accepted, and returns whether the input was accepted.

use std::path::PathBuf;
use std::sync::OnceLock;

use fedq_crypto::fuzzing::{Body, Seed};
use fedq_crypto::oprf::NodeOprfKey;
use fedq_proto::prost::Message;
use fedq_proto::v1;

use crate::stats::{StatsEngine, StatsError};
use crate::store::{OprfKeys, Slot};

/// Every target, by the name of its cargo-fuzz binary and corpus folder.
pub const TARGETS: &[(&str, Body)] = &[
    ("stats_query", stats_query),
    ("identifier_rows", identifier_rows),
    ("stats_rows", stats_rows),
];

/// A folder of this process's own for the targets' files (the statistics
/// import writes Parquet; the query planner wants the table file to exist).
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("fedq-node-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("plan")).expect("a writable temporary folder");
        std::fs::write(dir.join("plan/incidents.parquet"), b"")
            .expect("a writable temporary folder");
        dir
    })
}

/// A `NodeStatsRequest` as the coordinator sends it: decoded, bounded and
/// converted as the server does, parsed, and planned against the demo
/// catalog. What plans must only ever name catalog columns in its SQL.
pub fn stats_query(data: &[u8]) -> bool {
    let Ok(request) = v1::NodeStatsRequest::decode(data) else {
        return false;
    };
    let Ok(request) = crate::grpc::stats_request(request) else {
        return false;
    };
    let Ok(query) = crate::service::stats::parse(&request) else {
        return false;
    };
    let catalog = fedq_proto::demo::incidents_catalog();
    let engine = StatsEngine::new(scratch().join("plan"), vec![catalog.clone()]);
    let planned = match engine.plan(&query) {
        Ok(planned) => planned,
        Err(StatsError::Invalid(_)) => return false,
        Err(other) => panic!("a query is refused as invalid or planned, not: {other}"),
    };
    let sql = planned.sql();
    // The stored columns: the catalog's, each date's month and year, the rank.
    let dates: Vec<&str> = catalog.date_columns().map(|c| c.name()).collect();
    let names: Vec<String> = catalog
        .columns
        .iter()
        .map(|c| c.name().to_owned())
        .chain(dates.iter().map(|d| fedq_proto::catalog::month_column(d)))
        .chain(dates.iter().map(|d| fedq_proto::catalog::year_column(d)))
        .chain([fedq_proto::catalog::RANK_COLUMN.to_owned()])
        .collect();
    for (i, quoted) in sql.split('"').enumerate() {
        // Odd pieces sit between quotes: identifiers.
        assert!(
            i % 2 == 0 || names.iter().any(|n| n == quoted),
            "the SQL names {quoted:?}, no catalog column: {sql}"
        );
    }
    planned.sensitivity().max_rows_per_unit >= 1
}

/// One OPRF key per process (drawn once: fingerprints do not change what
/// the decoder accepts, and a fixed key would be one more secret-looking
/// constant in the tree).
fn oprf_keys() -> OprfKeys {
    static KEY: OnceLock<String> = OnceLock::new();
    let text = KEY.get_or_init(|| NodeOprfKey::generate().to_text().to_string());
    OprfKeys {
        active_slot: Slot::A,
        active: NodeOprfKey::from_text(text).expect("a key's own text"),
        pending: None,
        epoch: 1,
    }
}

/// An identifiers CSV, read, validated and fingerprinted as `fedq-node
/// import --identifiers` does, without a store. Each row accepted is in
/// normal form (normalising it again changes nothing) with a record id of
/// the accepted length, and every row is counted once.
pub fn identifier_rows(data: &[u8]) -> bool {
    let keys = oprf_keys();
    let mut accepted = 0;
    let report = crate::import::parse_identifiers(data, &keys, |rows| {
        for row in &rows {
            let again = fedq_crypto::normalise(row.kind, row.normal.as_str())
                .expect("a normal form is a valid value");
            assert_eq!(
                again.as_str(),
                row.normal.as_str(),
                "normalising is idempotent"
            );
            assert!(
                !row.record_id.is_empty() && row.record_id.len() <= crate::import::MAX_RECORD_ID
            );
        }
        accepted += rows.len();
    });
    match report {
        Ok(report) => {
            assert_eq!(accepted + report.rejected.len(), report.rows);
            accepted > 0
        }
        Err(_) => false,
    }
}

/// A statistics table CSV, imported into Parquet under the demo catalog as
/// `fedq-node import --table incidents=FILE` does.
pub fn stats_rows(data: &[u8]) -> bool {
    let catalog = fedq_proto::demo::incidents_catalog();
    match crate::stats::import_table(&catalog, data, scratch(), |_| {}) {
        Ok(report) => {
            assert_eq!(report.imported + report.rejected.len(), report.rows);
            report.imported > 0
        }
        Err(_) => false,
    }
}

/// The inputs each corpus starts from: what an honest coordinator or
/// operator sends, and a few hostile variants that must stay refused.
pub fn seeds() -> Vec<Seed> {
    let mut seeds = stats_query_seeds();
    let seed = |target, name, text: &[u8], accepted| Seed {
        target,
        name,
        bytes: text.to_vec(),
        accepted,
    };
    seeds.extend([
        seed(
            "identifier_rows",
            "mixed",
            b"kind,value,record_id,expires_at\n\
             phone,+33 6 12 34 56 78,r1,\n\
             email,Alice@Example.org,r2,2027-01-31\n\
             passport,FR 12AB34567,r3,2027-01-31T12:00:00Z\n\
             iban,FR76 3000 6000 0112 3456 7890 189,r4,\n\
             phone,not a number,r5,\n\
             fax,123,r6,\n",
            true,
        ),
        seed(
            "identifier_rows",
            "hostile-quoting",
            b"kind,value,record_id\n\"phone,\"+33\"\"6\",r1\nemail,\xff,r2\n",
            false,
        ),
        seed(
            "stats_rows",
            "mixed",
            b"incident_id,unit_id,date,category,sector,loss_eur,severity\n\
             i1,u1,2025-03-04,phishing,finance,1200,3\n\
             i2,u1,2025-03-05,fraud,health,99999999,5\n\
             i3,u2,2023-01-01,phishing,finance,10,1\n\
             i4,u3,2025-13-01,unknown,finance,10,9\n",
            true,
        ),
        seed(
            "stats_rows",
            "hostile-header",
            b"incident_id,unit_id,date\ni1,u1,2025-03-04\n",
            false,
        ),
    ]);
    seeds
}

fn stats_query_seeds() -> Vec<Seed> {
    let request = |measure: &str, group_by: &[&str], filters: &[&str]| {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        v1::NodeStatsRequest {
            query_id: "q-1".to_owned(),
            requester: "rosa".to_owned(),
            context: None,
            query: Some(v1::StatsQuery {
                table: "incidents".to_owned(),
                measure: measure.to_owned(),
                group_by: strings(group_by),
                filters: strings(filters),
                budget: Some(v1::stats_query::Budget::Epsilon(1.0)),
                dry_run: false,
            }),
        }
        .encode_to_vec()
    };
    let seed = |name, bytes, accepted| Seed {
        target: "stats_query",
        name,
        bytes,
        accepted,
    };
    let many: Vec<String> = (0..300).map(|i| format!("severity>={i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    vec![
        seed("count", request("count", &[], &[]), true),
        seed(
            "histogram",
            request("histogram:severity", &["sector"], &["category=phishing"]),
            true,
        ),
        seed(
            "sum-by-month",
            request(
                "sum:loss_eur",
                &["month"],
                &["date>=2025-01-01", "sector!=health"],
            ),
            true,
        ),
        seed(
            "mean-by-year",
            request("mean:loss_eur", &["date:year"], &[]),
            true,
        ),
        seed(
            "hostile-injection",
            request(
                "sum:loss_eur\" FROM x; --",
                &["sector\""],
                &["sector='a' OR 1=1"],
            ),
            false,
        ),
        seed("hostile-filters", request("count", &[], &many), false),
    ]
}
