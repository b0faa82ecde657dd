"""Every start-up fault of `simsearch serve`, as a user meets it: the real command in a
subprocess ends with one line naming the problem and the fix, a non-zero exit, no traceback,
and (for Redis and Ray) within seconds rather than minutes. Damaged or missing files stop
start-up loudly (or, with --skip-damaged, only their collection); and a SIGTERM stops the
server cleanly even after Ray has started inside it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from conftest import API_KEY, free_port, serve_env, serve_process
from simsearch import Client, DeadlineExceeded, FailedPrecondition
from simsearch.router import EmbeddedServer, ServeConfig
from simsearch.router.app import StartupError
from simsearch.router.catalog import Catalog

pytestmark = pytest.mark.integration  # `simsearch serve` as a subprocess

QUICK_S = 15.0  # generous: the faults are reported in a few seconds (most of it importing the server)


_env = serve_env


def serve_fails(*args: str, data_dir: Path | None, match: str) -> float:
    """Runs `simsearch serve --port 0 ARGS`; checks the one-line failure; returns the seconds it took."""
    cmd = [sys.executable, "-m", "simsearch", "serve", "--port", "0", *args]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t0
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert lines and re.search(match, lines[-1]), proc.stderr
    assert "listening on" not in proc.stdout, proc.stdout
    return took


@contextmanager
def serving(data_dir: Path, *args: str, port: int | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """A real `simsearch serve` on data_dir, up to its "listening on" banner (yielded with the process)."""
    with serve_process(data_dir, *args, port=port, key="k" * 16) as run:
        yield run.proc, run.banner


@contextmanager
def listener() -> Iterator[int]:
    """A port some other program holds (a plain listening socket)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_data_dir_is_a_file(tmp_path):
    f = tmp_path / "catalog"
    f.write_text("not a directory")
    serve_fails(data_dir=f, match=rf"^simsearch serve: data dir {re.escape(str(f))} is a file.*--data-dir")


def test_data_dir_under_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    serve_fails(data_dir=f / "data", match=r"^simsearch serve: cannot create data dir .*Not a directory.*--data-dir")


def test_data_dir_that_cannot_be_created():
    serve_fails(data_dir=Path("/proc/simsearch-data"),
                match=r"^simsearch serve: cannot create data dir /proc/.*--data-dir")


def test_data_dir_that_is_not_writable():
    """/proc exists and is a directory, but no file can be created there, not even by root."""
    serve_fails(data_dir=Path("/proc"), match=r"^simsearch serve: data dir /proc is not writable.*--data-dir")


def test_port_in_use(tmp_path):
    with listener() as port:
        serve_fails("--port", str(port), data_dir=tmp_path, match=rf"^simsearch serve: port {port} .* in use.*--port")


def test_port_shared_with_another_simsearch_server(tmp_path):
    """gRPC servers set SO_REUSEPORT, so a second one could bind the same port and split the traffic;
    serve must refuse instead."""
    port = free_port()
    with serving(tmp_path / "a", port=port) as (first, _):
        serve_fails("--port", str(port), data_dir=tmp_path / "b", match=rf"port {port} .* in use")
    assert first.returncode == 0


def test_a_data_dir_has_one_owner_until_it_dies(tmp_path):
    """Two servers on one data dir would overwrite each other's snapshots: the second is refused,
    naming the first; the lock dies with its owner, so a kill -9 leaves none behind."""
    data = tmp_path / "data"
    with serving(data) as (first, banner):
        assert "durability: fsync" in banner  # the default
        owner = (data / "LOCK").read_text()
        assert re.match(rf"pid {first.pid} on host \S+, since \d{{4}}-", owner), owner
        assert (data / "LOCK").stat().st_mode & 0o777 == 0o600
        took = serve_fails(data_dir=data, match=rf"^simsearch serve: data dir {re.escape(str(data))} is in use by "
                                                rf"another simsearch server \(pid {first.pid} on host .*\); stop "
                                                rf"that server or pass another --data-dir$")
        assert took < QUICK_S
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
    with serving(data) as (second, _):
        assert f"pid {second.pid} on" in (data / "LOCK").read_text()
    assert second.returncode == 0
    assert (data / "LOCK").read_text() == ""  # a clean stop leaves no owner behind


