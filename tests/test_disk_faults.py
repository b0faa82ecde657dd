"""A real `simsearch serve` on a real disk that turns read-only or fills up while it runs: every
write it cannot make durable is refused with UNAVAILABLE or RESOURCE_EXHAUSTED (never INTERNAL,
never acknowledged), the catalog and the serving state stay exactly as they were, and after a
restart every acknowledged write is there.

The read-only disk is a loop-mounted ext4 image that the kernel forces read-only the way an
I/O error does (errors=remount-ro, triggered through /sys/fs/ext4/<dev>/trigger_fs_error):
writes through descriptors the server already holds fail too. `mount -o remount,ro` cannot
stand in for it: the kernel refuses it (EBUSY) while the server holds files open for writing
(its log segments, the catalog, the data dir's lock). The full disk is a small tmpfs.
Needs root (mount), as the test command runs here and in CI; without it these fail, never skip.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from conftest import serve_process
from simsearch import Client, NotFound, ResourceExhausted, Unavailable

pytestmark = pytest.mark.integration  # `simsearch serve` subprocesses on mounted file systems

KEY = "k" * 16
DIM = 8


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60)


class Ext4Disk:
    """A 64 MiB ext4 image mounted (loop) at `mount`, with errors=remount-ro."""

    def __init__(self, image: Path, mount: Path):
        self.image, self.mount = image, mount
        _run("truncate", "-s", "64M", str(image))
        _run("mkfs.ext4", "-q", "-F", str(image))
        mount.mkdir()
        self.attach()

    def attach(self) -> None:
        _run("mount", "-o", "loop,errors=remount-ro", str(self.image), str(self.mount))

    def fail(self) -> None:
        """What an I/O error does: the kernel turns the file system read-only, under open files too."""
        device = subprocess.run(["findmnt", "-no", "SOURCE", str(self.mount)], capture_output=True, text=True,
                                check=True).stdout.strip()
        Path(f"/sys/fs/ext4/{Path(device).name}/trigger_fs_error").write_text("test: disk turned read-only")

    def repair(self) -> None:
        """What an operator does next: unmount, check, mount again."""
        _run("umount", str(self.mount))
        subprocess.run(["e2fsck", "-fy", str(self.image)], capture_output=True, timeout=60)  # 1 = errors fixed
        self.attach()

    def detach(self) -> None:
        if subprocess.run(["umount", str(self.mount)], capture_output=True, timeout=60).returncode:
            subprocess.run(["umount", "-l", str(self.mount)], capture_output=True, timeout=60)  # still busy: lazily


@pytest.fixture
def ext4(tmp_path) -> Iterator[Ext4Disk]:
    try:
        disk = Ext4Disk(tmp_path / "disk.img", tmp_path / "disk")
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        pytest.fail(f"cannot mount a loop ext4 image here (root, losetup and mkfs.ext4 are needed): "
                    f"{getattr(e, 'stderr', e)}")
    try:
        yield disk
    finally:
        disk.detach()


@pytest.fixture
def tmpfs(tmp_path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    try:
        _run("mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount))
    except subprocess.CalledProcessError as e:
        pytest.fail(f"cannot mount a tmpfs here (root is needed): {e.stderr}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True, timeout=60)


class Served:
    def __init__(self, proc: subprocess.Popen, client: Client):
        self.proc, self.client = proc, client
        self.output = ""

    def kill(self) -> None:
        """SIGKILL: what survives is what the server made durable, not what a clean stop checkpoints."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)


@contextmanager
def serving(data_dir: Path) -> Iterator[Served]:
    """`simsearch serve` on data_dir until its banner; a client to it; SIGTERM on the way out."""
    with serve_process(data_dir, key=KEY) as run:
        with Client(run.address, api_key=KEY) as client:
            served = Served(run.proc, client)
            yield served
    served.output = run.output
    assert "Traceback" not in run.output, run.output


