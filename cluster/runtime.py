"""Start a private local Ray (embedded default) or join an existing cluster, quietly."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import ray

from simsearch._logs import adopt, third_party_level

log = logging.getLogger(__name__)
NAMESPACE = "simsearch"
PROBE_TIMEOUT_S = 3.0
GCS_PORT = 6379  # a head node's default GCS port
CLIENT_PORT = 10001  # Ray Client's default port (ray://host)

adopt("ray")  # Ray installs its own stderr handler at import; route it through ours, quiet by default
_on_start: list[Callable[[], None]] = []


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


def start_ray(address: str | None = None, *, num_cpus: int | None = None,
              object_store_bytes: int = 1 << 30) -> None:
    """Idempotent. Without an address (or with "local") a private local Ray starts for this
    process, even when $RAY_ADDRESS names a cluster; with one, this process joins that cluster
    (after a TCP probe, so a wrong address fails in seconds) and sizes nothing: the cluster did.

    Worker output reaches this terminal only at log level info or debug.
    """
    if ray.is_initialized():
        return
    verbose = third_party_level() <= logging.INFO
    common = dict(namespace=NAMESPACE, include_dashboard=False, log_to_driver=verbose,
                  logging_level=third_party_level(), configure_logging=False)
    if address and address != "local":
        probe(address)
        ray.init(address=address, **common)
        log.info("joined Ray cluster at %s", address)
    else:
        ray.init(address="local", num_cpus=num_cpus, object_store_memory=object_store_bytes, **common)
        log.info("started a local Ray")
    adopt("ray")  # ray.init may have reconfigured its logger
    for callback in list(_on_start):
        callback()


def stop_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
