"""What can go wrong, as Python exceptions that carry each party's reason.

A request can fail at the coordinator (a gRPC status for the whole call) or
at the nodes: the coordinator then answers normally and lists, per node, an
outcome and the node's reason (`NodeStatus`). Both end up here, so that a
notebook user catches `fedq.Refused` whether the policy, the budget or a
signature check said no, and reads the numbers in `str(error)`.
"""

from __future__ import annotations

import grpc

from .v1 import fedq_pb2 as pb


def outcome_word(outcome: int) -> str:
    """The word `fedq --json` prints for a NodeOutcome (fedq_proto::outcome):
    the enum name's tail, lowercase; unspecified or unknown is "error"."""
    known = outcome in pb.NodeOutcome.values()
    word = pb.NodeOutcome.Name(outcome).removeprefix("NODE_OUTCOME_").lower() if known else "error"
    return "error" if word == "unspecified" else word


class FedqError(Exception):
    """Base of this package's errors. `reasons` maps each party (a node id,
    or "coordinator") to why it did not answer."""

    def __init__(self, message: str, reasons: dict[str, str] | None = None):
        super().__init__(message)
        self.reasons = dict(reasons or {})


class ConfigError(FedqError):
    """client.toml, the federation file or a key is unusable; nothing was sent."""


class Unreachable(FedqError):
    """The coordinator could not be reached, or did not answer in time."""


class Refused(FedqError):
    """Refused by policy (role, purpose, table, agency...), by the privacy
    budget (the reason gives the cost and what is left), by a rate limit or
    by the envelope check; nothing was answered or charged."""


class InvalidQuery(FedqError, ValueError):
    """The query itself is wrong (unknown column, bad measure or filter, a
    budget outside every node's range); nothing was charged."""


class NoAnswer(FedqError):
    """No node answered, for some other reason (unavailable, timed out, error)."""


class PartialAnswer(UserWarning):
    """Some node did not contribute: the estimates cover the others only."""


_CODE_ERRORS = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidQuery,
    grpc.StatusCode.OUT_OF_RANGE: InvalidQuery,
    grpc.StatusCode.PERMISSION_DENIED: Refused,
    grpc.StatusCode.UNAUTHENTICATED: Refused,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Refused,
    grpc.StatusCode.FAILED_PRECONDITION: Refused,
    grpc.StatusCode.UNAVAILABLE: Unreachable,
    grpc.StatusCode.DEADLINE_EXCEEDED: Unreachable,
}


def from_rpc_error(error: grpc.RpcError, address: str) -> FedqError:
    """The exception for a gRPC status the coordinator (or the transport) returned."""
    code, details = error.code(), error.details() or ""
    kind = _CODE_ERRORS.get(code, FedqError)
    if kind is Unreachable:
        message = f"cannot reach the coordinator at {address} ({code.name}): {details}"
    else:
        message = f"coordinator refused the request ({code.name}): {details}"
    return kind(message, {"coordinator": details})


def from_node_statuses(statuses) -> FedqError | None:
    """The exception when no node answered (None when one did): Refused when
    every node refused, InvalidQuery when every node found the query invalid
    (as `fedq` exits 4 and 1), NoAnswer otherwise."""
    words = [outcome_word(s.outcome) for s in statuses]
    if "ok" in words:
        return None
    reasons = {s.node: s.reason for s in statuses}
    if words and all(w == "refused" for w in words):
        return Refused(f"refused by every node: {_listed(statuses)}", reasons)
    if words and all(w == "invalid" for w in words):
        return InvalidQuery(f"invalid query: {_listed(statuses)}", reasons)
    return NoAnswer(f"no node answered: {_listed(statuses) or 'the coordinator lists no node'}", reasons)


def partial_warning(statuses) -> PartialAnswer | None:
    """The warning when some node answered and some did not."""
    missing = [s for s in statuses if outcome_word(s.outcome) != "ok"]
    if not missing:
        return None
    return PartialAnswer(f"{len(missing)} node(s) did not contribute, the estimates cover the others only: "
                         f"{_listed(missing)}")


def _listed(statuses) -> str:
    """`fr: reason; de: reason`, the outcome word added where the reason does not start with it."""
    parts = []
    for s in statuses:
        word = outcome_word(s.outcome)
        if not s.reason:
            parts.append(f"{s.node}: {word}")
        elif s.reason.startswith(word):
            parts.append(f"{s.node}: {s.reason}")
        else:
            parts.append(f"{s.node}: {word}: {s.reason}")
    return "; ".join(parts)
