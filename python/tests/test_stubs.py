"""The committed gRPC stubs are those of the repository's .proto files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "generate_proto.py"
SRC = Path(__file__).resolve().parents[1] / "src" / "widesweep" / "v1"


def load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("generate_proto", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    generator = load_generator()
    generator.generate(tmp_path)
    fresh = tmp_path / "widesweep" / "v1"
    names = sorted(p.name for p in fresh.iterdir() if p.is_file())
    assert names == sorted(p.name for p in SRC.iterdir() if p.is_file() and p.suffix in (".py", ".pyi"))
    for name in names:
        assert (fresh / name).read_text() == (SRC / name).read_text(), (
            f"{name} is stale: run python python/scripts/generate_proto.py"
        )


def test_the_stubs_carry_the_digest_of_the_proto_files() -> None:
    from widesweep.v1 import PROTO_SHA256

    assert PROTO_SHA256 == load_generator().digest()
    assert len(PROTO_SHA256) == 64
