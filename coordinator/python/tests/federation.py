"""A real local federation for the tests, started from the command line as
the README's "An investigator's session" does: `fedq federation init`,
`fedq-node generate` / `import` / `serve`, `fedq-coordinator serve`.

The binaries come from $FEDQ_BIN_DIR (default: <repo>/target/debug), so CI
points the tests at its own build.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
NODES = ("fr", "de")
#: Big enough for every statistic to be answered, small enough to import in about a second.
PEOPLE = 2000
START_TIMEOUT_S = 30.0


def bin_dir() -> Path:
    return Path(os.environ.get("FEDQ_BIN_DIR", REPO / "target" / "debug")).resolve()


def binary(name: str) -> Path:
    return bin_dir() / name


def missing_binaries() -> list[str]:
    return [name for name in ("fedq", "fedq-node", "fedq-coordinator") if not binary(name).is_file()]


def run(*args: str | Path) -> subprocess.CompletedProcess:
    """Runs a fedq binary to completion; raises with its output when it fails."""
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr}")
    return result


@dataclass
class Federation:
    """A running federation in `dir`: nodes fr and de, the coordinator,
    investigator alice and researcher rosa."""

    dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def client_toml(self, requester: str) -> Path:
        return self.dir / "requesters" / requester / "client.toml"

    def fedq_json(self, requester: str, *args: str, exits: tuple[int, ...] = (0,)) -> dict:
        """`fedq --config <requester's client.toml> ARGS --json`, parsed; its
        exit code must be one of `exits`."""
        result = subprocess.run([str(binary("fedq")), "--config", str(self.client_toml(requester)), *args, "--json"],
                                capture_output=True, text=True, timeout=120)
        if result.returncode not in exits:
            raise RuntimeError(f"fedq {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return json.loads(result.stdout)

    def start(self) -> None:
        run(binary("fedq"), "federation", "init", "--dir", self.dir, "--nodes", ",".join(NODES))
        for node in NODES:
            config, data = self.node_toml(node), self.dir / "nodes" / node / "data"
            run(binary("fedq-node"), "generate", "--jurisdiction", node, "--people", str(PEOPLE),
                "--seed", "7", "--out", data)
            run(binary("fedq-node"), "import", "--config", config, "--identifiers", data / "identifiers.csv",
                "--table", f"incidents={data / 'incidents.csv'}")
            self.serve(node)
        self.serve("coordinator")

    def node_toml(self, node: str) -> Path:
        return self.dir / "nodes" / node / "node.toml"

    def serve(self, party: str) -> None:
        """Starts a node (by id) or the coordinator and waits until it listens."""
        if party == "coordinator":
            program, config = "fedq-coordinator", self.dir / "coordinator" / "coordinator.toml"
        else:
            program, config = "fedq-node", self.node_toml(party)
        log = self.dir / f"{party}.log"
        with log.open("ab") as out:
            process = subprocess.Popen([str(binary(program)), "serve", "--config", str(config)],
                                       stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[party] = process
        host, port = tomllib.loads(config.read_text())["listen"].rsplit(":", 1)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{party} exited {process.returncode}; {log}:\n{log.read_text()}")
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{party} does not listen on {host}:{port} after {START_TIMEOUT_S} s") from None
                time.sleep(0.1)

    def stop(self, *parties: str) -> None:
        """Stops the given parties (default: all) with SIGTERM, as an operator
        would (they drain and exit), then SIGKILL whatever is left."""
        chosen = parties or tuple(self.processes)
        for party in chosen:
            if self.processes[party].poll() is None:
                self.processes[party].send_signal(signal.SIGTERM)
        for party in chosen:
            process = self.processes.pop(party)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
