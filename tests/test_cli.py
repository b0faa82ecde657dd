"""The `simsearch` command as a user runs it: a real `serve` process, then collection commands;
expected failures of every command as one line without a traceback; the client commands in an
install without the server's packages; quiet logs by default."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from simsearch import Client
from simsearch.shard import IndexParams
from simsearch.shard.calibration import OVERSAMPLES

from conftest import API_KEY, free_port, random_vectors, serve_env, serve_process

pytestmark = pytest.mark.integration  # `simsearch serve` and the CLI as subprocesses


def _run(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simsearch", *args], env=env, capture_output=True, text=True, timeout=120)


def test_serve_generates_a_key_serves_and_shuts_down_cleanly(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("SIMSEARCH_BOOTSTRAP_KEY", "RAY_ADDRESS")}
    proc = subprocess.Popen([sys.executable, "-m", "simsearch", "serve", "--port", str(port), "--data-dir",
                             str(tmp_path / "data")], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        key, lines = None, []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            m = re.search(r"API key \(shown once\): (\S+)", line)
            key = m.group(1) if m else key
            if "listening on" in line or proc.poll() is not None:
                break
        assert key, "".join(lines)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            status = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest()).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        with Client(f"127.0.0.1:{port}", api_key=key) as c:
            c.create_collection("cli", 4, shards=2)
            c.upsert("cli", ["a", "b"], np.eye(2, 4, dtype=np.float32))

        cli_env = {**env, "SIMSEARCH_API_KEY": key, "SIMSEARCH_ADDRESS": f"127.0.0.1:{port}"}
        listed = _run("collections", "list", env=cli_env)
        assert listed.returncode == 0 and listed.stdout.split() == ["cli"]
        described = _run("collections", "describe", "cli", env=cli_env)
        assert described.returncode == 0 and '"points": 2' in described.stdout
        indexed = _run("collections", "index", "cli", "color", "keyword", env=cli_env)
        assert indexed.returncode == 0 and '"state": "ready"' in indexed.stdout, indexed.stderr
        wrong = _run("collections", "index", "cli", "size", "text", env=cli_env)
        assert wrong.returncode == 1 and "INVALID_ARGUMENT" in wrong.stderr and "keyword, integer" in wrong.stderr
        assert '"color"' in _run("collections", "describe", "cli", env=cli_env).stdout
        assert _run("collections", "unindex", "cli", "color", env=cli_env).returncode == 0
        made = _run("tenants", "create", "acme", "--max-collections", "3", env=cli_env)
        assert made.returncode == 0 and '"max_collections": 3' in made.stdout, made.stderr
        key = _run("keys", "create", "--tenant", "acme", "--role", "read-only", env=cli_env)
        assert key.returncode == 0 and "API key (shown once): ss_" in key.stdout, key.stderr
        secret = key.stdout.split("API key (shown once): ")[1].split()[0]
        listed_keys = _run("keys", "list", "--tenant", "acme", env=cli_env)
        assert '"role": "read-only"' in listed_keys.stdout and secret not in listed_keys.stdout
        denied = _run("tenants", "list", env={**cli_env, "SIMSEARCH_API_KEY": secret})
        assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr
        key_id = json.loads(listed_keys.stdout.splitlines()[0])["key_id"]
        assert _run("keys", "revoke", key_id, env=cli_env).returncode == 0
        gone = _run("collections", "list", env={**cli_env, "SIMSEARCH_API_KEY": secret})
        assert gone.returncode == 1 and "UNAUTHENTICATED" in gone.stderr
        assert _run("tenants", "delete", "acme", env=cli_env).returncode == 0
        missing = _run("collections", "describe", "nope", env=cli_env)
        assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
        bad_key = _run("collections", "list", env={**cli_env, "SIMSEARCH_API_KEY": "wrong"})
        assert bad_key.returncode == 1 and "UNAUTHENTICATED" in bad_key.stderr
        assert _run("collections", "drop", "cli", env=cli_env).returncode == 0
        assert _run("collections", "list", env=cli_env).stdout.split() == []
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert (tmp_path / "data" / "catalog.sqlite").exists()


# ---- helpers ----------------------------------------------------------------------------------

ABSL_LINE = re.compile(r"^[IWEF]\d{4} |absl::InitializeLog", re.MULTILINE)  # ScaNN's C++ log lines


_clean_env = serve_env


@contextmanager
def serving(data_dir: Path) -> Iterator[tuple[str, Path]]:
    """A real `simsearch serve` (default logging); yields its address and the file its stderr goes to."""
    err = data_dir.parent / f"{data_dir.name}.stderr"
    with open(err, "w") as err_file:
        with serve_process(data_dir, stderr=err_file) as run:
            yield run.address, err
    assert run.proc.returncode == 0, err.read_text()


def assert_one_line_failure(proc: subprocess.CompletedProcess, pattern: str, code: int | None = None) -> None:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and (code is None or proc.returncode == code), (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and re.search(pattern, lines[0]), proc.stderr


def _without(modules: tuple[str, ...], *args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """The command as in an install without `modules` (an SDK-only install: scann, ray, torch): a
    finder first on sys.meta_path answers ModuleNotFoundError for them, as Python does for a
    package that is not installed. Prints the server-side simsearch modules that the command
    imported, on its stdout's last line."""
    script = tmp_path / "without.py"
    script.write_text(
        "import importlib.abc, json, sys\n"
        f"MISSING = {modules!r}\n"
        "class NotInstalled(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] in MISSING:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, NotInstalled())\n"
        "from simsearch.cli import main\n"
        "try:\n"
        "    code = main(sys.argv[1:])\n"
        "finally:\n"
        "    server_side = ('simsearch.router', 'simsearch.cluster', 'simsearch.shard', 'simsearch.encoder')\n"
        "    print(json.dumps(sorted(m for m in sys.modules if m.startswith(server_side))))\n"
        "sys.exit(code)\n")
    return subprocess.run([sys.executable, str(script), *args], env=_clean_env(), capture_output=True, text=True,
                          timeout=120)


