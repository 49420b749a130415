//! What `fedq` prints for people (and scripts, with `--json`), and the exit
//! code each answer ends with.

use fedq_client::{ItemAnswer, LookupReport};
use fedq_proto::exit::Exit;
use fedq_proto::outcome::{Disclosure, NodeOutcome};

/// How human output is printed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Look {
    pub(crate) quiet: bool,
    color: bool,
}

impl Look {
    pub(crate) fn of(cli: &crate::args::Cli) -> Self {
        use std::io::IsTerminal;
        Self {
            quiet: cli.quiet,
            color: !cli.no_color
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal(),
        }
    }

    pub(crate) fn paint(self, style: anstyle::Style, text: &str) -> String {
        if self.color {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    }

    /// A spinner on standard error while a request is out, when a person
    /// is watching (a terminal, not --quiet).
    pub(crate) fn spinner(self, message: String) -> indicatif::ProgressBar {
        use std::io::IsTerminal;
        if self.quiet || !std::io::stderr().is_terminal() {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new_spinner().with_message(message);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    }
}

/// The parties of a federation file, in its order.
pub(crate) fn print_federation(
    file: &fedq_proto::federation::FederationFile,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let out = serde_json::json!({
            "coordinator": {"address": file.coordinator.address},
            "nodes": file.nodes.iter().map(|n| serde_json::json!({
                "id": n.id, "jurisdiction": n.jurisdiction, "address": n.address,
            })).collect::<Vec<_>>(),
            "requesters": file.requesters.iter().map(|r| serde_json::json!({
                "id": r.id, "agency": r.agency, "role": r.role.as_str(),
            })).collect::<Vec<_>>(),
        });
        println!("{out}");
        return Ok(());
    }
    println!("coordinator  {}", file.coordinator.address);
    for node in &file.nodes {
        println!(
            "node         {:<16} jurisdiction {:<6} {}",
            node.id, node.jurisdiction, node.address
        );
    }
    for requester in &file.requesters {
        println!(
            "requester    {:<16} {:<13} {}",
            requester.id,
            requester.role.as_str(),
            requester.agency
        );
    }
    Ok(())
}

/// 0 when every item's answer is established, 3 when some is unknown (a node
/// did not answer), 4 when no node answered because every one refused.
pub(crate) fn lookup_exit(report: &LookupReport, allow_partial: bool, look: Look) -> Exit {
    let unknown = report
        .results
        .iter()
        .filter(|r| r.answer == ItemAnswer::Unknown)
        .count();
    let outcomes: Vec<NodeOutcome> = report.nodes.iter().map(|n| n.status).collect();
    let exit = Exit::of_answers(&outcomes, unknown > 0, allow_partial);
    match exit {
        Exit::Refused | Exit::Error => eprintln!(
            "error: no node answered: the results above say nothing about any jurisdiction"
        ),
        Exit::Partial if look.quiet => {}
        Exit::Partial => eprintln!(
            "partial answer: {unknown} item(s) unknown because a node did not answer \
             (exit 3; --allow-partial for 0)"
        ),
        Exit::Ok | Exit::Usage | Exit::Tampered => {}
    }
    exit
}

/// 0 when every node contributed, 3 when some did not (the estimates cover
/// only those that did), 4 when every node refused, 1 when none answered.
pub(crate) fn stats_exit(
    response: &fedq_proto::v1::StatsResponse,
    allow_partial: bool,
    look: Look,
) -> Exit {
    let outcomes: Vec<NodeOutcome> = response.nodes.iter().map(|n| n.outcome()).collect();
    let missing = outcomes.iter().filter(|o| **o != NodeOutcome::Ok).count();
    let exit = Exit::of_answers(&outcomes, missing > 0, allow_partial);
    match exit {
        Exit::Refused | Exit::Error => {
            eprintln!("error: no node contributed: there is no estimate")
        }
        Exit::Partial if look.quiet => {}
        Exit::Partial => eprintln!(
            "partial answer: {missing} node(s) did not contribute; the estimates cover the \
             others only (exit 3; --allow-partial for 0)"
        ),
        Exit::Ok | Exit::Usage | Exit::Tampered => {}
    }
    exit
}

pub(crate) fn print_report(report: &LookupReport, json: bool, look: Look) -> anyhow::Result<()> {
    use anstyle::{AnsiColor, Style};
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    let hit = Style::new().bold().fg_color(Some(AnsiColor::Red.into()));
    let unknown = Style::new().fg_color(Some(AnsiColor::Yellow.into()));
    for result in &report.results {
        let partial = if result.answered < result.of {
            format!(" ({} of {} nodes answered)", result.answered, result.of)
        } else {
            String::new()
        };
        let mut verdict = match result.answer {
            ItemAnswer::Hit if result.answered < result.of => look.paint(
                hit,
                &format!(
                    "HIT in at least {} jurisdiction(s){partial}",
                    result.jurisdictions
                ),
            ),
            ItemAnswer::Hit => look.paint(
                hit,
                &format!("HIT in {} jurisdiction(s)", result.jurisdictions),
            ),
            ItemAnswer::NoHit => "no hit".to_owned(),
            ItemAnswer::Unknown if result.answered == 0 => look.paint(unknown, "no answer"),
            ItemAnswer::Unknown => look.paint(unknown, &format!("unknown{partial}")),
        };
        if let Some(held_by) = result.held_by.as_ref().filter(|h| !h.is_empty()) {
            verdict.push_str(&format!(" (revealed: {})", held_by.join(", ")));
        }
        println!("{:<14} {:<40} {verdict}", result.kind, result.value);
    }
    if look.quiet {
        return Ok(());
    }
    for node in &report.nodes {
        if node.status == NodeOutcome::Ok && node.disclosure != Disclosure::NotAsked {
            println!(
                "node {}: ok, disclosure {}",
                node.node,
                node.disclosure.word()
            );
        } else if node.status == NodeOutcome::Ok {
            println!("node {}: ok", node.node);
        } else {
            println!(
                "node {}: {} ({}) - not counted above",
                node.node,
                node.status.word(),
                node.reason
            );
        }
    }
    if !report.query_ids.is_empty() {
        println!("query {}", report.query_ids.join(", "));
    }
    Ok(())
}

fn time_text(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| unix.to_string())
}

