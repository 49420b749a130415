//! Judging heads against what was witnessed, and the store's rows.

use super::*;

fn alarm(kind: AlarmKind, seq: u64) -> Alarm {
    Alarm {
        node: "fr".to_owned(),
        kind,
        seq,
        hash: "ab".repeat(32),
        witnessed_seq: 5,
        witnessed_hash: "cd".repeat(32),
        at: "2026-01-01T00:00:00+00:00".to_owned(),
    }
}

fn witnessed(node: &str, seq: u64) -> WitnessedCheckpoint {
    WitnessedCheckpoint {
        node: node.to_owned(),
        seq,
        hash: format!("{seq:064x}"),
        node_signature: "00".repeat(64),
        witnessed_at: "2026-01-01T00:00:00.000000000Z".to_owned(),
        countersignature: "11".repeat(64),
    }
}

#[test]
fn a_lower_seq_is_a_rollback_and_another_hash_at_the_same_seq_a_fork() {
    let highest = (5, "h5".to_owned());
    let cases = [
        (None, 3, "h3", Verdict::New),
        (Some(&highest), 6, "h6", Verdict::New),
        (Some(&highest), 5, "h5", Verdict::Seen),
        (Some(&highest), 5, "other", Verdict::Alarm(AlarmKind::Fork)),
        (Some(&highest), 4, "h4", Verdict::Alarm(AlarmKind::Rollback)),
        (
            Some(&highest),
            0,
            "genesis",
            Verdict::Alarm(AlarmKind::Rollback),
        ),
    ];
    for (highest, seq, hash, verdict) in cases {
        assert_eq!(judge(highest, seq, hash), verdict, "{seq} {hash}");
    }
}

/// On SQLite and, when a server is named, PostgreSQL.
#[test]
fn witnessed_checkpoints_export_in_seq_order_per_node() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for location in fedq_db::testing::locations(dir.path(), "keys.db") {
        witnessed_checkpoints_export_on(&location)?;
    }
    Ok(())
}

fn witnessed_checkpoints_export_on(location: &fedq_db::Location) -> anyhow::Result<()> {
    let store = WitnessStore::open(location)?;
    assert_eq!(store.highest("fr")?, None);
    for (node, seq) in [("fr", 2), ("de", 9), ("fr", 7), ("fr", 7)] {
        store.keep(&witnessed(node, seq))?;
    }
    assert_eq!(store.highest("fr")?, Some((7, format!("{:064x}", 7))));
    let mut out = Vec::new();
    assert_eq!(store.export("fr", &mut out)?, 2);
    let lines: Vec<WitnessedCheckpoint> = String::from_utf8(out)?
        .lines()
        .map(WitnessedCheckpoint::from_line)
        .collect::<Result<_, _>>()
        .map_err(anyhow::Error::msg)?;
    assert_eq!(lines, [witnessed("fr", 2), witnessed("fr", 7)]);
    Ok(())
}

/// On SQLite and, when a server is named, PostgreSQL.
#[test]
fn an_alarm_is_kept_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    for location in fedq_db::testing::locations(dir.path(), "keys.db") {
        an_alarm_is_kept_once_on(&location)?;
    }
    Ok(())
}

fn an_alarm_is_kept_once_on(path: &fedq_db::Location) -> anyhow::Result<()> {
    let store = WitnessStore::open(path)?;
    assert!(store.raise(&alarm(AlarmKind::Rollback, 3))?);
    assert!(
        !store.raise(&alarm(AlarmKind::Rollback, 3))?,
        "the same again"
    );
    assert!(store.raise(&alarm(AlarmKind::Fork, 5))?);
    drop(store);
    let read = WitnessStore::open_read_only(path)?;
    let kept = read.alarms(None)?;
    assert_eq!(
        kept,
        [alarm(AlarmKind::Rollback, 3), alarm(AlarmKind::Fork, 5)]
    );
    assert!(read.alarms(Some("de"))?.is_empty());
    assert!(kept[0].describe().starts_with("rollback: node fr"));
    Ok(())
}
