"""The coordinator's answers as pandas DataFrames, with the same numbers
`fedq --json` prints (coordinator/client/src/stats_cli.rs).

The estimates and their 95% intervals are the coordinator's: it adds the
nodes' noisy values and noise variances per group and reports
estimate +/- 1.96 sigma (a mean by the delta method). Like the Rust client,
this package passes them on unchanged rather than recomputing them, so
both clients always print the same interval for the same answer.

Every per-node frame lists every node, with a `status` ("ok", "refused",
"unavailable", ...) and the node's `reason`: a node that did not answer is
shown, never dropped.
"""

from __future__ import annotations

import json
import math
from typing import NamedTuple

import pandas as pd

from .errors import outcome_word
from .v1 import fedq_pb2 as pb

ESTIMATE_COLUMNS = ["estimate", "ci95_low", "ci95_high", "std_dev", "variance"]
NODE_COLUMNS = ["node", "status", "reason", "mechanism", "scale", "ci95_half_width",
                "epsilon", "rho", "cost", "epoch", "epsilon_left", "rho_left", "dry_run"]
LIMIT_COLUMNS = ["node", "status", "reason", "min_epsilon", "max_epsilon", "min_rho", "max_rho"]
BUDGET_COLUMNS = ["node", "status", "reason", "epoch", "epsilon_spent", "epsilon_left", "epsilon_cap",
                  "rho_spent", "rho_left", "rho_cap", "agency", "agency_rho_spent", "agency_rho_cap",
                  "lifetime_rho_spent", "lifetime_rho_cap", "delta", "epsilon_at_delta"]


class StatsAnswer(NamedTuple):
    """A statistics answer: unpack it (`estimates, nodes = client.stats(...)`)
    or use the fields. Both frames carry `attrs["query_id"]`, the id every
    audit log records, and `attrs["dry_run"]`."""

    #: One row per group: the group-by columns, then estimate, ci95_low,
    #: ci95_high, std_dev and variance of the noise (empty for a dry run).
    estimates: pd.DataFrame
    #: One row per node: what noise it added (mechanism, scale, 95%
    #: half-width per value), what the query cost (epsilon or rho as asked;
    #: cost: the charge in the one currency, zCDP rho) and what is left
    #: (rho_left before the first cap binds; epsilon_left: the largest
    #: epsilon one pure-DP query may still have; epoch).
    nodes: pd.DataFrame

    def _repr_html_(self) -> str:
        return self.estimates._repr_html_() + self.nodes._repr_html_()


class Catalog(NamedTuple):
    """Every node's public catalog."""

    #: One row per node, table and column: privacy unit, contribution bound,
    #: column type and its public facts (values, min, max, from, to).
    columns: pd.DataFrame
    #: One row per node: the epsilon and rho one query may ask there
    #: (the upper ends are the monthly caps).
    limits: pd.DataFrame


def stats_answer(response: pb.StatsResponse) -> StatsAnswer:
    """Estimates and per-node noise and cost of a StatsResponse."""
    keys = list(response.group_columns)
    estimates = pd.DataFrame(
        [[*group.key, group.estimate, group.ci95_low, group.ci95_high, math.sqrt(group.variance), group.variance]
         for group in response.groups],
        columns=keys + ESTIMATE_COLUMNS,
    )
    # node_answers holds one answer per node whose status is ok, in order
    # (the coordinator appends both together; print_stats zips them alike).
    answers = iter(response.node_answers)
    rows = []
    for status in response.nodes:
        word = outcome_word(status.outcome)
        row = {"node": status.node, "status": word, "reason": status.reason}
        if word == "ok":
            answer = next(answers)
            row.update(mechanism=answer.mechanism, scale=answer.scale, ci95_half_width=answer.ci95_half_width,
                       epsilon=answer.epsilon_charged, rho=answer.rho_charged, cost=answer.cost_charged,
                       epoch=answer.epoch,
                       epsilon_left=answer.epsilon_left, rho_left=answer.rho_left, dry_run=answer.dry_run)
        rows.append(row)
    nodes = pd.DataFrame(rows, columns=NODE_COLUMNS)
    dry_run = any(answer.dry_run for answer in response.node_answers)
    for frame in (estimates, nodes):
        frame.attrs.update(query_id=response.query_id, dry_run=dry_run)
    return StatsAnswer(estimates, nodes)


def catalog(response: pb.FederationCatalogResponse) -> Catalog:
    """Columns and per-query limits of every node's catalog."""
    columns, limits = [], []
    for node in response.nodes:
        limits.append({"node": node.node_id, "status": "ok", "reason": "",
                       "min_epsilon": node.min_epsilon, "max_epsilon": node.max_epsilon,
                       "min_rho": node.min_rho, "max_rho": node.max_rho})
        for table in json.loads(node.catalog_json):
            for column in table["columns"]:
                facts = {k: v for k, v in column.items() if k not in ("name", "type")}
                columns.append({"node": node.node_id, "table": table["name"],
                                "privacy_unit": table["privacy_unit"],
                                "max_rows_per_unit": table["max_rows_per_unit"],
                                "column": column["name"], "type": column["type"], **facts})
    limits += _unreachable(response.unreachable)
    return Catalog(pd.DataFrame(columns), pd.DataFrame(limits, columns=LIMIT_COLUMNS))


def budget(response: pb.FederationBudgetResponse) -> pd.DataFrame:
    """Spent and left per node, as `fedq budget --json`: one currency, zCDP
    rho, against the requester's monthly cap, its agency's and its lifetime's
    (rho_left: before the first of them binds; epsilon_left: the largest
    epsilon one pure-DP query may still have), and what this epoch's spending
    amounts to as (epsilon_at_delta, delta)-DP."""
    rows = [{"node": b.node_id, "status": "ok", "reason": "", "epoch": b.epoch,
             "epsilon_spent": b.epsilon_spent, "epsilon_left": math.sqrt(2.0 * b.rho_left),
             "epsilon_cap": b.epsilon_cap, "rho_spent": b.rho_spent, "rho_left": b.rho_left,
             "rho_cap": b.rho_cap, "agency": b.agency, "agency_rho_spent": b.agency_rho_spent,
             "agency_rho_cap": b.agency_rho_cap, "lifetime_rho_spent": b.lifetime_rho_spent,
             "lifetime_rho_cap": b.lifetime_rho_cap, "delta": b.delta, "epsilon_at_delta": b.epsilon_at_delta}
            for b in response.nodes]
    return pd.DataFrame(rows + _unreachable(response.unreachable), columns=BUDGET_COLUMNS)


def _unreachable(statuses) -> list[dict]:
    return [{"node": s.node, "status": outcome_word(s.outcome), "reason": s.reason} for s in statuses]
