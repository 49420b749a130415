"""Regenerates the committed gRPC code from the repository's .proto.

The generated modules are committed (src/fedq/v1/) so that installing the
client needs neither protoc nor grpcio-tools, and so that a change to the
wire protocol shows up as a reviewable diff. tests/test_generated.py fails
when they no longer match proto/proto/fedq/v1/fedq.proto; run

    python coordinator/python/regenerate.py

(with grpcio-tools installed, e.g. via the `test` extra) to bring them back.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto" / "proto"
PROTO_FILE = "fedq/v1/fedq.proto"
OUT = HERE / "src"


def generate(out: Path = OUT) -> list[Path]:
    """Runs protoc (bundled with grpcio-tools) into `out`; returns the files written."""
    from grpc_tools import protoc

    out.mkdir(parents=True, exist_ok=True)
    status = protoc.main(
        [
            "protoc",
            f"-I{PROTO_ROOT}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            PROTO_FILE,
        ]
    )
    if status != 0:
        raise RuntimeError(f"protoc failed on {PROTO_ROOT / PROTO_FILE} (exit {status})")
    stem = out / PROTO_FILE.removesuffix(".proto")
    return [stem.with_name(stem.name + "_pb2.py"), stem.with_name(stem.name + "_pb2_grpc.py")]


if __name__ == "__main__":
    for path in generate():
        print(f"wrote {path}")
