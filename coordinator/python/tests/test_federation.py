"""The Python client against a real federation (nodes fr and de, the
coordinator), side by side with the Rust `fedq` asking the same things as
the same researcher: same catalog, same charge, same noise, same refusals.

Estimates differ between two runs by their noise only, so they are compared
loosely (within 10 standard deviations of the combined noise, a margin a
correct answer misses with probability far below 1e-6); everything else
(scales, intervals' widths, charges, keys, reasons) is compared exactly.
"""

import dataclasses
import json
import math
import time
import warnings

import pytest
from federation import binary
from rust_capture import capture_stats_request, cli_args

import fedq
from fedq.config import ClientConfig
from fedq.envelope import Signer, stats_payload_hash
from fedq.query import amount, request_context, stats_query
from fedq.v1 import fedq_pb2 as pb

QUERIES = [
    {"table": "incidents", "measure": "count", "epsilon": 1.0, "purpose": "research"},
    {"table": "incidents", "measure": "histogram:severity", "group_by": "category", "epsilon": 0.5,
     "purpose": "research"},
]


@pytest.fixture(scope="module")
def rosa(federation):
    with fedq.Client.from_config(federation.client_toml("rosa")) as client:
        yield client


def spent(client) -> dict[str, float]:
    return client.budget().set_index("node")["epsilon_spent"].to_dict()


