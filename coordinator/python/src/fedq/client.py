"""A researcher's connection to the coordinator: catalog, statistics, budget.

It talks to the coordinator exactly as the Rust `Requester` does
(coordinator/client/src/requester.rs): mutual TLS under the federation CA
with the requester's certificate, the coordinator's certificate checked for
the name "coordinator" (not for the address dialled), and every statistics
query under an envelope signed with the requester's key.

Lookups are not offered: they need the requester's TFHE keys and the VOPRF
exchange, which only the Rust client implements (use the `fedq` command).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import grpc
import pandas as pd

from . import errors, frames, query
from .config import ClientConfig
from .envelope import Signer, stats_payload_hash
from .v1 import fedq_pb2 as pb
from .v1 import fedq_pb2_grpc as pb_grpc

#: The name the coordinator's certificate must carry (fedq_transport::tls::client_config).
COORDINATOR_NAME = "coordinator"
#: fedq_proto::MAX_MESSAGE_BYTES, both ways, as the Rust client sets it.
MAX_MESSAGE_BYTES = 48 * 1024 * 1024
#: Longest wait between reconnection attempts. Calls fail at once while the
#: coordinator cannot be reached (with the transport's reason, e.g. a TLS
#: error), and a notebook keeps its channel for hours: it should find a
#: restarted coordinator within a second, as a fresh `fedq` run would
#: (gRPC's default backoff grows to two minutes).
MAX_RECONNECT_BACKOFF_MS = 1000


class Client:
    """A requester connected to its federation's coordinator.

    >>> client = Client.from_config("fed/requesters/rosa/client.toml")
    >>> estimates, nodes = client.stats("incidents", "count", group_by="category",
    ...                                 epsilon=0.5, purpose="research")
    """

    def __init__(self, config: ClientConfig, *, timeout: float | None = 120.0):
        """`timeout` bounds each call in seconds (the coordinator itself
        gives each node its own `node_timeout_ms`)."""
        self.config = config
        self.timeout = timeout
        self._signer = Signer(config)
        self._channel = grpc.secure_channel(
            config.coordinator,
            grpc.ssl_channel_credentials(
                root_certificates=_read(config.tls.ca, "tls.ca"),
                private_key=_read(config.tls.key, "tls.key"),
                certificate_chain=_read(config.tls.cert, "tls.cert"),
            ),
            options=[
                ("grpc.ssl_target_name_override", COORDINATOR_NAME),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
            ],
        )
        self._stub = pb_grpc.CoordinatorStub(self._channel)

    @classmethod
    def from_config(cls, path: str | Path | None = None, **options) -> Client:
        """Reads a requester's client.toml (default: $FEDQ_CONFIG, as `fedq --config`)."""
        path = path or os.environ.get("FEDQ_CONFIG")
        if not path:
            raise errors.ConfigError("give the requester's client.toml (or set FEDQ_CONFIG)")
        return cls(ClientConfig.load(path), **options)

    def catalog(self) -> frames.Catalog:
        """Every node's public catalog: tables, columns with their public
        domains and bounds, and the epsilon / rho range one query may ask."""
        return frames.catalog(self._call(self._stub.Catalog, pb.FederationCatalogRequest()))

    def budget(self) -> pd.DataFrame:
        """This requester's privacy budget at every node: spent and left this epoch (month)."""
        return frames.budget(self._call(self._stub.Budget, pb.FederationBudgetRequest()))

    def stats(self, table: str, measure: str, *, purpose: str, group_by: str | Iterable[str] = (),
              filters: str | Iterable[str] = (), epsilon: float | None = None, rho: float | None = None,
              case: str = "", legal_basis: str | None = None, dry_run: bool = False) -> frames.StatsAnswer:
        """A differentially private statistic over every node, as `fedq stats`.

        `measure`: count, sum:<column>, mean:<column> or histogram:<column>;
        `group_by`: at most two columns ("category,month" or a list);
        `filters`: conditions such as "sector=finance" or "date>=2025-01-01";
        exactly one of `epsilon` (discrete Laplace) or `rho` (discrete Gaussian);
        `dry_run`: what each node would add and charge, spending nothing.

        Returns (estimates, nodes); see `StatsAnswer`. Raises `Refused`
        (policy, budget, envelope), `InvalidQuery` or `NoAnswer` when no node
        answered; warns `PartialAnswer` when some did not.
        """
        stats_query = query.stats_query(table, measure, group_by=group_by, filters=filters,
                                        epsilon=epsilon, rho=rho, dry_run=dry_run)
        query.check_budget(self._call(self._stub.Catalog, pb.FederationCatalogRequest()), stats_query)
        context = query.request_context(purpose, case, legal_basis)
        context.envelope.CopyFrom(self._signer.sign("stats", context, stats_payload_hash(stats_query)))
        response = self._call(self._stub.Stats, pb.StatsRequest(context=context, query=stats_query))
        failure = errors.from_node_statuses(response.nodes)
        if failure is not None:
            raise failure
        partial = errors.partial_warning(response.nodes)
        if partial is not None:
            warnings.warn(partial, stacklevel=2)
        return frames.stats_answer(response)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method, request):
        try:
            return method(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise errors.from_rpc_error(e, self.config.coordinator) from None


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise errors.ConfigError(f"{key}: cannot read {path}: {e.strerror}") from None
