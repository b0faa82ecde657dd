"""The `simsearch` command as a user runs it: a real `serve` process, then collection commands."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from simsearch import Client

from conftest import free_port


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
    assert (tmp_path / "data" / "catalog.json").exists()
