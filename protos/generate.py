"""Regenerate the committed gRPC/protobuf modules from protos/simsearch/v1/*.proto.

One generator, committed output: `python -m simsearch.protos.generate` rewrites the
generated files in place; tests call `generate(tmpdir)` and fail on any difference.
Mapping the folder as `simsearch/protos` makes protoc write `from simsearch.protos...`
imports directly, so no post-processing is needed.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PROTO_DIR = PROTO_ROOT / "simsearch" / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_dir: Path) -> list[Path]:
    """Write the generated modules for every .proto into out_dir; return their paths."""
    from grpc_tools import protoc  # dev-only dependency

    from google.rpc import status_pb2  # google/rpc/status.proto ships beside it (googleapis-common-protos)

    googleapis = Path(status_pb2.__file__).resolve().parents[2]
    well_known = Path(protoc.__file__).resolve().parent / "_proto"  # google/protobuf/*.proto
    protos = sorted(PROTO_DIR.glob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-Isimsearch/protos={PROTO_ROOT}",
            f"-I{googleapis}",
            f"-I{well_known}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *[f"simsearch/protos/{p.relative_to(PROTO_ROOT)}" for p in protos],
        ]
        if protoc.main(args) != 0:
            raise RuntimeError(f"protoc failed: {' '.join(args)}")
        produced = Path(tmp) / "simsearch" / "protos" / "simsearch" / "v1"
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for f in sorted(produced.iterdir()):
            if f.name.endswith(GENERATED_SUFFIXES):
                shutil.copy(f, out_dir / f.name)
                written.append(out_dir / f.name)
    return written


def main() -> int:
    for path in generate(PROTO_DIR):
        print(f"wrote {path.relative_to(PROTO_ROOT.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