/// Deconfliction registrations, one line each (or a JSON array).
pub(crate) fn print_registrations(
    registrations: &[fedq_proto::v1::DeconflictRegistration],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let out: Vec<serde_json::Value> = registrations
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id,
                    "agency": r.agency,
                    "registered_at": r.registered_at,
                    "until": r.until,
                    "matches": r.matches,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if registrations.is_empty() {
        println!("no live deconfliction registrations");
    }
    for r in registrations {
        println!(
            "registration {}  registered {}  until {}  other agencies: {}",
            printable(&r.id),
            time_text(r.registered_at),
            time_text(r.until),
            r.matches
        );
    }
    Ok(())
}

/// Text from the coordinator, printed without control characters (a
/// hostile coordinator must not write terminal escapes).
fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// One alert: a line for people, a JSON object per line for scripts. An
/// alert that did not check out is a warning on standard error, never a
/// match.
pub(crate) fn print_alert(alert: &fedq_client::Checked, json: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let alert = match alert {
        Ok(alert) => alert,
        Err(unverified) => {
            eprintln!(
                "warning: alert {} from the coordinator does not check out ({}); not shown",
                unverified.id, unverified.reason
            );
            return Ok(());
        }
    };
    // A watch round without a new hit is no news.
    if alert.watch().is_some_and(|w| !w.hit) {
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(alert)?)?;
    } else {
        match alert {
            fedq_client::AlertReport::Deconfliction(d) => writeln!(
                out,
                "alert {} at {}: {} also works the target of your registration {} \
                 (contact {:?}, their case {:?})",
                d.id,
                d.raised_at,
                printable(&d.other_agency),
                printable(&d.registration),
                d.other.contact,
                d.other.case_reference
            )?,
            fedq_client::AlertReport::Watch(w) => writeln!(
                out,
                "alert {} at {}: watch {}: NEW HIT in {} jurisdiction(s) \
                 (of {} that imported records)",
                w.id,
                w.raised_at,
                printable(&w.watch_id),
                w.jurisdictions,
                w.evaluated_by
            )?,
        }
    }
    out.flush()?;
    Ok(())
}

/// Watches, one line each (or a JSON array).
pub(crate) fn print_watches(
    watches: &[fedq_proto::v1::WatchInfo],
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let out: Vec<serde_json::Value> = watches
            .iter()
            .map(|w| {
                serde_json::json!({
                    "id": w.watch_id,
                    "kind": fedq_client::watch::kind_name(w.kind),
                    "registered_at": w.registered_at,
                    "until": w.until,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if watches.is_empty() {
        println!("no live watches");
    }
    for w in watches {
        println!(
            "watch {}  {}  registered {}  until {}",
            printable(&w.watch_id),
            fedq_client::watch::kind_name(w.kind),
            time_text(w.registered_at),
            time_text(w.until)
        );
    }
    Ok(())
}

/// Each node's part in a watch operation.
pub(crate) fn print_watch_nodes(nodes: &[fedq_client::NodeResult]) {
    for node in nodes {
        if node.status == NodeOutcome::Ok {
            println!("  node {}: ok", node.node);
        } else {
            println!(
                "  node {}: {} ({})",
                node.node,
                node.status.word(),
                printable(&node.reason)
            );
        }
    }
}

/// Every alert (or a JSON array of the ones that check out).
pub(crate) fn print_alerts(alerts: &[fedq_client::Checked], json: bool) -> anyhow::Result<()> {
    if json {
        for unverified in alerts.iter().filter(|a| a.is_err()) {
            print_alert(unverified, true)?;
        }
        let verified: Vec<&fedq_client::AlertReport> = alerts
            .iter()
            .filter_map(|a| a.as_ref().ok())
            .filter(|a| a.watch().is_none_or(|w| w.hit))
            .collect();
        println!("{}", serde_json::to_string_pretty(&verified)?);
        return Ok(());
    }
    if !alerts
        .iter()
        .any(|a| a.as_ref().is_ok_and(|a| a.watch().is_none_or(|w| w.hit)))
    {
        println!("no alerts");
    }
    for alert in alerts {
        print_alert(alert, false)?;
    }
    Ok(())
}