def _vectors(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _upsert_acknowledged(client: Client, collection: str, ids: list[str], vectors: np.ndarray,
                         acked: dict[str, np.ndarray]) -> None:
    client.upsert(collection, ids, vectors)
    acked.update(zip(ids, vectors))


def _assert_holds(client: Client, collection: str, acked: dict[str, np.ndarray]) -> None:
    got = client.get(collection, list(acked))
    assert got.missing == []
    np.testing.assert_array_equal(got.vectors, np.stack(list(acked.values())))


def test_a_disk_turning_read_only_refuses_writes_and_keeps_what_was_acknowledged(ext4):
    data = ext4.mount / "data"
    acked: dict[str, np.ndarray] = {}
    with serving(data) as served:
        client = served.client
        client.create_collection("kept", dim=DIM, shards=2)
        for b in range(4):
            _upsert_acknowledged(client, "kept", [f"p{b}-{i}" for i in range(50)], _vectors(50, b), acked)
        ext4.fail()

        with pytest.raises(Unavailable, match=r"could not create collection 'fresh'.*Read-only file system.*nothing "
                                              r"was changed"):
            client.create_collection("fresh", dim=DIM)
        assert client.list_collections() == ["kept"]
        with pytest.raises(Unavailable, match=r"could not drop collection 'kept'.*nothing was changed"):
            client.drop_collection("kept")
        assert client.list_collections() == ["kept"]
        assert client.search("kept", acked["p0-7"], k=1).ids[0, 0] == "p0-7"  # still serving
        with pytest.raises(Unavailable, match=r"write-ahead log.*Read-only file system.*not acknowledged"):
            client.upsert("kept", ["late"], _vectors(1, 99))
        assert client.get("kept", ["late"]).missing == ["late"]  # a write the log refused is not applied
    # The stop cannot checkpoint on a read-only disk (it says so); the log holds every acknowledged write.
    assert served.proc.returncode == 0 and "Read-only file system" in served.output, served.output

    ext4.repair()
    with serving(data) as served:
        client = served.client
        assert client.list_collections() == ["kept"]  # neither created nor dropped
        _assert_holds(client, "kept", acked)
        assert client.get("kept", ["late"]).missing == ["late"]
        client.drop_collection("kept")  # the disk is writable again: the drop works and sticks
        served.kill()
    with serving(data) as served:
        assert served.client.list_collections() == []
    assert not any((data / "tenants" / "default").iterdir())  # its files went with it


def _fill(mount: Path) -> Path:
    """Fill the file system to the last byte it will take."""
    filler = mount / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                pass
    return filler


def _refused_while_full(client: Client, mount: Path, acked: dict[str, np.ndarray]) -> None:
    """Fill the disk under a serving collection "kept"; check what is refused and that nothing changed;
    free the space and write again."""
    filler = _fill(mount)
    with pytest.raises(ResourceExhausted, match=r"disk is full.*not applied"):
        client.upsert("kept", [f"big{i}" for i in range(2000)], _vectors(2000, 2))
    with pytest.raises(ResourceExhausted, match=r"could not create collection 'fresh'.*disk is full.*nothing "
                                                r"was changed"):
        client.create_collection("fresh", dim=DIM)
    assert client.list_collections() == ["kept"]
    with pytest.raises(NotFound):
        client.describe_collection("fresh")
    assert client.get("kept", ["big0"]).missing == ["big0"]
    filler.unlink()  # space again: writes go on where they stopped
    _upsert_acknowledged(client, "kept", [f"b{i}" for i in range(100)], _vectors(100, 3), acked)
    client.create_collection("fresh", dim=DIM)


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_a_full_disk_refuses_writes_with_resource_exhausted(tmpfs, stop):
    """After SIGTERM the restart loads the shutdown's checkpoint; after SIGKILL it replays the log
    written around the refused write, which must hold no part of it."""
    data = tmpfs / "data"
    acked: dict[str, np.ndarray] = {}
    with serving(data) as served:
        served.client.create_collection("kept", dim=DIM)
        _upsert_acknowledged(served.client, "kept", [f"a{i}" for i in range(100)], _vectors(100, 1), acked)
        _refused_while_full(served.client, tmpfs, acked)
        if stop == "sigkill":
            served.kill()
    with serving(data) as served:
        client = served.client
        assert client.list_collections() == ["fresh", "kept"]
        _assert_holds(client, "kept", acked)
        assert client.get("kept", ["big0"]).missing == ["big0"]
    assert sorted(p.name.rsplit("-", 1)[0] for p in (data / "tenants" / "default").iterdir()) == ["fresh", "kept"]
