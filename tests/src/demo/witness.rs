//! The demo's last act: the coordinator witnesses every node's signed audit
//! head; fr's operator then rolls fr's log back to an older head that fr
//! itself signed (which fr's own check accepts), and the witness catches it.

use std::path::Path;

use anyhow::{bail, Context};
use fedq_client::Requester;
use fedq_coordinator::config::CoordinatorConfig;
use fedq_coordinator::service::{CoordinatorService, Witnessed};
use fedq_coordinator::witness::WitnessStore;

/// One witness round, printed per node; returns fr's outcome.
async fn round(coordinator: &CoordinatorService) -> anyhow::Result<Witnessed> {
    let mut fr = None;
    for (node, outcome) in coordinator.witness_round().await {
        let said = match &outcome {
            Witnessed::Countersigned(seq) => format!("entry {seq} witnessed, countersigned"),
            Witnessed::Unchanged(seq) => format!("entry {seq}, as witnessed before"),
            Witnessed::Refused(kind) => format!("{kind} refused, kept as an alarm"),
            Witnessed::Skipped(why) => format!("not witnessed ({why})"),
        };
        println!("  node {node}: {said}");
        if node == "fr" {
            fr = Some(outcome);
        }
    }
    fr.context("node fr was not witnessed")
}

/// Witnessing, then a rollback of fr's log caught.
pub(super) async fn witness(investigator: &mut Requester, dir: &Path) -> anyhow::Result<()> {
    let config = CoordinatorConfig::load(&dir.join("coordinator").join("coordinator.toml"))?;
    let key_store = config.key_store.clone();
    // Another handle on the serving coordinator's stores and key.
    let coordinator = tokio::task::block_in_place(|| CoordinatorService::new(config))?;
    let node = fedq_node::NodeConfig::load(&dir.join("nodes").join("fr").join("node.toml"))?;
    let older = std::fs::read_to_string(&node.audit_checkpoint)?;
    let older_seq = node.open_audit_read_only()?.signed_head()?.seq;

    // One more audited request (refused by role), so fr signs a newer head.
    let (context, query) = super::incidents_query();
    investigator.stats(context, query).await?;
    println!("\nwitnessed audit checkpoints (each node's signed head, countersigned by the coordinator):");
    // The serving coordinator's own round may have been first.
    let (Witnessed::Countersigned(witnessed) | Witnessed::Unchanged(witnessed)) =
        round(&coordinator).await?
    else {
        bail!("fr's newest head was not witnessed");
    };

    println!("fr's operator deletes entry {witnessed} and puts back fr's own checkpoint of entry {older_seq}:");
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        let fedq_node::config::StoreLocation::Sqlite(db) = &node.store else {
            anyhow::bail!("the demo's nodes keep their store in SQLite files");
        };
        let conn = rusqlite::Connection::open(db)?;
        conn.execute_batch("DROP TRIGGER IF EXISTS audit_log_no_delete;")?;
        conn.execute("DELETE FROM audit_log WHERE seq > ?1", [older_seq as i64])?;
        std::fs::write(&node.audit_checkpoint, &older)?;
        Ok(())
    })?;
    let log = node.open_audit_read_only()?;
    let own = tokio::task::block_in_place(|| log.verify())?;
    println!(
        "  fedq-node audit verify: {} on its own (fr signed that head)",
        if own.is_ok() { "ok" } else { "fails" }
    );
    let Witnessed::Refused(_) = round(&coordinator).await? else {
        bail!("the rollback was not refused");
    };
    let mut lines = Vec::new();
    WitnessStore::open_read_only(&key_store)?.export("fr", &mut lines)?;
    for line in String::from_utf8(lines)?.lines() {
        let witnessed = fedq_audit::witness::WitnessedCheckpoint::from_line(line)
            .map_err(anyhow::Error::msg)?;
        if let Some(problem) = log.check_witnessed(&witnessed)?.problem() {
            println!("  fedq-node audit verify --witness: exit 5, {problem}");
            return Ok(());
        }
    }
    bail!("the witness file did not catch the rollback")
}
