"""Guards around authentication: failed keys answered slowly, per source; admin actions audited.

`FailedAuthGuard`: every wrong key is answered only after FAILURE_DELAY_S, and a source (the
peer's address without its port) may have at most MAX_PENDING_FAILURES such answers pending; past
that its requests are refused at once with RESOURCE_EXHAUSTED and RetryInfo, without looking at
the key. So one address gets at most MAX_PENDING_FAILURES / FAILURE_DELAY_S guesses answered per
second (was ~2,000) and other addresses are never affected; a valid key from an address in that
state is refused too until the pending answers go out (checking it first would let an attacker tell
right from wrong at full speed).
The delay is an asyncio sleep: it holds no thread.

`AuditLog`: JSON lines in `<data-dir>/audit.log` (mode 0600), one per admin action (tenants,
keys, collections, aliases, payload indexes): time, key id, tenant, role, source, action, target,
outcome. Written and fsynced off the event loop; a failed write is logged, never fatal.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import threading
import time
from pathlib import Path

from simsearch.contract.errors import ResourceExhausted

log = logging.getLogger(__name__)
FAILURE_DELAY_S = 1.0
MAX_PENDING_FAILURES = 10
AUDIT_FILE = "audit.log"
AUDITED = frozenset({
    "CreateTenant", "UpdateTenant", "DeleteTenant", "CreateKey", "RevokeKey", "RotateKey",
    "CreateCollection", "DropCollection", "CreateAlias", "SwitchAlias", "DeleteAlias", "CreatePayloadIndex",
    "DropPayloadIndex",
})


def source_of(peer: str | None) -> str:
    """Where a call comes from, as the guard counts it: 'ipv4:127.0.0.1:5000' -> 'ipv4:127.0.0.1'; an IPv6
    peer by its /64 (one host usually holds a whole /64, and could otherwise rotate addresses within it);
    unix sockets as they are."""
    if not peer:
        return "unknown"
    if peer.startswith("ipv4:"):
        return peer.rsplit(":", 1)[0]
    if peer.startswith("ipv6:"):
        host = peer[5:].rsplit(":", 1)[0].strip("[]").split("%")[0]
        try:
            return f"ipv6:{ipaddress.IPv6Network(f'{host}/64', strict=False)}"
        except ValueError:
            return peer.rsplit(":", 1)[0]
    return peer


class FailedAuthGuard:
    def __init__(self, delay_s: float = FAILURE_DELAY_S, max_pending: int = MAX_PENDING_FAILURES):
        self.delay_s = delay_s
        self.max_pending = max_pending
        self._pending: dict[str, int] = {}

    def check(self, source: str) -> None:
        """Refuse at once while `source` has its fill of wrong keys waiting for their answer."""
        if self._pending.get(source, 0) >= self.max_pending:
            raise ResourceExhausted(f"too many requests with unrecognised API keys from {source}; retry later",
                                    retry_after_s=self.delay_s)

    async def failed(self, source: str) -> None:
        """Hold a wrong key's answer for delay_s (counted against its source meanwhile)."""
        self._pending[source] = self._pending.get(source, 0) + 1
        try:
            await asyncio.sleep(self.delay_s)
        finally:
            left = self._pending[source] - 1
            if left:
                self._pending[source] = left
            else:
                del self._pending[source]


class AuditLog:
    def __init__(self, root: Path):
        self.path = root / AUDIT_FILE
        self._lock = threading.Lock()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)
        self._fd = fd

    def _write(self, line: bytes) -> None:
        with self._lock:
            if self._fd < 0:
                return
            os.write(self._fd, line)
            os.fsync(self._fd)

    async def record(self, *, principal, source: str, action: str, target: dict, outcome: str) -> None:
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() % 1 * 1000):03d}Z",
                 "key_id": getattr(principal, "key_id", ""), "tenant": getattr(principal, "tenant", ""),
                 "role": getattr(principal, "role", ""), "source": source, "action": action, "target": target,
                 "outcome": outcome}
        try:
            await asyncio.to_thread(self._write, (json.dumps(entry, sort_keys=True) + "\n").encode())
        except OSError as e:
            log.error("could not write the audit log %s: %s", self.path, e.strerror or e)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