def charged(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {node: after[node] - before[node] for node in before}


def test_the_catalog_is_the_one_the_rust_client_prints(federation, rosa):
    catalog = rosa.catalog()
    rust = federation.fedq_json("rosa", "catalog")
    assert set(catalog.limits["node"]) == {"fr", "de"} == {n["node"] for n in rust["nodes"]}
    for node in rust["nodes"]:
        limits = catalog.limits.set_index("node").loc[node["node"]]
        assert {k: limits[k] for k in node["per_query"]} == node["per_query"]
        for table in node["tables"]:
            mine = catalog.columns[(catalog.columns["node"] == node["node"])
                                   & (catalog.columns["table"] == table["name"])]
            assert list(mine["column"]) == [c["name"] for c in table["columns"]]
            assert set(mine["max_rows_per_unit"]) == {table["max_rows_per_unit"]}
            category = mine.set_index("column").loc["category"]
            assert category["values"] == next(c["values"] for c in table["columns"] if c["name"] == "category")


def test_budget_is_the_one_the_rust_client_prints(federation, rosa):
    mine = rosa.budget().set_index("node")
    for node in federation.fedq_json("rosa", "budget")["nodes"]:
        for field in ("epoch", "epsilon_spent", "epsilon_left", "rho_spent", "rho_left", "agency",
                      "agency_rho_spent", "lifetime_rho_spent", "epsilon_at_delta"):
            assert mine.loc[node["node"], field] == node[field], field


@pytest.mark.parametrize("kwargs", QUERIES, ids=lambda q: q["measure"])
def test_a_query_costs_and_answers_as_the_rust_clients(federation, rosa, kwargs):
    before = spent(rosa)
    rust = federation.fedq_json("rosa", *cli_args(**kwargs))
    between = spent(rosa)
    estimates, nodes = rosa.stats(**kwargs)
    after = spent(rosa)

    # (a) The same charge, as the ledgers record it and as the answers say.
    rust_noise = {n["node"]: n for n in rust["noise"]}
    mine = nodes.set_index("node")
    assert set(mine.index) == set(rust_noise) == {"fr", "de"}
    assert (mine["status"] == "ok").all() and not nodes.attrs["dry_run"]
    for node, noise in rust_noise.items():
        assert mine.loc[node, "epsilon"] == noise["epsilon"] == pytest.approx(kwargs["epsilon"])
        assert charged(before, between)[node] == pytest.approx(noise["epsilon"], abs=1e-9)
        assert charged(between, after)[node] == pytest.approx(mine.loc[node, "epsilon"], abs=1e-9)
        # One currency: the second query leaves the first's rho_left less its cost.
        assert mine.loc[node, "rho_left"] == pytest.approx(noise["rho_left"] - noise["cost"], abs=1e-9)
        # (b) The same noise: mechanism, scale and per-value interval, exactly.
        for field in ("mechanism", "scale", "ci95_half_width", "rho", "cost", "epoch"):
            assert mine.loc[node, field] == noise[field], field

    # (b) The same groups with the same noise; estimates equal up to noise.
    assert list(estimates.columns[: len(rust["group_columns"])]) == rust["group_columns"]
    assert len(estimates) == len(rust["groups"]) > 0
    for row, group in zip(estimates.itertuples(index=False), rust["groups"]):
        assert list(row[: len(group["key"])]) == group["key"]
        assert row.std_dev == group["std_dev"] > 0
        assert row.ci95_high - row.ci95_low == pytest.approx(group["ci95"][1] - group["ci95"][0], rel=1e-12)
        assert row.ci95_high - row.ci95_low == pytest.approx(2 * 1.96 * row.std_dev, rel=1e-12)
        assert abs(row.estimate - group["estimate"]) <= 10 * row.std_dev


def test_a_dry_run_says_the_cost_and_spends_nothing(rosa):
    before = spent(rosa)
    estimates, nodes = rosa.stats("incidents", "count", group_by="category,month", epsilon=0.1,
                                  purpose="research", dry_run=True)
    assert spent(rosa) == before
    assert estimates.empty and list(estimates.columns[:2]) == ["category", "month"]
    assert nodes.attrs["dry_run"] and nodes["dry_run"].all()
    assert list(nodes["epsilon"]) == [0.1, 0.1]


def test_the_envelope_is_the_rust_clients_byte_for_byte(federation):
    """With rosa's own key and this build of `fedq`: what it signs for a
    query is what this package signs (up to time and nonce)."""
    kwargs = {"table": "incidents", "measure": "mean:loss_eur", "group_by": "sector", "filters": ("severity>=3",),
              "rho": 0.01, "purpose": "threat-report", "case": "C-7"}
    sent = capture_stats_request(binary("fedq"), federation.dir, "rosa", cli_args(**kwargs))
    query = stats_query(**{k: v for k, v in kwargs.items() if k not in ("purpose", "case")})
    assert query == sent.query
    context = request_context(kwargs["purpose"], kwargs["case"])
    signer = Signer(ClientConfig.load(federation.client_toml("rosa")))
    rust = json.loads(sent.context.envelope.envelope)
    mine = signer.envelope("stats", context, stats_payload_hash(query))
    signed = signer.seal(dataclasses.replace(mine, issued_at=rust["issued_at"], nonce=rust["nonce"]))
    assert signed == sent.context.envelope


def test_an_investigators_statistics_are_refused_by_role(federation):
    with fedq.Client.from_config(federation.client_toml("alice")) as alice:
        with pytest.raises(fedq.Refused, match="rule role") as refused:
            alice.stats("incidents", "count", epsilon=1, purpose="research")
    rust = federation.fedq_json("alice", *cli_args("incidents", "count", epsilon=1.0, purpose="research"),
                                exits=(4,))
    assert refused.value.reasons == {n["node"]: n["reason"] for n in rust["nodes"]}


def test_a_purpose_not_admitted_is_refused(rosa):
    with pytest.raises(fedq.Refused, match="rule purpose"):
        rosa.stats("incidents", "count", epsilon=1, purpose="marketing")


def test_an_exhausted_budget_is_refused_with_the_numbers(rosa):
    rosa.stats("incidents", "count", epsilon=1, purpose="research")
    budget = rosa.budget().set_index("node")
    left, cap = budget["rho_left"], budget["rho_cap"]
    asked = round(max(budget["epsilon_left"]) + 0.5, 2)
    before = spent(rosa)
    with pytest.raises(fedq.Refused, match="privacy budget exhausted") as refused:
        rosa.stats("incidents", "count", epsilon=asked, purpose="research")
    for node, reason in refused.value.reasons.items():
        assert f"(pure-DP epsilon {amount(asked)}), rho {amount(left[node])} of {amount(cap[node])} is left" in reason
    assert spent(rosa) == before


def test_an_unknown_column_is_an_invalid_query(rosa):
    with pytest.raises(fedq.InvalidQuery, match="unknown column sectr"):
        rosa.stats("incidents", "count", group_by="sectr", epsilon=0.1, purpose="research")


def test_a_budget_no_node_accepts_is_refused_before_signing(rosa):
    with pytest.raises(fedq.InvalidQuery, match=r"above every node's monthly cap \(fr 2, de 2\)"):
        rosa.stats("incidents", "count", epsilon=11, purpose="research")


def test_a_tampered_or_moved_envelope_is_refused(rosa):
    query = stats_query("incidents", "count", epsilon=1.0)
    context = request_context("research")
    context.envelope.CopyFrom(rosa._signer.sign("stats", context, stats_payload_hash(query)))
    before = spent(rosa)
    # Bytes changed after signing: the coordinator finds the signature is not rosa's.
    tampered = pb.RequestContext()
    tampered.CopyFrom(context)
    tampered.envelope.envelope = context.envelope.envelope.replace(b'"research"', b'"researcH"')
    with pytest.raises(fedq.Refused, match="not signed by the caller"):
        rosa._call(rosa._stub.Stats, pb.StatsRequest(context=tampered, query=query))
    # A valid envelope moved onto another query: every node refuses it.
    other = stats_query("incidents", "count", epsilon=2.0)
    response = rosa._call(rosa._stub.Stats, pb.StatsRequest(context=context, query=other))
    error = fedq.errors.from_node_statuses(response.nodes)
    assert isinstance(error, fedq.Refused) and "does not match the query" in str(error)
    assert spent(rosa) == before


def test_a_node_down_gives_a_partial_answer_with_a_warning(federation, rosa):
    federation.stop("de")
    try:
        with pytest.warns(fedq.PartialAnswer, match="de: unavailable"):
            estimates, nodes = rosa.stats("incidents", "count", epsilon=0.1, purpose="research")
        assert list(nodes.set_index("node")["status"].loc[["fr", "de"]]) == ["ok", "unavailable"]
        assert math.isnan(nodes.set_index("node").loc["de", "scale"])
        assert len(estimates) == 1
    finally:
        federation.serve("de")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rosa.stats("incidents", "count", epsilon=0.1, purpose="research")


def test_a_coordinator_down_is_unreachable_and_found_again_once_back(federation, rosa):
    federation.stop("coordinator")
    try:
        with pytest.raises(fedq.Unreachable, match="cannot reach the coordinator"):
            rosa.budget()
    finally:
        federation.serve("coordinator")
    deadline = time.monotonic() + 5  # the client's reconnection backoff is at most a second
    while True:
        try:
            assert set(rosa.budget()["status"]) == {"ok"}
            return
        except fedq.Unreachable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
