"""Builds the package with its gRPC code generated from the repository's
.proto (proto/proto/fedq/v1/fedq.proto) by grpcio-tools, a build
requirement: the code is never committed, so it cannot go stale, and an
install from the checkout always speaks the protocol of that checkout.
Everything else is declared in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PROTO_ROOT = HERE.parent.parent / "proto" / "proto"
PROTO_FILE = "fedq/v1/fedq.proto"


def generate(out: Path) -> None:
    """Runs protoc (bundled with grpcio-tools) into `out`, as `fedq/v1/fedq_pb2*.py`."""
    from grpc_tools import protoc

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


class BuildWithProtocol(build_py):
    """Generates into src/ (git ignores the files) before the usual build
    copies the package, so that regular and editable installs both have it."""

    def run(self):
        generate(HERE / "src")
        super().run()


setup(cmdclass={"build_py": BuildWithProtocol})
