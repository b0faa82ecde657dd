"""Start a private local Ray (embedded default) or join an existing cluster, quietly and safely.

The private local Ray (no address, or "local"):
- never attaches to another Ray on the machine: ray.init(address="local") always starts a new one,
  in a temporary directory of its own (0700), whatever $RAY_ADDRESS or /tmp/ray say;
- requires a token of its own (RAY_AUTH_MODE=token; a fresh random token per server process, held
  in the environment of the server and the Ray processes it starts, never in a file): Ray 2.60's GCS,
  raylet and worker gRPC servers listen on every interface whatever the node address (measured with
  `ss -ltnp`), so the token is what keeps other hosts and other local users out. The node address is
  127.0.0.1, so nothing is advertised on another interface;
- is stopped with the server, even after a kill -9: cluster/reaper.py watches the server from a
  process of its own and stops the Ray processes when the server is gone.

Joining a cluster (`address`): a TCP probe first (a wrong address fails in seconds, not minutes),
then Ray's token authentication as `ray start` sets it up (on by default for `ray start` since Ray
2.59): the token comes from `token_file` (serve --ray-token-file), else $RAY_AUTH_TOKEN or
$RAY_AUTH_TOKEN_PATH, else the file `ray start` wrote on this machine (~/.ray/auth_token). Without
any, the server joins without a token (a cluster started with RAY_AUTH_MODE=disabled).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import psutil
import ray

from simsearch._logs import adopt, third_party_level

log = logging.getLogger(__name__)
NAMESPACE = "simsearch"
PROBE_TIMEOUT_S = 3.0
GCS_PORT = 6379  # a head node's default GCS port
CLIENT_PORT = 10001  # Ray Client's default port (ray://host)
LOOPBACK = "127.0.0.1"
AUTH_MODE, TOKEN, TOKEN_PATH = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
RAY_START_TOKEN = Path.home() / ".ray" / "auth_token"  # where `ray start` leaves the cluster's token

adopt("ray")  # Ray installs its own stderr handler at import; route it through ours, quiet by default
_on_start: list[Callable[[], None]] = []
_private_token: str | None = None  # this process's private Ray token, made once
_reaper: subprocess.Popen | None = None
_private = False  # whether this process started (rather than joined) the Ray it is in


class RayAuthError(RuntimeError):
    """A token was asked for but cannot be read."""


def on_ray_start(callback: Callable[[], None]) -> Callable[[], None]:
    """Call `callback()` each time `start_ray` starts or joins Ray in this process, in the thread that
    called it, and return a function that removes it. Why: ray.init replaces the process's SIGTERM
    handler (its own `sys.exit` from the main thread; from any thread, the core worker's C++ failure
    handler, which aborts the process), so a server re-installs its own handlers here."""
    _on_start.append(callback)
    return lambda: _on_start.remove(callback) if callback in _on_start else None


def probe(address: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Refuse an address nothing listens on within seconds; ray.init would retry for minutes.

    "auto" and "local" name no endpoint and pass. Raises ConnectionError naming the address.
    """
    if address in ("auto", "local"):
        return
    target, default_port = (address[len("ray://"):], CLIENT_PORT) if address.startswith("ray://") else (address,
                                                                                                       GCS_PORT)
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        host, port = target, str(default_port)
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise ConnectionError(f"no Ray cluster at {address} ({host}:{port}: {reason})") from e


def _apply_auth_env() -> None:
    """Make this process's Ray config see the RAY_AUTH_* variables just set (Ray reads them at import)."""
    from ray._raylet import Config  # what Ray's own token set-up calls after changing RAY_AUTH_MODE
    Config.initialize("")


