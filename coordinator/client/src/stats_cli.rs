//! Printing statistics, catalogs and budgets for people and scripts.

use fedq_crypto::dp::{amount, epsilon_within};
use fedq_proto::outcome::NodeOutcome;
use fedq_proto::v1;
use serde_json::{json, Value};

fn node_statuses(nodes: &[v1::NodeStatus]) -> Value {
    Value::Array(
        nodes
            .iter()
            .map(|n| {
                let mut v = json!({"node": n.node, "status": n.outcome().word()});
                if !n.reason.is_empty() {
                    v["reason"] = json!(n.reason);
                }
                v
            })
            .collect(),
    )
}

/// What one node's answer cost (or, in a dry run, would cost) in the
/// measure that was asked and in the one currency, and what is left.
fn cost_line(answer: &v1::NodeStatsResponse) -> String {
    let asked = if answer.epsilon_charged > 0.0 {
        format!(
            "epsilon {} (rho {})",
            amount(answer.epsilon_charged),
            amount(answer.cost_charged)
        )
    } else {
        format!("rho {}", amount(answer.rho_charged))
    };
    let (costs, leaves) = if answer.dry_run {
        ("would cost", "would leave")
    } else {
        ("cost", "left")
    };
    format!(
        "{costs} {asked}, {leaves} rho {} this epoch ({}; at most epsilon {} in one query)",
        amount(answer.rho_left),
        answer.epoch,
        amount(answer.epsilon_left)
    )
}

/// Prints a combined statistics answer, or what a dry run would do.
pub fn print_stats(response: &v1::StatsResponse, as_json: bool, quiet: bool) -> anyhow::Result<()> {
    let answered: Vec<(&v1::NodeStatsResponse, &v1::NodeStatus)> = response
        .node_answers
        .iter()
        .zip(
            response
                .nodes
                .iter()
                .filter(|n| n.outcome() == NodeOutcome::Ok),
        )
        .collect();
    let dry_run = answered.iter().any(|(a, _)| a.dry_run);
    if as_json {
        let noise: Vec<Value> = answered
            .iter()
            .map(|(a, n)| json!({"node": n.node, "scale": a.scale, "mechanism": a.mechanism, "epsilon": a.epsilon_charged, "rho": a.rho_charged, "cost": a.cost_charged, "ci95_half_width": a.ci95_half_width, "epoch": a.epoch, "epsilon_left": a.epsilon_left, "rho_left": a.rho_left}))
            .collect();
        let groups: Vec<Value> = response
            .groups
            .iter()
            .map(|g| json!({"key": g.key, "estimate": g.estimate, "ci95": [g.ci95_low, g.ci95_high], "std_dev": g.variance.sqrt()}))
            .collect();
        let out = json!({"query_id": response.query_id, "dry_run": dry_run, "group_columns": response.group_columns, "groups": groups, "noise": noise, "nodes": node_statuses(&response.nodes)});
        println!("{out}");
        return Ok(());
    }
    if dry_run {
        println!(
            "dry run (query {}): nothing was read or charged; per node, the noise and cost the query would have",
            response.query_id
        );
    } else {
        let header = if response.group_columns.is_empty() {
            "total".to_owned()
        } else {
            response.group_columns.join(" / ")
        };
        if !quiet {
            println!("query {}", response.query_id);
        }
        println!("{header:<32} {:>14}  95% interval", "estimate");
        for g in &response.groups {
            let key = if g.key.is_empty() {
                "all".to_owned()
            } else {
                g.key.join(" / ")
            };
            println!(
                "{key:<32} {:>14.1}  [{:.1}, {:.1}]",
                g.estimate, g.ci95_low, g.ci95_high
            );
        }
    }
    if quiet {
        return Ok(());
    }
    for (answer, node) in &answered {
        let verb = if answer.dry_run {
            "would add"
        } else {
            "contributed"
        };
        println!(
            "node {}: {verb} {} noise, scale {:.3}, 95% interval ±{:.1} per value; {}",
            node.node,
            answer.mechanism,
            answer.scale,
            answer.ci95_half_width,
            cost_line(answer)
        );
    }
    for n in response
        .nodes
        .iter()
        .filter(|n| n.outcome() != NodeOutcome::Ok)
    {
        println!(
            "node {}: {} ({}) - not counted",
            n.node,
            n.outcome().word(),
            n.reason
        );
    }
    Ok(())
}

