"""Regenerates easymatch/protos/*_pb2.py from protos/easymatch/protos/.

    python tools/gen_protos.py [--out ROOT]

ROOT defaults to the repository root, which is where the committed
modules live; tests/test_protos_generated.py writes to a temporary ROOT
and compares, so the committed files cannot drift from the .proto files.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO / "protos"


def proto_files() -> list[Path]:
    return sorted((PROTO_ROOT / "easymatch" / "protos").glob("*.proto"))


def generate(out_root: Path) -> list[Path]:
    """Writes the _pb2 modules under `out_root`; returns their paths."""
    out_root.mkdir(parents=True, exist_ok=True)
    # A child process: grpc_tools' bundled libprotobuf crashes a process
    # that has already loaded TensorFlow's.
    command = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_ROOT}"]
    command += [f"--python_out={out_root}", *map(str, proto_files())]
    subprocess.run(command, check=True)
    return [
        out_root / "easymatch" / "protos" / f"{p.stem}_pb2.py"
        for p in proto_files()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO, help="output root")
    args = parser.parse_args()
    for path in generate(args.out):
        print(path, file=sys.stderr)


if __name__ == "__main__":
    main()
