"""A researcher's arguments as the StatsQuery `fedq stats` would send, and
the checks the command line makes before it signs anything
(coordinator/client/src/bin/fedq/{main,args}.rs, stats_cli.rs).

The same arguments must give the same query, and so the same payload hash
and the same charge, whichever client sends it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from .errors import InvalidQuery
from .v1 import fedq_pb2 as pb


def stats_query(table: str, measure: str, *, group_by: str | Iterable[str] = (),
                filters: str | Iterable[str] = (), epsilon: float | None = None,
                rho: float | None = None, dry_run: bool = False) -> pb.StatsQuery:
    """The StatsQuery; `group_by` may be "category,month" as on the command
    line (split at commas and trimmed) or a list; a single filter may be a
    string."""
    if (epsilon is None) == (rho is None):
        raise InvalidQuery("give exactly one of epsilon (pure DP) or rho (zCDP)")
    name, value = ("epsilon", epsilon) if epsilon is not None else ("rho", rho)
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise InvalidQuery(f"{name}: must be a finite number greater than zero")
    if isinstance(group_by, str):
        group_by = [column.strip() for column in group_by.split(",")]
    if isinstance(filters, str):
        filters = [filters]
    return pb.StatsQuery(table=table, measure=measure, group_by=list(group_by), filters=list(filters),
                         dry_run=dry_run, **{name: value})


def request_context(purpose: str, case: str = "", legal_basis: str | None = None) -> pb.RequestContext:
    """Why the query is asked, as `fedq stats` fills it (its envelope is
    signed into it later). The purpose must be something a person wrote,
    not blank: policies and audit logs read it. An absent legal basis is
    left empty here; the envelope then states client.toml's."""
    if not purpose.strip():
        raise InvalidQuery("purpose: must not be empty")
    return pb.RequestContext(purpose=purpose, case_reference=case, legal_basis=legal_basis or "")


def check_budget(catalog: pb.FederationCatalogResponse, query: pb.StatsQuery) -> None:
    """stats_cli::check_budget: refuses an epsilon or rho that no node would
    accept (below every node's minimum, or above every node's monthly cap),
    with the numbers, before the query is signed and sent."""
    name = query.WhichOneof("budget")
    asked = getattr(query, name)
    ranges = {c.node_id: (getattr(c, f"min_{name}"), getattr(c, f"max_{name}")) for c in catalog.nodes}
    if not ranges:
        return
    if all(asked < low for low, _ in ranges.values()):
        listed = ", ".join(f"{node} {amount(low)}" for node, (low, _) in ranges.items())
        raise InvalidQuery(f"{name} {amount(asked)} is below every node's minimum per query ({listed}): "
                           "the answer would be noise")
    if all(asked > high for _, high in ranges.values()):
        listed = ", ".join(f"{node} {amount(high)}" for node, (_, high) in ranges.items())
        raise InvalidQuery(f"{name} {amount(asked)} is above every node's monthly cap ({listed})")


def amount(value: float) -> str:
    """fedq_crypto::dp::amount: at most four decimals, trailing zeros trimmed;
    a tiny positive amount in scientific notation (Rust's `{:.1e}`: 5.0e-5)."""
    trimmed = f"{value:.4f}".rstrip("0").rstrip(".")
    if trimmed == "0" and value > 0:
        mantissa, exponent = f"{value:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return trimmed
