"""What the Rust `fedq stats` sends, caught by a stand-in coordinator.

The stand-in serves mTLS with the federation's own coordinator certificate,
answers the catalog request `fedq stats` makes first with no nodes (so its
budget check passes) and records the StatsRequest instead of answering it.
The test then builds the same request in Python and compares bytes: the
query, the payload hash and the signed envelope. Nothing reaches a node, so
nothing is charged.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import tomllib
from concurrent import futures
from pathlib import Path

import grpc

from fedq.config import ClientConfig
from fedq.v1 import fedq_pb2 as pb
from fedq.v1 import fedq_pb2_grpc as pb_grpc


def cli_args(table: str, measure: str, *, purpose: str, group_by: str = "", filters: tuple[str, ...] = (),
             epsilon: float | None = None, rho: float | None = None, case: str = "",
             legal_basis: str | None = None, dry_run: bool = False) -> list[str]:
    """The `fedq stats` arguments for the keyword arguments of `Client.stats`."""
    args = ["stats", "--table", table, "--measure", measure, "--purpose", purpose, "--case", case]
    if group_by:
        args += ["--group-by", group_by]
    for condition in filters:
        args += ["--where", condition]
    args += ["--epsilon", repr(epsilon)] if epsilon is not None else ["--rho", repr(rho)]
    if legal_basis is not None:
        args += ["--legal-basis", legal_basis]
    if dry_run:
        args.append("--dry-run")
    return args


class _Recorder(pb_grpc.CoordinatorServicer):
    def __init__(self):
        self.requests: list[pb.StatsRequest] = []

    def Catalog(self, request, context):
        return pb.FederationCatalogResponse()

    def Stats(self, request, context):
        self.requests.append(request)
        context.abort(grpc.StatusCode.UNAVAILABLE, "captured by the test's stand-in coordinator")


def capture_stats_request(fedq: Path, federation_dir: Path, requester: str, args: list[str]) -> pb.StatsRequest:
    """Runs `fedq --config <requester> ARGS` against a stand-in coordinator
    and returns the StatsRequest it sent."""
    client_toml = federation_dir / "requesters" / requester / "client.toml"
    config = ClientConfig.load(client_toml)
    tls = federation_dir / "coordinator" / "tls"
    recorder = _Recorder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_CoordinatorServicer_to_server(recorder, server)
    credentials = grpc.ssl_server_credentials(
        [((tls / "coordinator.key").read_bytes(), (tls / "coordinator.pem").read_bytes())],
        root_certificates=config.tls.ca.read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            stand_in = _redirected_config(client_toml, config, f"127.0.0.1:{port}", Path(scratch))
            result = subprocess.run([str(fedq), "--config", str(stand_in), *args],
                                    capture_output=True, text=True, timeout=60)
    finally:
        server.stop(grace=None)
    if len(recorder.requests) != 1:
        raise RuntimeError(f"fedq sent no statistics request (exit {result.returncode}):\n{result.stderr}")
    return recorder.requests[0]


def _redirected_config(client_toml: Path, config: ClientConfig, address: str, scratch: Path) -> Path:
    """The requester's client.toml and federation file, copied into
    `scratch` with absolute paths and the coordinator at `address`."""
    raw = tomllib.loads(client_toml.read_text())
    original = (client_toml.parent / raw["federation"]).read_text()
    federation = scratch / "federation.toml"
    federation.write_text(original.replace(f'address = "{config.coordinator}"', f'address = "{address}"', 1))
    lines = [f"version = {raw['version']}", f"requester = {_toml_string(config.requester.id)}",
             f"federation = {_toml_string(federation)}", f"signing_key = {_toml_string(config.signing_key.resolve())}"]
    if config.legal_basis is not None:
        lines.append(f"legal_basis = {_toml_string(config.legal_basis)}")
    lines += ["[tls]"] + [f"{name} = {_toml_string(getattr(config.tls, name).resolve())}" for name in ("ca", "cert", "key")]
    copy = scratch / "client.toml"
    copy.write_text("\n".join(lines) + "\n")
    return copy


def _toml_string(value) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(str(value), ensure_ascii=False)