def test_an_embedded_server_owns_its_data_dir_until_stopped(tmp_path):
    """flock belongs to the open file, not the process: a second server in the same process is
    refused too, and a stopped one frees the directory for the next."""
    config = ServeConfig(port=0, data_dir=tmp_path, bootstrap_key=API_KEY)
    first = EmbeddedServer(config).start()
    try:
        with pytest.raises(StartupError, match=rf"data dir {re.escape(str(tmp_path))} is in use .*pid {os.getpid()}"):
            EmbeddedServer(config).start()
    finally:
        first.stop()
    EmbeddedServer(config).start().stop()


def test_a_failed_start_releases_the_data_dir(tmp_path):
    config = ServeConfig(port=0, data_dir=tmp_path, bootstrap_key=API_KEY)
    with listener() as port:
        with pytest.raises(StartupError, match="in use"):
            EmbeddedServer(ServeConfig(port=port, data_dir=tmp_path, bootstrap_key=API_KEY)).start()
    EmbeddedServer(config).start().stop()


def test_unknown_durability_is_a_usage_error(tmp_path):
    serve_fails("--durability", "sometimes", data_dir=tmp_path, match=r"--durability: invalid choice: 'sometimes'")


@pytest.mark.parametrize("ms", ["0", "10001", "soon"])
def test_durability_interval_out_of_range(tmp_path, ms):
    serve_fails("--durability-interval-ms", ms, data_dir=tmp_path, match=r"--durability-interval-ms: must be .*\[1, 10000\]")


def test_durability_config_is_checked_and_shown():
    with pytest.raises(ValueError, match=r"durability must be one of fsync, interval, none; got 'always'"):
        ServeConfig(durability="always")
    with pytest.raises(ValueError, match=r"durability_interval_ms must be in \[1, 10000\], got 0"):
        ServeConfig(durability="interval", durability_interval_ms=0)
    assert ServeConfig().durability_banner == "fsync"
    assert ServeConfig(durability="interval", durability_interval_ms=250).durability_banner == \
        "interval (250 ms loss window)"
    assert ServeConfig(durability="none").durability_banner.startswith("NONE (acknowledged writes can be lost")


@pytest.mark.parametrize("args, shown", [(("--durability", "interval"), "durability: interval (100 ms loss window)"),
                                         (("--durability", "none"), "durability: NONE (acknowledged writes can be lost")])
def test_the_banner_names_the_durability(tmp_path, args, shown):
    with serving(tmp_path, *args) as (_, banner):
        assert shown in banner


def test_metrics_port_in_use(tmp_path):
    with listener() as port:
        serve_fails("--metrics-port", str(port), data_dir=tmp_path,
                    match=rf"^simsearch serve: port {port} .* in use.*--metrics-port")


def test_port_out_of_range(tmp_path):
    serve_fails("--port", "70000", data_dir=tmp_path, match=r"--port: must be in \[0, 65535\], got 70000")


def test_host_that_is_not_local(tmp_path):
    serve_fails("--host", "nosuchhost.invalid", data_dir=tmp_path,
                match=r"^simsearch serve: --host .* does not resolve")


def test_malformed_redis_url(tmp_path):
    serve_fails("--redis-url", "notaurl", data_dir=tmp_path,
                match=r"^simsearch serve: --redis-url 'notaurl' is not a Redis URL.*redis://")


def test_unreachable_redis_fails_within_seconds(tmp_path):
    port = free_port()  # nothing listens there
    took = serve_fails("--redis-url", f"redis://127.0.0.1:{port}/0", data_dir=tmp_path,
                       match=rf"^simsearch serve: cannot reach Redis at redis://127.0.0.1:{port}/0")
    assert took < QUICK_S


def test_ray_address_with_nothing_listening_fails_within_seconds(tmp_path):
    port = free_port()
    took = serve_fails("--ray-address", f"127.0.0.1:{port}", data_dir=tmp_path,
                       match=rf"^simsearch serve: no Ray cluster at 127.0.0.1:{port}.*--ray-address")
    assert took < QUICK_S


def test_unknown_log_level_is_a_usage_error(tmp_path):
    serve_fails("--log-level", "loud", data_dir=tmp_path, match=r"--log-level: invalid choice: 'loud'")


# ---- damaged or missing files ----

KEY = "k" * 16  # what `serving` starts with


def _client(banner: str) -> Client:
    return Client(banner.split("listening on ")[1].split(" ")[0], api_key=KEY)


def _shard_dir(data: Path, name: str, shard: int = 0) -> Path:
    catalog = Catalog(data)
    try:
        return catalog.shard_dir(catalog.get("default", name), shard)
    finally:
        catalog.close()