SERVER_PACKAGES = ("scann", "scann_pybind", "ray", "torch")


# ---- describe: the index parameters in use ----------------------------------------------------

def test_describe_shows_the_index_parameters_in_use_and_index_builds_log_nothing(tmp_path):
    with serving(tmp_path / "data") as (address, err):
        with Client(address, api_key=API_KEY) as c:
            c.create_collection("auto", 32, shards=2)  # every index parameter left at auto (0)
            c.upsert("auto", np.arange(5000), random_vectors(5000, 32))
            c.build_index("auto")
        described = _run("collections", "describe", "auto", "--address", address, "--api-key", API_KEY,
                         env=_clean_env())
    assert described.returncode == 0, described.stderr
    info = json.loads(described.stdout)
    auto = IndexParams()
    shards = info["shard_info"]
    assert [s["index_state"] for s in shards] == ["ready", "ready"] and sum(s["indexed"] for s in shards) == 5000
    for s in shards:  # each shard reports what "auto" resolved to for its own size
        assert s["num_leaves"] == auto.leaves_for(s["indexed"]) > 0
        # leaves_to_search and oversample: calibrated after the build to the target recall (shard/calibration.py)
        assert 0 < s["leaves_to_search"] <= s["num_leaves"] and s["oversample"] in OVERSAMPLES
        assert s["calibrated_recall"] >= s["target_recall"] == auto.recall_target == 0.95
        assert s["dims_per_block"] == auto.block_dims_for(32) == 1
        assert s["rebuild_threshold"] == auto.rebuild_after(s["indexed"])
    index = info["index"]  # the collection shows a value where every shard agrees, else 0 (auto)
    for field in ("num_leaves", "leaves_to_search", "dims_per_block", "oversample", "rebuild_threshold"):
        used = {s[field] for s in shards}
        assert index[field] == (used.pop() if len(used) == 1 else 0), (field, index, shards)
    assert index["dims_per_block"] == 1 and index["min_index_size"] == 2048 and index["target_recall"] == 0.95
    # the server built two ScaNN indexes above; none of ScaNN's C++ INFO lines reached its stderr
    assert not ABSL_LINE.search(err.read_text()), err.read_text()


# ---- expected failures: one line, non-zero, no traceback --------------------------------------

