"""Regenerates the gRPC stubs of src/widesweep/v1 from ../proto.

    python scripts/generate_proto.py        # needs grpcio-tools

The stubs are committed (the package installs with no build step); the
test suite regenerates them into a temporary directory and fails when they
differ from the committed ones or from the .proto files' digest.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

PYTHON = Path(__file__).resolve().parents[1]
PROTO = PYTHON.parent / "proto"
FILES = ["widesweep/v1/sweep.proto", "widesweep/v1/worker.proto"]

INIT = '''"""Generated gRPC stubs of widesweep.v1 (python/scripts/generate_proto.py)."""

#: Hex SHA-256 of sweep.proto then worker.proto, as these stubs were made
#: from them; the coordinator serves its own (GetVersion).
PROTO_SHA256 = "{digest}"
'''


def digest() -> str:
    sha = hashlib.sha256()
    for name in FILES:
        sha.update((PROTO / name).read_bytes())
    return sha.hexdigest()


def generate(out: Path) -> None:
    from grpc_tools import protoc

    (out / "widesweep" / "v1").mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{PROTO}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}"]
    if protoc.main(args + [str(PROTO / name) for name in FILES]) != 0:
        raise SystemExit("protoc failed")
    (out / "widesweep" / "v1" / "__init__.py").write_text(INIT.format(digest=digest()))


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PYTHON / "src")
