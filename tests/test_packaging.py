"""One distribution, one import root: the wheel carries every package, the protos and py.typed; and
`pip install simsearch` alone (no extras) is a working SDK and client CLI that loads no server code."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from conftest import API_KEY, start_server

ROOT = Path(__file__).resolve().parent.parent
SERVER_MODULES = ("scann", "ray", "torch", "transformers")

pytestmark = pytest.mark.integration  # pip, venvs, a real server


def build_wheel(out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(out), str(ROOT)], check=True, capture_output=True)
    (wheel,) = out.glob("simsearch-*.whl")
    return wheel


def test_wheel_holds_every_package_under_one_root(tmp_path):
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for pkg in ("contract", "protos", "router", "shard", "reranker", "encoder", "cluster", "client", "bench",
                "datasets"):
        assert f"simsearch/{pkg}/__init__.py" in names, pkg
    assert {"simsearch/__init__.py", "simsearch/py.typed", "simsearch/protos/simsearch/v1/points.proto",
            "simsearch/protos/simsearch/v1/points_pb2_grpc.py"} <= names
    top = {n.split("/")[0] for n in names}
    assert top <= {"simsearch", wheel.name.split("-")[0] + "-" + wheel.name.split("-")[1] + ".dist-info"}, top


# Run by the SDK-only venv's python: the SDK against a real server, then what it loaded.
SDK_SCRIPT = """
import json, sys
import numpy as np
import simsearch

address, key = sys.argv[1:3]
vectors = np.random.default_rng(0).standard_normal((200, 16)).astype(np.float32)
with simsearch.Client(address, api_key=key) as client:
    client.create_collection("sdk-only", dim=16, metric="l2", shards=2)
    client.upsert("sdk-only", ids=np.arange(200), vectors=vectors)
    found = client.search("sdk-only", vectors[:5], k=3)
print(json.dumps({"nearest": found.ids[:, 0].tolist(), "simsearch": simsearch.__file__,
                  "loaded": sorted(m for m in %r if m in sys.modules)}))
""" % (SERVER_MODULES,)


def _site_packages_mb(venv: Path) -> float:
    (site,) = (venv / "lib").glob("python3*/site-packages")
    out = subprocess.run(["du", "-sk", str(site)], check=True, capture_output=True, text=True).stdout
    return int(out.split()[0]) / 1024


def _size(mb: float) -> str:
    return f"{mb / 1024:.1f} GB" if mb >= 1024 else f"{mb:.0f} MB"


def test_the_sdk_installs_alone_and_talks_to_a_real_server(tmp_path):
    wheel = build_wheel(tmp_path / "dist")
    venv = tmp_path / "sdk-venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python, console = venv / "bin" / "python", venv / "bin" / "simsearch"
    start = time.perf_counter()
    # no extras; the dependencies come from the configured indexes, at the versions we test with
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel), "-c", str(ROOT / "constraints.txt")],
                         capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    install_s = time.perf_counter() - start
    pip_list = subprocess.run([str(python), "-m", "pip", "list", "--format=json", "--exclude", "pip",
                               "--exclude", "setuptools"], capture_output=True, text=True, check=True).stdout
    installed = sorted(p["name"].lower() for p in json.loads(pip_list))
    assert not {"scann", "ray", "torch", "transformers", "redis"} & set(installed), installed

    server = start_server(tmp_path / "data")
    try:
        run = subprocess.run([str(python), "-c", SDK_SCRIPT, server.address, API_KEY], capture_output=True,
                             text=True, timeout=120, cwd=tmp_path)  # not ROOT: the installed wheel, not the tree
        assert run.returncode == 0, run.stdout + run.stderr
        report = json.loads(run.stdout.strip().splitlines()[-1])
        assert report["simsearch"].startswith(str(venv)), report
        assert report["nearest"] == ["0", "1", "2", "3", "4"], report
        print(f"server modules loaded by the SDK: {report['loaded']}")
        assert report["loaded"] == [], report

        helped = subprocess.run([str(console), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert helped.returncode == 0 and "collections" in helped.stdout, helped.stdout + helped.stderr
        listed = subprocess.run([str(console), "collections", "list", "--address", server.address,
                                 "--api-key", API_KEY], capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert listed.returncode == 0, listed.stdout + listed.stderr
        assert listed.stdout.split() == ["sdk-only"], listed.stdout
    finally:
        server.stop(save=False)

    print(f"SDK-only venv: {_size(_site_packages_mb(venv))}; full venv: {_size(_site_packages_mb(ROOT / '.venv'))} "
          f"(site-packages; SDK install took {install_s:.0f} s: {', '.join(installed)})")
