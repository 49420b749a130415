"""Fixtures: a running federation (session-wide, torn down even when a test
fails), and a requester's config made from the Rust test vectors."""

import json
import os
from pathlib import Path

import pytest
from federation import Federation, bin_dir, missing_binaries

VECTORS = Path(__file__).resolve().parent / "vectors" / "stats_envelopes.json"


@pytest.fixture(scope="session")
def federation(tmp_path_factory):
    """Nodes fr and de and the coordinator, serving. Without the binaries the
    tests that need them are skipped, unless FEDQ_BIN_DIR names the build
    (as CI does): then they fail."""
    missing = missing_binaries()
    if missing:
        message = f"no {', '.join(missing)} in {bin_dir()} (build them, or set FEDQ_BIN_DIR)"
        if "FEDQ_BIN_DIR" in os.environ:
            pytest.fail(message)
        pytest.skip(message)
    fed = Federation(tmp_path_factory.mktemp("federation") / "fed")
    try:
        fed.start()
        yield fed
    finally:
        fed.stop()


@pytest.fixture(scope="session")
def vectors():
    return json.loads(VECTORS.read_text(encoding="utf-8"))


@pytest.fixture
def vector_config(tmp_path, vectors):
    """A client.toml for the vectors' requester: its federation file, and its
    signing key in a private file. TLS files are named but never read."""
    requester = vectors["requester"]
    nodes = "".join(f'[[nodes]]\nid = "{n}"\njurisdiction = "{n}"\naddress = "127.0.0.1:1"\n\n'
                    for n in vectors["nodes"])
    (tmp_path / "federation.toml").write_text(
        'version = 1\nname = "vectors"\n\n[parameters]\nbucket_bits = 12\ntag_bits = 28\npadded_candidates = 320\n\n'
        f'[coordinator]\naddress = "127.0.0.1:1"\n\n{nodes}'
        f'[[requesters]]\nid = "{requester["id"]}"\nagency = "{requester["agency"]}"\n'
        f'role = "{requester["role"]}"\npublic_key = "{requester["public_key"]}"\n',
        encoding="utf-8")
    key = tmp_path / "signing.key"
    key.touch(mode=0o600)
    key.write_text(vectors["signing_key"])
    client = tmp_path / "client.toml"
    client.write_text(
        f'version = 1\nrequester = "{requester["id"]}"\nfederation = "federation.toml"\n'
        f'legal_basis = {json.dumps(vectors["legal_basis"])}\n\n'
        '[tls]\nca = "ca.pem"\ncert = "requester.pem"\nkey = "requester.key"\n',
        encoding="utf-8")
    return client
