"""The committed easymatch/protos/*_pb2.py match the .proto files.

tools/gen_protos.py runs grpc_tools.protoc (pinned grpcio-tools) on
protos/ into a temporary directory; the output must equal the committed
files byte for byte.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _gen_protos():
    spec = importlib.util.spec_from_file_location(
        "gen_protos", REPO / "tools" / "gen_protos.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_pb2_files_are_regenerated_byte_for_byte(
    tmp_path: Path,
) -> None:
    generated = _gen_protos().generate(tmp_path)
    committed = sorted((REPO / "easymatch" / "protos").glob("*_pb2.py"))
    assert [p.name for p in generated] == [p.name for p in committed]
    for new in generated:
        old = REPO / "easymatch" / "protos" / new.name
        assert new.read_bytes() == old.read_bytes(), (
            f"{old.name} is stale; run python tools/gen_protos.py"
        )
