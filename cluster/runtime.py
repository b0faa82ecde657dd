"""Start a local Ray (embedded default) or join an existing cluster."""

from __future__ import annotations

import logging

import ray

log = logging.getLogger(__name__)
NAMESPACE = "simsearch"


def start_ray(address: str | None = None, *, num_cpus: int | None = None,
              object_store_bytes: int = 1 << 30) -> None:
    """Idempotent. Without an address a private local Ray starts in this process's session."""
    if ray.is_initialized():
        return
    common = dict(namespace=NAMESPACE, include_dashboard=False, log_to_driver=True,
                  logging_level=logging.WARNING, configure_logging=False)
    if address:
        ray.init(address=address, **common)
        log.info("joined Ray cluster at %s", address)
    else:
        ray.init(num_cpus=num_cpus, object_store_memory=object_store_bytes, **common)
        log.info("started a local Ray")


def stop_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
