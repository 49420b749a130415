"""The committed gRPC code matches proto/proto/fedq/v1/fedq.proto: a stale
copy would talk an old protocol. Regenerates into a temporary folder with
regenerate.py and compares the serialized file descriptors (what the code
is generated from), which do not depend on the grpcio-tools version."""

import ast
import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMITTED = HERE.parent / "src" / "fedq" / "v1" / "fedq_pb2.py"


def serialized_descriptor(pb2_file: Path) -> bytes:
    """The bytes literal passed to AddSerializedFile in a generated *_pb2.py."""
    for node in ast.walk(ast.parse(pb2_file.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "AddSerializedFile":
            return node.args[0].value
    raise AssertionError(f"{pb2_file}: no AddSerializedFile call")


def test_committed_code_matches_the_proto(tmp_path):
    spec = importlib.util.spec_from_file_location("regenerate", HERE.parent / "regenerate.py")
    regenerate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regenerate)
    fresh_pb2, fresh_grpc = regenerate.generate(tmp_path)
    assert fresh_grpc.is_file()
    assert serialized_descriptor(fresh_pb2) == serialized_descriptor(COMMITTED), (
        "src/fedq/v1 is stale: run `python coordinator/python/regenerate.py`")