@pytest.fixture
def two_collections(tmp_path) -> Path:
    """A data dir with collections "good" and "bad" (two shards), each with points, stopped cleanly
    (so each shard has a checkpoint manifest)."""
    data = tmp_path / "data"
    with EmbeddedServer(ServeConfig(port=0, data_dir=data, bootstrap_key=KEY)) as server:
        with Client(server.address, api_key=KEY) as client:
            for name in ("good", "bad"):
                client.create_collection(name, dim=4, shards=2)
                client.upsert(name, [f"p{i}" for i in range(20)], np.eye(20, 4, dtype=np.float32) + 1)
    return data


def test_a_damaged_manifest_stops_start_up_naming_the_file(two_collections):
    manifest = _shard_dir(two_collections, "bad", 1) / "manifest.json"
    manifest.write_text(manifest.read_text()[:20])  # cut mid-document
    serve_fails(data_dir=two_collections,
                match=rf"^simsearch serve: collection default/bad cannot be loaded: .*{re.escape(str(manifest))}.* "
                      rf"start with --skip-damaged")


def test_skip_damaged_serves_the_rest_and_reports_the_damaged_one(two_collections):
    manifest = _shard_dir(two_collections, "bad", 0) / "manifest.json"
    manifest.write_bytes(b"\x00garbled\xff")
    with serving(two_collections, "--skip-damaged") as (proc, banner):
        # read up to the banner: the one warning line for the skipped collection came before it
        with _client(banner) as client:
            assert client.list_collections() == ["bad", "good"]
            assert client.get("good", ["p3"]).missing == []
            info = client.describe_collection("bad")
            assert info.index_state == "unavailable" and info.points == 0
            assert all(not s["available"] and str(manifest) in s["error"] for s in info.shard_info)
            calls = [lambda: client.search("bad", np.ones(4, np.float32), k=1), lambda: client.get("bad", ["p1"]),
                     lambda: client.upsert("bad", ["x"], np.ones((1, 4), np.float32)),
                     lambda: client.delete("bad", ["p1"]), lambda: client.build_index("bad")]
            for call in calls:
                with pytest.raises(FailedPrecondition, match=rf"collection 'bad' is unavailable .*drop it.*"
                                                             rf"{re.escape(str(manifest))}"):
                    call()
            client.drop_collection("bad")  # what an operator can do about it
            assert client.list_collections() == ["good"]
    with serving(two_collections) as (_, banner):  # no flag needed any more
        with _client(banner) as client:
            assert client.list_collections() == ["good"]


