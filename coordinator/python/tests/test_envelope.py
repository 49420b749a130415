"""The signed envelope and payload hash, byte for byte against what the Rust
`fedq` sent for the same queries (vectors/stats_envelopes.json, written by
make_vectors.py). Needs no binaries."""

import dataclasses
import json
import os

import pytest

from fedq import ConfigError, InvalidQuery
from fedq.config import ClientConfig
from fedq.envelope import PayloadHasher, Signer, stats_payload_hash
from fedq.query import request_context, stats_query


def python_request(case: dict):
    """The query and context Client.stats builds from the case's arguments."""
    kwargs = dict(case["stats"])
    context = request_context(kwargs.pop("purpose"), kwargs.pop("case", ""), kwargs.pop("legal_basis", None))
    return stats_query(**kwargs), context


def test_queries_and_payload_hashes_are_the_rust_clients(vectors):
    for case in vectors["cases"]:
        query, context = python_request(case)
        assert query.SerializeToString().hex() == case["query_wire"], case["stats"]
        assert stats_payload_hash(query) == json.loads(case["envelope"])["payload_hash"], case["stats"]
        assert {"purpose": context.purpose, "case_reference": context.case_reference,
                "legal_basis": context.legal_basis} == case["context"]


def test_envelopes_and_signatures_are_the_rust_clients_bytes(vectors, vector_config):
    signer = Signer(ClientConfig.load(vector_config))
    for case in vectors["cases"]:
        query, context = python_request(case)
        rust = json.loads(case["envelope"])
        fresh = signer.envelope("stats", context, stats_payload_hash(query))
        # Time and nonce are the only fields that differ between two signings.
        assert fresh.nonce != rust["nonce"] and len(fresh.nonce) == 32
        signed = signer.seal(dataclasses.replace(fresh, issued_at=rust["issued_at"], nonce=rust["nonce"]))
        assert signed.envelope.decode("utf-8") == case["envelope"]
        # Ed25519 is deterministic: the same key over the same bytes gives the same signature.
        assert signed.signature.hex() == case["signature"]


def test_every_field_counts_in_the_payload_hash():
    base = stats_query("incidents", "count", group_by="category", filters="sector=finance", epsilon=1.0)
    variants = [
        stats_query("incidents", "count", group_by="category", filters="sector=finance", epsilon=1.0000001),
        stats_query("incidents", "count", group_by="category", filters="sector=finance", rho=1.0),
        stats_query("incidents", "count", group_by="category", filters="sector=finance", epsilon=1.0, dry_run=True),
        stats_query("incidents", "count", group_by="category", epsilon=1.0),
        stats_query("incidents", "count", filters="category", epsilon=1.0),
    ]
    hashes = {stats_payload_hash(q) for q in [base, *variants]}
    assert len(hashes) == 1 + len(variants)
    joined = PayloadHasher("stats").text("ab").text("c").finish()
    assert joined != PayloadHasher("stats").text("a").text("bc").finish()


def test_what_a_node_would_refuse_is_refused_before_signing(vector_config):
    signer = Signer(ClientConfig.load(vector_config))
    with pytest.raises(InvalidQuery, match="control characters"):
        signer.sign("stats", request_context("research\n"), "0" * 64)
    with pytest.raises(InvalidQuery, match="purpose"):
        request_context("   ")
    with pytest.raises(InvalidQuery, match="exactly one"):
        stats_query("incidents", "count", epsilon=1, rho=0.1)
    with pytest.raises(InvalidQuery, match="greater than zero"):
        stats_query("incidents", "count", epsilon=float("nan"))


def test_a_signing_key_others_can_read_or_another_key_is_refused(vector_config, vectors):
    key = vector_config.parent / "signing.key"
    os.chmod(key, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        Signer(ClientConfig.load(vector_config))
    os.chmod(key, 0o600)
    key.write_text("11" * 32)
    with pytest.raises(ConfigError, match="does not match the public key"):
        Signer(ClientConfig.load(vector_config))
