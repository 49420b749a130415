//! `audit verify --witness FILE`: a node's log against the checkpoints the
//! coordinator witnessed (a file from `fedq-coordinator witness export`).
//!
//! Every line must be countersigned by the coordinator's pinned key and name
//! this node; a file that does not is an error (it proves nothing either
//! way). Then the log must hold each witnessed hash at its seq: a log that
//! ends below a witnessed seq was rolled back, one that holds another entry
//! there forked. Lines are read one at a time and bounded before parsing.

use std::io::{BufRead, Read};
use std::path::Path;

use anyhow::{bail, Context};

use super::cli::Pins;
use super::witness::{WitnessedCheckpoint, MAX_LINE_BYTES};
use super::AuditLog;

/// What the witness file showed about the log.
#[derive(Debug)]
pub(super) struct Witnessed {
    /// Witnessed checkpoints read.
    pub(super) checked: usize,
    /// The highest witnessed seq.
    pub(super) highest: Option<u64>,
    /// The first witnessed checkpoint the log does not hold, and why.
    pub(super) problem: Option<String>,
}

impl std::fmt::Display for Witnessed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.highest {
            Some(seq) => write!(
                f,
                "witnessed: the log holds all {} checkpoints the coordinator countersigned, up to entry {seq}",
                self.checked
            ),
            None => f.write_str("witnessed: the witness file holds no checkpoint"),
        }
    }
}

/// Checks `log` against every line of `file`.
pub(super) fn check(log: &AuditLog, file: &Path, pins: &Pins) -> anyhow::Result<Witnessed> {
    let Some(node) = pins.node.as_deref() else {
        bail!("--witness checks a node's log, not {}'s", pins.party);
    };
    let Some(coordinator) = pins.coordinator else {
        bail!("federation.toml pins no audit key for the coordinator, so no countersignature can be checked");
    };
    let node_key = pins.own.unwrap_or_else(|| log.public_key());
    let input =
        std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut reader = std::io::BufReader::new(input);
    let mut outcome = Witnessed {
        checked: 0,
        highest: None,
        problem: None,
    };
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        // One byte more than allowed tells a long line from a full one.
        let read = (&mut reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            break;
        }
        if line.len() > MAX_LINE_BYTES {
            bail!("line {number} is longer than {MAX_LINE_BYTES} bytes");
        }
        let text = std::str::from_utf8(&line)
            .with_context(|| format!("line {number} is not UTF-8"))?
            .trim();
        if text.is_empty() {
            continue;
        }
        let witnessed = WitnessedCheckpoint::from_line(text)
            .map_err(|problem| anyhow::anyhow!("line {number}: {problem}"))?;
        if witnessed.node != node {
            bail!(
                "line {number} is for node {:?}, not {node:?}",
                witnessed.node
            );
        }
        if !witnessed.is_countersigned_by(&coordinator) {
            bail!("line {number}: the countersignature does not verify with the coordinator's pinned audit key");
        }
        outcome.checked += 1;
        outcome.highest = outcome.highest.max(Some(witnessed.seq));
        if outcome.problem.is_some() {
            continue;
        }
        if !witnessed.is_signed_by_node(&node_key) {
            outcome.problem = Some(format!(
                "line {number}: the coordinator witnessed entry {} signed by another key than {}'s",
                witnessed.seq, pins.party
            ));
            continue;
        }
        outcome.problem = log
            .check_witnessed(&witnessed)?
            .problem()
            .map(|problem| format!("line {number}: {problem}"));
    }
    Ok(outcome)
}