def start_and_stop(data_dir: Path, *args: str) -> str:
    """`simsearch serve` up to its banner, then SIGTERM; checks the clean exit and returns its log (stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "simsearch", "serve", "--port", "0", "--data-dir", str(data_dir),
                             *args], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    banner = proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert "listening on" in banner and proc.returncode == 0, err
    return err


def test_the_skipped_collection_is_logged_once(two_collections):
    manifest = _shard_dir(two_collections, "bad") / "manifest.json"
    manifest.unlink()  # the checkpoint's files stay behind
    err = start_and_stop(two_collections, "--skip-damaged")
    warnings = [line for line in err.splitlines() if "serving without collection" in line]
    assert len(warnings) == 1 and "default/bad (listed as unavailable): " in warnings[0], err
    assert str(manifest) in warnings[0], err  # the fault names the file


def test_a_shard_in_a_ray_actor_that_cannot_load_is_named_too(two_collections, ray_cluster):
    """With placement "ray" the shard loads in its actor; the fault comes back through Ray, still naming
    the file (cluster/_calls.py keeps the constructor's own message)."""
    manifest = _shard_dir(two_collections, "bad", 1) / "manifest.json"
    manifest.write_text("{")
    with pytest.raises(StartupError, match=rf"collection default/bad cannot be loaded: .*shard-1 is unavailable: "
                                           rf".*CheckpointDamaged: .*{re.escape(str(manifest))}"):
        EmbeddedServer(ServeConfig(port=0, data_dir=two_collections, bootstrap_key=KEY, placement="ray")).start()
    config = ServeConfig(port=0, data_dir=two_collections, bootstrap_key=KEY, placement="ray", skip_damaged=True)
    with EmbeddedServer(config) as server, Client(server.address, api_key=KEY) as client:
        assert client.get("good", ["p1"]).missing == []
        assert client.describe_collection("bad").index_state == "unavailable"


def test_a_missing_collection_directory_stops_start_up(two_collections):
    shard = _shard_dir(two_collections, "bad", 0)
    shutil.rmtree(shard.parent)
    serve_fails(data_dir=two_collections,
                match=rf"^simsearch serve: collection default/bad cannot be loaded: its shard directory "
                      rf"{re.escape(str(shard))} is missing")


def test_a_missing_catalog_beside_collection_data_stops_start_up(two_collections):
    (two_collections / "catalog.sqlite").unlink()
    serve_fails(data_dir=two_collections,
                match=rf"^simsearch serve: the catalog {re.escape(str(two_collections))}/catalog.sqlite is missing "
                      rf"or empty but .*/tenants holds collection data; restore catalog.sqlite")


def test_a_damaged_catalog_stops_start_up(two_collections):
    catalog = two_collections / "catalog.sqlite"
    catalog.write_bytes(catalog.read_bytes()[:100])
    serve_fails(data_dir=two_collections,
                match=rf"^simsearch serve: the catalog {re.escape(str(catalog))} cannot be read .*restore it")


def test_orphaned_collection_directories_are_removed_at_start(two_collections):
    """A crash between making a collection's directories and committing it (or between committing a
    drop and deleting its files) leaves them unowned: the next start removes them, saying so."""
    orphan = two_collections / "tenants" / "default" / "ghost-0123456789ab"
    (orphan / "shard-0" / "wal").mkdir(parents=True)
    err = start_and_stop(two_collections)
    assert re.search(rf"WARNING .*removing {re.escape(str(orphan))}: no catalogued collection owns it", err), err
    assert not orphan.exists()
    assert sorted(p.name.split("-")[0] for p in orphan.parent.iterdir()) == ["bad", "good"]


# ---- shutdown after Ray started in the server ----

def _register_untrained_image_encoder(models: Path) -> str:
    """An untrained MLP on 8x8 images: enough for an Embed call to start encoder replicas (and Ray)."""
    from simsearch.encoder import TrainConfig, registry
    from simsearch.encoder.model import build_encoder

    model = build_encoder(TrainConfig(dataset="digits", backbone="mlp", width=16, embedding_dim=8), (1, 8, 8))
    return registry.save(model, name="tiny", kind="image", input_shape=(1, 8, 8), config={},
                         fingerprint="untrained", metrics={}, root=models)


def _embed(client: Client, ref: str, attempts: int = 4) -> np.ndarray:
    """Embed two blank images. The first call starts Ray and the replicas (torch), which on a loaded machine
    can outlast the server's 30 s deadline; they go on starting, so asking again is enough."""
    for attempt in range(attempts):
        try:
            return client.embed(ref, images=np.zeros((2, 1, 8, 8), np.uint8)).vectors
        except DeadlineExceeded:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def test_sigterm_after_ray_started_inside_the_server_drains_and_checkpoints(tmp_path):
    """ray.init (here: an encoder's first Embed, in a worker thread) replaces SIGTERM's handler with
    one that aborts the process; the server installs its own again, so SIGTERM still drains and
    checkpoints."""
    data = tmp_path / "data"
    ref = _register_untrained_image_encoder(data / "models")
    with serving(data) as (proc, banner):
        with _client(banner) as client:
            client.create_collection("c", dim=4)
            assert _embed(client, ref).shape == (2, 8)  # Ray is up, in the server process
            client.upsert("c", ["p1", "p2"], np.eye(2, 4, dtype=np.float32))
        os.kill(proc.pid, signal.SIGTERM)
        out = proc.stdout.read()
        proc.wait(timeout=120)
    assert proc.returncode == 0, out
    assert "shutting down: draining calls and snapshotting shards" in out, out
    assert json.loads((_shard_dir(data, "c") / "manifest.json").read_text())["last_seq"] > 0  # the checkpoint
    with serving(data) as (_, banner):
        with _client(banner) as client:
            assert client.get("c", ["p1", "p2"]).missing == []


def test_a_different_bootstrap_key_at_a_later_start_is_refused_and_modes_are_tightened(tmp_path):
    """The first start's key stays the admin key: another one given later stops start-up with one line
    (never a second all-powerful key); a data dir others could read is set to 0700."""
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    with serving(data):
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert stat.S_IMODE((data / "catalog.sqlite").stat().st_mode) == 0o600
        assert stat.S_IMODE((data / "server.secret").stat().st_mode) == 0o600
    serve_fails("--bootstrap-key", "another-key-0123456789", data_dir=data,
                match=r"^simsearch serve: the bootstrap key given .* is not a key of this data dir")
    with serving(data):  # the first key still works
        pass
