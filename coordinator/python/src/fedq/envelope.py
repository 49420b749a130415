"""Signed request envelopes, byte for byte as the Rust client makes them.

Every node verifies the envelope itself (crypto/src/envelope/mod.rs): the
Ed25519 signature over `b"fedq request envelope v1\\0" + json`, the claimed
agency and role against the federation file, the action, a payload hash it
recomputes from the query it received (proto/src/payload.rs), the time and a
nonce it has not seen. The node verifies the JSON bytes as they travel and
only then parses them, so the JSON needs no canonical form; it is
nevertheless written exactly as serde_json writes it, so that a Python and a
Rust envelope for the same facts are the same bytes (tests/test_envelope.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import stat
import struct
import time
import unicodedata
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .config import ClientConfig
from .errors import ConfigError, InvalidQuery
from .v1 import fedq_pb2 as pb

#: Domain separation: a signature over an envelope is valid as nothing else.
SIGNING_CONTEXT = b"fedq request envelope v1\0"
#: Longest text field a node accepts, in characters.
MAX_FIELD_CHARS = 512


@dataclass(frozen=True)
class Envelope:
    """What the requester declares and signs; fields in the Rust struct's order."""

    requester: str
    agency: str
    role: str
    purpose: str
    legal_basis: str
    case_ref: str
    action: str
    #: Seconds since the Unix epoch when signed; a node admits 5 minutes either way.
    issued_at: int
    #: 128 random bits, hex: a node refuses a nonce it has seen.
    nonce: str
    payload_hash: str
    #: Node ids, sorted.
    audience: tuple[str, ...]

    def to_json(self) -> bytes:
        """serde_json::to_vec of the Rust struct: compact, declaration order, UTF-8."""
        fields = dataclasses.asdict(self)
        fields["audience"] = list(self.audience)
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def check_shape(self) -> None:
        """Envelope::check_shape's checks of what a person typed, before signing."""
        for name in ("requester", "agency", "role", "purpose", "legal_basis", "case_ref", "action"):
            value = getattr(self, name)
            if len(value) > MAX_FIELD_CHARS:
                raise InvalidQuery(f"{name} is too long (at most {MAX_FIELD_CHARS} characters)")
            if any(unicodedata.category(c) == "Cc" for c in value):
                raise InvalidQuery(f"{name} holds control characters")
        for name in ("purpose", "legal_basis"):
            if not getattr(self, name).strip():
                raise InvalidQuery(f"{name} is empty")


class PayloadHasher:
    """fedq_crypto::envelope::PayloadHasher: SHA-256 over length-prefixed
    fields (u64 little-endian length, then the bytes), so that no two
    payloads encode alike."""

    def __init__(self, kind: str):
        self._sha = hashlib.sha256()
        self.bytes(b"fedq payload v1").text(kind)

    def bytes(self, value: bytes) -> PayloadHasher:
        self._sha.update(struct.pack("<Q", len(value)) + value)
        return self

    def text(self, value: str) -> PayloadHasher:
        return self.bytes(value.encode("utf-8"))

    def number(self, value: int) -> PayloadHasher:
        return self.bytes(struct.pack("<Q", value))

    def finish(self) -> str:
        return self._sha.hexdigest()


def stats_payload_hash(query: pb.StatsQuery) -> str:
    """fedq_proto::payload::stats_payload_hash: what a stats envelope must carry."""
    hasher = PayloadHasher("stats").text(query.table).text(query.measure)
    hasher.number(len(query.group_by))
    for column in query.group_by:
        hasher.text(column)
    hasher.number(len(query.filters))
    for condition in query.filters:
        hasher.text(condition)
    budget = query.WhichOneof("budget")
    if budget is None:
        hasher.text("none")
    else:
        # f64::to_bits, then as a number: the double's 8 bytes, little-endian.
        hasher.text(budget).bytes(struct.pack("<d", getattr(query, budget)))
    if query.dry_run:
        hasher.text("dry_run")
    return hasher.finish()


class Signer:
    """The requester's identity and Ed25519 key, as ClientConfig::sign uses them."""

    def __init__(self, config: ClientConfig):
        self.config = config
        self._key = _signing_key(config)

    def envelope(self, action: str, context: pb.RequestContext, payload_hash: str) -> Envelope:
        """A fresh envelope (now, a new nonce) for `action` over `payload_hash`.
        The legal basis is the context's, trimmed, else client.toml's."""
        entry = self.config.requester
        legal_basis = context.legal_basis.strip() or (self.config.legal_basis or "")
        if not legal_basis.strip():
            raise InvalidQuery("state a legal basis (legal_basis=..., or legal_basis in client.toml)")
        return Envelope(
            requester=entry.id,
            agency=entry.agency,
            role=entry.role,
            purpose=context.purpose,
            legal_basis=legal_basis,
            case_ref=context.case_reference,
            action=action,
            issued_at=int(time.time()),
            nonce=secrets.token_hex(16),
            payload_hash=payload_hash,
            audience=tuple(self.config.audience()),
        )

    def seal(self, envelope: Envelope) -> pb.SignedEnvelope:
        """Checks and signs `envelope`; the wire form carries the exact signed bytes."""
        envelope.check_shape()
        data = envelope.to_json()
        return pb.SignedEnvelope(envelope=data, signature=self._key.sign(SIGNING_CONTEXT + data))

    def sign(self, action: str, context: pb.RequestContext, payload_hash: str) -> pb.SignedEnvelope:
        """ClientConfig::sign: a fresh envelope, checked and signed."""
        return self.seal(self.envelope(action, context, payload_hash))


def _signing_key(config: ClientConfig) -> Ed25519PrivateKey:
    """The key file's 64 hex digits, if the file is private and the key is
    the one the federation file lists (as the Rust client insists)."""
    path = config.signing_key
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        text = path.read_text(encoding="utf-8").strip()
    except OSError as e:
        raise ConfigError(f"signing_key: cannot read the signing key {path}: {e.strerror}") from None
    if os.name == "posix" and mode & 0o077:
        raise ConfigError(f"signing_key: {path} is readable by others (mode {mode:04o}); run chmod 600 on it")
    try:
        seed = bytes.fromhex(text) if len(text) == 64 else b""
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise ConfigError(f"signing_key: {path}: invalid signing key: expected 64 hex digits")
    key = Ed25519PrivateKey.from_private_bytes(seed)
    if key.public_key().public_bytes_raw().hex() != config.requester.public_key:
        raise ConfigError("signing_key: the signing key does not match the public key in the federation file")
    return key
