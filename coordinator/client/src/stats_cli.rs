//! Printing statistics, catalogs and budgets for people and scripts.

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

/// Prints a combined statistics answer.
pub fn print_stats(response: &v1::StatsResponse, as_json: bool) -> anyhow::Result<()> {
    let scales: Vec<Value> = response
        .node_answers
        .iter()
        .zip(response.nodes.iter().filter(|n| n.outcome() == NodeOutcome::Ok))
        .map(|(a, n)| json!({"node": n.node, "scale": a.scale, "mechanism": a.mechanism, "epsilon": a.epsilon_charged, "rho": a.rho_charged}))
        .collect();
    let groups: Vec<Value> = response
        .groups
        .iter()
        .map(|g| json!({"key": g.key, "estimate": g.estimate, "ci95": [g.ci95_low, g.ci95_high], "std_dev": g.variance.sqrt()}))
        .collect();
    if as_json {
        let out = json!({"group_columns": response.group_columns, "groups": groups, "noise": scales, "nodes": node_statuses(&response.nodes)});
        println!("{out}");
        return Ok(());
    }
    let header = if response.group_columns.is_empty() {
        "total".to_owned()
    } else {
        response.group_columns.join(" / ")
    };
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
    for s in &scales {
        println!(
            "node {}: contributed ({}, scale {:.3})",
            s["node"].as_str().unwrap_or(""),
            s["mechanism"].as_str().unwrap_or(""),
            s["scale"].as_f64().unwrap_or(0.0)
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
        .map(|c| Ok(json!({"node": c.node_id, "tables": serde_json::from_str::<Value>(&c.catalog_json)?})))
        .collect::<anyhow::Result<_>>()?;
    if as_json {
        println!(
            "{}",
            json!({"nodes": nodes, "unreachable": node_statuses(&response.unreachable)})
        );
        return Ok(());
    }
    for node in &nodes {
        println!("node {}:", node["node"].as_str().unwrap_or(""));
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

/// Prints the budget at every node.
pub fn print_budget(response: &v1::FederationBudgetResponse, as_json: bool) -> anyhow::Result<()> {
    let nodes: Vec<Value> = response
        .nodes
        .iter()
        .map(|b| json!({"node": b.node_id, "epoch": b.epoch, "epsilon_spent": b.epsilon_spent, "epsilon_left": (b.epsilon_cap - b.epsilon_spent).max(0.0), "rho_spent": b.rho_spent, "rho_left": (b.rho_cap - b.rho_spent).max(0.0)}))
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
            "node {} ({}): epsilon {:.3} spent, {:.3} left; rho {:.3} spent, {:.3} left",
            b.node_id,
            b.epoch,
            b.epsilon_spent,
            (b.epsilon_cap - b.epsilon_spent).max(0.0),
            b.rho_spent,
            (b.rho_cap - b.rho_spent).max(0.0)
        );
    }
    for n in &response.unreachable {
        println!("node {}: {} ({})", n.node, n.outcome().word(), n.reason);
    }
    Ok(())
}