def test_train_with_a_missing_or_wrong_config(tmp_path):
    env = _clean_env()
    assert_one_line_failure(_run("train", str(tmp_path / "missing.yaml"), env=env),
                            r"^simsearch train: .*missing\.yaml: no such file", 2)
    cases = {
        "dataset.yaml": ("name: x\ndataset: imagenet\n", r"dataset must be one of .*got 'imagenet'"),
        "backbone.yaml": ("name: x\nbackbone: resnet\n", r"backbone must be one of .*got 'resnet'"),
        "key.yaml": ("name: x\nmodel: resnet\n", r"unknown config keys \['model'\]"),
        "type.yaml": ("name: x\nepochs: many\n", r"type\.yaml: a value has the wrong type"),
        "syntax.yaml": ("name: [x\n", r"syntax\.yaml: .*expected"),
    }
    for name, (text, pattern) in cases.items():
        (tmp_path / name).write_text(text)
        assert_one_line_failure(_run("train", str(tmp_path / name), "--models-dir", str(tmp_path / "models"),
                                     env=env), rf"^simsearch train: .*{pattern}", 2)


def test_eval_of_an_unknown_model(tmp_path):
    proc = _run("eval", "nosuchmodel@1", "--dataset", "digits", "--models-dir", str(tmp_path), env=_clean_env())
    assert_one_line_failure(proc, r"^simsearch eval: no model named 'nosuchmodel'.*simsearch models list", 2)


def test_client_commands_without_a_server_suggest_address(tmp_path):
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    for args in (("collections", "describe", "x"), ("collections", "list"), ("models", "list")):
        proc = _run(*args, "--address", address, "--api-key", "k", env=_clean_env())
        assert_one_line_failure(proc, rf"^simsearch {args[0]}: UNAVAILABLE: .*{address}.*--address", 1)


def test_wrong_api_key_says_which_key_to_pass(tmp_path):
    with serving(tmp_path / "data") as (address, _):
        proc = _run("collections", "list", "--address", address, "--api-key", "wrong", env=_clean_env())
    assert_one_line_failure(proc, r"^simsearch collections: UNAUTHENTICATED: .*SIMSEARCH_API_KEY", 1)


def test_json_log_lines_and_the_traceback_at_debug(tmp_path):
    proc = _run("--log-format", "json", "--log-level", "debug", "collections", "list", "--address",
                f"127.0.0.1:{free_port()}", env=_clean_env())
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and lines[-1].startswith("simsearch collections: UNAVAILABLE"), proc.stderr
    records = [json.loads(line) for line in lines[:-1]]
    assert records and all(set(r) >= {"time", "level", "logger", "message"} for r in records), proc.stderr
    assert any(r["level"] == "debug" and "Traceback" in r.get("exception", "") for r in records), proc.stderr


# ---- global options and bench -------------------------------------------------------------------

def test_global_options_go_before_bench(tmp_path):
    helped = _run("-v", "bench", "--help", env=_clean_env())
    assert helped.returncode == 0 and helped.stdout.startswith("usage: simsearch bench"), helped.stderr
    ran = _run("--log-level", "info", "bench", "--dataset", "tiny", "--systems", "numpy", "--queries", "100",
               "--single", "20", "--out", str(tmp_path), env=_clean_env())
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "bench-synthetic-gmm-32-4k.json").exists()
    bad = _run("-v", "bench", "--shards", "two", env=_clean_env())
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].endswith("argument --shards: must be comma-separated positive "
                                                        "integers, got 'two'"), bad.stderr


# ---- an SDK-only install ------------------------------------------------------------------------

def test_client_commands_import_only_the_sdk(tmp_path):
    proc = _without(SERVER_PACKAGES, "collections", "list", "--address", f"127.0.0.1:{free_port()}",
                    "--api-key", "k", tmp_path=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().startswith("simsearch collections: UNAVAILABLE"), proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []  # no router/cluster/shard/encoder module


def test_server_commands_name_the_missing_extra(tmp_path):
    cases = [  # (what is not installed, the command, the extra that installs it)
        (("scann", "scann_pybind", "ray"), ["serve", "--port", "0", "--data-dir", str(tmp_path / "data")], "server"),
        (("scann", "scann_pybind", "ray"), ["demo"], "bench"),
        (("torch",), ["eval", "m@1", "--dataset", "digits"], "train"),
        (("torch",), ["train", str(tmp_path / "ok.yaml"), "--models-dir", str(tmp_path / "models")], "train"),
    ]
    (tmp_path / "ok.yaml").write_text("name: ok\nepochs: 1\n")
    for missing, command, extra in cases:
        proc = _without(missing, *command, tmp_path=tmp_path)
        assert_one_line_failure(proc, rf"^simsearch {command[0]} needs the {extra} extra: "
                                      rf"pip install 'simsearch\[{extra}\]' \(\w+ is not installed\)$", 2)