/// A node's (least, most) per query, of the measure asked.
type PerQuery = fn(&v1::CatalogResponse) -> (f64, f64);

/// Refuses a privacy parameter that no node of `catalog` would accept (below
/// every node's minimum, or above every node's monthly cap), with the
/// numbers, before the query is signed and sent.
pub fn check_budget(
    catalog: &v1::FederationCatalogResponse,
    budget: &v1::stats_query::Budget,
) -> Result<(), String> {
    let (name, asked, range): (&str, f64, PerQuery) = match budget {
        v1::stats_query::Budget::Epsilon(e) => ("epsilon", *e, |c| (c.min_epsilon, c.max_epsilon)),
        v1::stats_query::Budget::Rho(r) => ("rho", *r, |c| (c.min_rho, c.max_rho)),
    };
    let nodes = &catalog.nodes;
    if nodes.is_empty() {
        return Ok(());
    }
    let listed = |pick: fn((f64, f64)) -> f64| {
        nodes
            .iter()
            .map(|c| format!("{} {}", c.node_id, amount(pick(range(c)))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if nodes.iter().all(|c| asked < range(c).0) {
        return Err(format!(
            "{name} {} is below every node's minimum per query ({}): the answer would be noise",
            amount(asked),
            listed(|r| r.0)
        ));
    }
    if nodes.iter().all(|c| asked > range(c).1) {
        return Err(format!(
            "{name} {} is above every node's monthly cap ({})",
            amount(asked),
            listed(|r| r.1)
        ));
    }
    Ok(())
}

/// Prints which parties answer, in the federation file's order; returns each
/// node's outcome in that order.
pub fn print_status(
    coordinator: &str,
    nodes: &[String],
    info: &v1::FederationInfoResponse,
    as_json: bool,
) -> anyhow::Result<Vec<NodeOutcome>> {
    let mut outcomes = Vec::with_capacity(nodes.len());
    let rows: Vec<Value> = nodes
        .iter()
        .map(|node| {
            if let Some(found) = info.nodes.iter().find(|n| &n.node_id == node) {
                outcomes.push(NodeOutcome::Ok);
                json!({"node": node, "status": "ok", "jurisdiction": found.jurisdiction})
            } else if let Some(down) = info.unreachable.iter().find(|n| &n.node == node) {
                outcomes.push(down.outcome());
                json!({"node": node, "status": down.outcome().word(), "reason": down.reason})
            } else {
                outcomes.push(NodeOutcome::Error);
                json!({"node": node, "status": "unknown", "reason": "the coordinator does not list this node"})
            }
        })
        .collect();
    let up = rows.iter().filter(|r| r["status"] == "ok").count();
    if as_json {
        println!(
            "{}",
            json!({"coordinator": {"address": coordinator, "status": "ok"}, "nodes": rows})
        );
        return Ok(outcomes);
    }
    println!("coordinator {coordinator}: ok");
    for row in &rows {
        let node = row["node"].as_str().unwrap_or("");
        match row["reason"].as_str() {
            Some(reason) => println!(
                "node {node}: {} ({reason})",
                row["status"].as_str().unwrap_or("")
            ),
            None => println!("node {node}: ok"),
        }
    }
    println!("{up} of {} nodes answer", rows.len());
    Ok(outcomes)
}

/// Prints every node's catalog.
pub fn print_catalog(
    response: &v1::FederationCatalogResponse,
    as_json: bool,
) -> anyhow::Result<()> {
    let nodes: Vec<Value> = response
        .nodes
        .iter()
        .map(|c| Ok(json!({"node": c.node_id, "tables": serde_json::from_str::<Value>(&c.catalog_json)?, "per_query": {"min_epsilon": c.min_epsilon, "max_epsilon": c.max_epsilon, "min_rho": c.min_rho, "max_rho": c.max_rho}})))
        .collect::<anyhow::Result<_>>()?;
    if as_json {
        println!(
            "{}",
            json!({"nodes": nodes, "unreachable": node_statuses(&response.unreachable)})
        );
        return Ok(());
    }
    for (node, limits) in nodes.iter().zip(&response.nodes) {
        println!(
            "node {}: per query epsilon {} to {}, rho {} to {} (the upper ends are the monthly caps)",
            node["node"].as_str().unwrap_or(""),
            amount(limits.min_epsilon),
            amount(limits.max_epsilon),
            amount(limits.min_rho),
            amount(limits.max_rho)
        );
        for table in node["tables"].as_array().into_iter().flatten() {
            println!(
                "  table {} (privacy unit {}, at most {} rows per unit)",
                table["name"].as_str().unwrap_or(""),
                table["privacy_unit"].as_str().unwrap_or(""),
                table["max_rows_per_unit"]
            );
            for column in table["columns"].as_array().into_iter().flatten() {
                let mut detail = column.clone();
                if let Some(obj) = detail.as_object_mut() {
                    obj.remove("name");
                    obj.remove("type");
                }
                println!(
                    "    {:<14} {:<10} {}",
                    column["name"].as_str().unwrap_or(""),
                    column["type"].as_str().unwrap_or(""),
                    detail
                );
            }
        }
    }
    for n in &response.unreachable {
        println!("node {}: {} ({})", n.node, n.outcome().word(), n.reason);
    }
    Ok(())
}

/// Prints the budget at every node: one currency (zCDP rho) against three
/// caps, and what this epoch's spending amounts to as (epsilon, delta)-DP.
pub fn print_budget(response: &v1::FederationBudgetResponse, as_json: bool) -> anyhow::Result<()> {
    let nodes: Vec<Value> = response
        .nodes
        .iter()
        .map(|b| {
            json!({
                "node": b.node_id,
                "epoch": b.epoch,
                "epsilon_spent": b.epsilon_spent,
                "epsilon_left": epsilon_within(b.rho_left),
                "rho_spent": b.rho_spent,
                "rho_left": b.rho_left,
                "rho_cap": b.rho_cap,
                "agency": b.agency,
                "agency_rho_spent": b.agency_rho_spent,
                "agency_rho_cap": b.agency_rho_cap,
                "lifetime_rho_spent": b.lifetime_rho_spent,
                "lifetime_rho_cap": b.lifetime_rho_cap,
                "delta": b.delta,
                "epsilon_at_delta": b.epsilon_at_delta,
            })
        })
        .collect();
    if as_json {
        println!(
            "{}",
            json!({"nodes": nodes, "unreachable": node_statuses(&response.unreachable)})
        );
        return Ok(());
    }
    for b in &response.nodes {
        println!(
            "node {} ({}): rho {} spent of {}, {} left (at most epsilon {} in one query); \
             agency {}: {} of {}; lifetime: {} of {}; spent so far is ({}, {})-DP",
            b.node_id,
            b.epoch,
            amount(b.rho_spent),
            amount(b.rho_cap),
            amount(b.rho_left),
            amount(epsilon_within(b.rho_left)),
            b.agency,
            amount(b.agency_rho_spent),
            amount(b.agency_rho_cap),
            amount(b.lifetime_rho_spent),
            amount(b.lifetime_rho_cap),
            amount(b.epsilon_at_delta),
            b.delta
        );
    }
    for n in &response.unreachable {
        println!("node {}: {} ({})", n.node, n.outcome().word(), n.reason);
    }
    Ok(())
}
