"""The import contracts in pyproject.toml ([tool.importlinter]) hold, and they can fail: a wrong import
in a copy of the package breaks the contract that forbids it (the real tree is never touched)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"


def lint(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    """lint-imports with the pyproject.toml in `cwd`; grimp finds `simsearch` on sys.path, so PYTHONPATH
    (searched before the editable install's finder) decides which tree is analysed."""
    env = {**os.environ, "COLUMNS": "200"}  # contract names on one line
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([LINT, "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.integration  # lint-imports runs as a subprocess
def test_the_import_contracts_hold() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_contract_package_imports_only_the_standard_library() -> None:
    """What the forbidden list cannot say in general: any third-party import at all breaks this."""
    graph = grimp.build_graph("simsearch", include_external_packages=True, cache_dir=None)
    modules = {"simsearch.contract"} | graph.find_descendants("simsearch.contract")
    imported = {m for module in modules for m in graph.find_modules_directly_imported_by(module)}
    outside = {m for m in imported - modules if m.split(".")[0] not in sys.stdlib_module_names}
    assert not outside, outside


@pytest.mark.integration  # lint-imports runs as a subprocess, on a copy of the tree
@pytest.mark.parametrize(("path", "line", "contract", "chain"), [
    ("shard/config.py", "import ray", "shard, reranker and encoder run anywhere", "simsearch.shard.config -> ray"),
    ("client/sync.py", "from simsearch.router import engine", "The SDK (simsearch.client) imports nothing",
     "simsearch.client.sync -> simsearch.router.engine"),
    ("contract/limits.py", "import numpy", "simsearch.contract imports nothing", "simsearch.contract.limits -> numpy"),
    ("shard/storage.py", "from simsearch.cluster import runtime", "Server layers",
     "simsearch.shard.storage -> simsearch.cluster.runtime"),
])
def test_a_wrong_import_breaks_its_contract(tmp_path: Path, path: str, line: str, contract: str, chain: str) -> None:
    copy = tmp_path / "simsearch"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__", "tests",
                                                              "docs", "scripts"))
    target = copy / path
    target.write_text(target.read_text() + f"\n{line}  # deliberately wrong\n")
    result = lint(copy, pythonpath=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = result.stdout.split("Broken contracts", 1)[1]  # an indirect chain may break other contracts too
    assert contract in broken and chain in broken, result.stdout  # the chain exists only in the copy
