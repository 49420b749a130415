//! Rapid alerts in the demo: alice watches a passport nobody holds yet; node
//! de then imports a record with it, and alice's alert names one
//! jurisdiction, found within seconds of the import.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use fedq_client::{LookupInput, Requester, WatchOptions};
use fedq_crypto::IdentifierKind;

/// Watches, imports at de, waits for the alert.
pub(super) async fn watch_fires(alice: &mut Requester, dir: &Path) -> anyhow::Result<()> {
    println!(
        "\nrapid alerts: alice watches passport NL:WATCH2026 for 30 days; nobody holds it yet"
    );
    let added = alice
        .watch_add(
            &LookupInput {
                kind: IdentifierKind::Passport,
                value: "NL:WATCH2026".to_owned(),
            },
            &WatchOptions {
                purpose: "fraud".to_owned(),
                case_reference: "DA-2026-40".to_owned(),
                legal_basis: None,
                until: chrono::Utc::now().timestamp() + 30 * 86_400,
            },
        )
        .await?;
    if added.watch_id.is_empty() {
        bail!("no node took the watch: {:?}", added.nodes);
    }
    println!(
        "  watch {} registered at {} node(s): each keeps the encrypted tag, not the number",
        added.watch_id,
        added.nodes.len()
    );
    let after = alice
        .alerts(0)
        .await?
        .iter()
        .filter_map(|a| a.as_ref().ok().map(fedq_client::AlertReport::id))
        .max()
        .unwrap_or(0);
    let config = fedq_node::NodeConfig::load(&dir.join("nodes").join("de").join("node.toml"))?;
    let csv = "kind,value,record_id\npassport,nld watch-2026,DE-NEW-1\n";
    let imported = Instant::now();
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        let mut store = fedq_node::store::Store::open(&config.store)?;
        fedq_node::import::import_identifiers(&mut store, csv.as_bytes(), |_| {})?;
        Ok(())
    })?;
    println!("  node de imports one new record holding it (spelled \"nld watch-2026\")");
    loop {
        let hit = alice
            .alerts(after)
            .await?
            .into_iter()
            .filter_map(Result::ok)
            .filter_map(|a| a.watch().cloned())
            .find(|w| w.watch_id == added.watch_id && w.hit);
        if let Some(hit) = hit {
            println!(
                "  alice's alert {}: NEW HIT in {} jurisdiction(s), {:.1} s after the import \
                 (the nodes evaluated the import against every watch without learning which hit)",
                hit.id,
                hit.jurisdictions,
                imported.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if imported.elapsed() > Duration::from_secs(30) {
            bail!("no alert 30 s after the import");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
