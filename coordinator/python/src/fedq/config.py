"""A requester's `client.toml` and what it names, read as the Rust client
reads them (`coordinator/client/src/config.rs`), so that one file serves
both the `fedq` command line and this package.

Paths in `client.toml` are relative to the file itself, never to the
working directory: a notebook started anywhere finds the same keys.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

#: The config format version this package reads (fedq_proto::toml_file).
CONFIG_VERSION = 1
#: Roles as the federation file spells them (fedq_proto::role, lowercase).
ROLES = ("investigator", "researcher", "auditor")

_CLIENT_KEYS = {"version", "requester", "federation", "keys_dir", "signing_key", "legal_basis", "tls"}
_TLS_KEYS = {"ca", "cert", "key"}


@dataclass(frozen=True)
class Tls:
    """mTLS material: the federation CA, the requester's certificate and key (PEM)."""

    ca: Path
    cert: Path
    key: Path


@dataclass(frozen=True)
class Requester:
    """This requester's entry in the federation file: what its envelopes must claim."""

    id: str
    agency: str
    role: str
    public_key: str


@dataclass(frozen=True)
class ClientConfig:
    """A requester's validated `client.toml`."""

    requester: Requester
    #: host:port of the coordinator, from the federation file.
    coordinator: str
    #: Node ids in the federation file's order.
    nodes: tuple[str, ...]
    signing_key: Path
    #: Legal basis stated when a request gives none.
    legal_basis: str | None
    tls: Tls

    @classmethod
    def load(cls, path: str | Path) -> ClientConfig:
        """Reads `client.toml` and its federation file; refuses what the Rust
        client would refuse (unknown keys, another version, a requester the
        federation file does not list)."""
        path = Path(path)
        raw = _read_toml(path)
        _only(path, raw, _CLIENT_KEYS, "")
        if raw.get("version") != CONFIG_VERSION:
            raise ConfigError(f"{path}: version: expected {CONFIG_VERSION}, found {raw.get('version')}")
        tls = _field(path, raw, "tls", dict)
        _only(path, tls, _TLS_KEYS, "tls.")
        requester_id = _field(path, raw, "requester", str)
        federation_path = _resolve(path, _field(path, raw, "federation", str))
        federation = _read_toml(federation_path)
        return cls(
            requester=_requester_entry(federation_path, federation, requester_id),
            coordinator=_field(federation_path, _field(federation_path, federation, "coordinator", dict),
                               "address", str, "coordinator."),
            nodes=tuple(_field(federation_path, node, "id", str, "nodes[].")
                        for node in federation.get("nodes", [])),
            signing_key=_resolve(path, _field(path, raw, "signing_key", str, default="signing.key")),
            legal_basis=_field(path, raw, "legal_basis", str, default=None),
            tls=Tls(*(_resolve(path, _field(path, tls, name, str, "tls.")) for name in ("ca", "cert", "key"))),
        )

    def audience(self) -> list[str]:
        """Every node of the federation, sorted: the audience of each envelope."""
        return sorted(self.nodes)


def _read_toml(path: Path) -> dict:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: {e}") from None


def _only(path: Path, table: dict, allowed: set[str], prefix: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{path}: unknown field `{prefix}{unknown[0]}`, expected one of {sorted(allowed)}")


_REQUIRED = object()


def _field(path: Path, table: dict, name: str, kind: type, prefix: str = "", default=_REQUIRED):
    """`table[name]` of type `kind`, or `default` when absent (an error when required)."""
    value = table.get(name)
    if value is None and default is not _REQUIRED:
        return default
    if not isinstance(value, kind):
        missing = "missing field" if value is None else f"expected {kind.__name__} for"
        raise ConfigError(f"{path}: {missing} `{prefix}{name}`")
    return value


def _resolve(file: Path, value: str) -> Path:
    """Like fedq_proto::toml_file::resolve: relative to the directory of `file`."""
    value = Path(value)
    return value if value.is_absolute() else file.parent / value


def _requester_entry(path: Path, federation: dict, requester_id: str) -> Requester:
    for entry in federation.get("requesters", []):
        if entry.get("id") == requester_id:
            role = entry.get("role")
            if role not in ROLES:
                raise ConfigError(f"{path}: requester {requester_id!r}: unknown role {role!r}")
            return Requester(
                id=requester_id,
                agency=_field(path, entry, "agency", str, "requesters[]."),
                role=role,
                public_key=_field(path, entry, "public_key", str, "requesters[].", default=""),
            )
    raise ConfigError(f"requester: requester {requester_id!r} is not listed in the federation file {path}")
