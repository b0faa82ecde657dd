"""One distribution, one import root: the wheel carries every package, the protos and py.typed."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_holds_every_package_under_one_root(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("simsearch-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for pkg in ("protos", "router", "shard", "reranker", "encoder", "cluster", "client", "bench"):
        assert f"simsearch/{pkg}/__init__.py" in names, pkg
    assert {"simsearch/__init__.py", "simsearch/py.typed", "simsearch/protos/simsearch/v1/points.proto",
            "simsearch/protos/simsearch/v1/points_pb2_grpc.py"} <= names
    top = {n.split("/")[0] for n in names}
    assert top <= {"simsearch", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}, top