def join_token_source(token_file: Path | None = None) -> str | None:
    """Set this process up to present the cluster's token, if one is at hand; where it came from."""
    if token_file is not None:
        try:
            ok = bool(Path(token_file).read_text().strip())
        except OSError as e:
            raise RayAuthError(f"cannot read the Ray token file {token_file}: {e.strerror or e}") from e
        if not ok:
            raise RayAuthError(f"the Ray token file {token_file} is empty")
        os.environ.pop(TOKEN, None)
        os.environ[TOKEN_PATH] = str(token_file)
        os.environ[AUTH_MODE] = "token"
        source = str(token_file)
    elif os.environ.get(TOKEN) or os.environ.get(TOKEN_PATH):
        os.environ.setdefault(AUTH_MODE, "token")
        source = f"${TOKEN}" if os.environ.get(TOKEN) else f"${TOKEN_PATH}"
    elif RAY_START_TOKEN.is_file():
        os.environ.setdefault(AUTH_MODE, "token")
        source = str(RAY_START_TOKEN)
    else:
        return None
    _apply_auth_env()
    return source


def _private_ray_env() -> None:
    """A token for this process's private Ray: in the environment only (inherited by the Ray processes
    it starts, readable by this user alone in /proc), never the one in ~/.ray another Ray may use."""
    global _private_token
    if _private_token is None:
        _private_token = secrets.token_hex(32)
    os.environ.pop(TOKEN_PATH, None)
    os.environ[TOKEN] = _private_token
    os.environ[AUTH_MODE] = "token"
    _apply_auth_env()


def _start_reaper(temp_dir: str, roots: list[int]) -> None:
    """cluster/reaper.py, in a session of its own, holding the read end of a pipe whose write end only this
    process has: it stops the Ray processes and removes temp_dir once this process is gone, however."""
    global _reaper
    _reaper = subprocess.Popen([sys.executable, "-m", "simsearch.cluster.reaper", temp_dir, *map(str, roots)],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)


def start_ray(address: str | None = None, *, num_cpus: int | None = None,
              object_store_bytes: int = 1 << 30, token_file: Path | None = None) -> None:
    """Idempotent. Without an address (or with "local") a private local Ray starts for this process
    (see the module's docstring); with one, this process joins that cluster (after a TCP probe, with
    its token when one is at hand) and sizes nothing: the cluster did.

    Worker output reaches this terminal only at log level info or debug.
    """
    if ray.is_initialized():
        return
    verbose = third_party_level() <= logging.INFO
    common = dict(namespace=NAMESPACE, include_dashboard=False, log_to_driver=verbose,
                  logging_level=third_party_level(), configure_logging=False)
    if address and address != "local":
        probe(address)
        source = join_token_source(token_file)
        try:
            ray.init(address=address, **common)
        except (ConnectionError, RuntimeError, ray.exceptions.RayError) as e:
            hint = (f"the cluster refused the token from {source}" if source else
                    "no Ray token was found: a cluster started by `ray start` (Ray 2.59 or later) requires one; "
                    f"give it with --ray-token-file, ${TOKEN_PATH} or ${TOKEN}")
            raise ConnectionError(f"{e} ({hint})") from e
        log.info("joined Ray cluster at %s%s", address, f" (token from {source})" if source else "")
    else:
        _private_ray_env()
        temp_dir = tempfile.mkdtemp(prefix="simsearch-ray-")  # 0700; short: Ray's socket paths live here
        before = {c.pid for c in psutil.Process().children()}
        ray.init(address="local", num_cpus=num_cpus, object_store_memory=object_store_bytes,
                 _node_ip_address=LOOPBACK, _temp_dir=temp_dir, **common)
        _start_reaper(temp_dir, [c.pid for c in psutil.Process().children() if c.pid not in before])
        global _private
        _private = True
        log.info("started a private local Ray (%s)", temp_dir)
    adopt("ray")  # ray.init may have reconfigured its logger
    for callback in list(_on_start):
        callback()


def direct_host() -> str | None:
    """Where a shard actor's direct endpoint (cluster/direct.py) listens: loopback in the private local Ray
    (every process is on this machine), else None: the actor's own node address, for a router elsewhere."""
    return LOOPBACK if _private else None


def stop_ray() -> None:
    """Shut Ray down in this process; a private local Ray's reaper then sweeps what is left of it."""
    global _reaper, _private
    _private = False
    if ray.is_initialized():
        ray.shutdown()
    if _reaper is not None:
        reaper, _reaper = _reaper, None
        reaper.stdin.close()  # EOF: the reaper sweeps and removes the temporary directory
        try:
            reaper.wait(timeout=15)
        except subprocess.TimeoutExpired:
            reaper.kill()
