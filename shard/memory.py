"""Hand memory a shard has freed back to the operating system, so its RSS tracks what it stores.

Why: glibc keeps freed heap memory for reuse; an index build frees a whole copy of the shard's
rows (and the previous segments), and ScaNN's serialize frees ~1.1 GB of small blocks for a
60k x 784 index, which stay in the process unless trimmed. Measured on 200k x 50-d points
in one process: 441 bytes per point after a build without a trim, 388 with one (326 of live
data). Pinning glibc's mmap threshold instead gave the same RSS but halved write throughput
(every large request buffer then costs fresh page faults: 62k against 130-200k vectors/s into
one shard), so the shard trims after builds and checkpoints instead. No effect (and no error)
where the C library is not glibc.

Arenas: glibc gives threads their own heaps (up to 8 per core), and memory a request freed in
one of them mostly stays there. A server's gRPC and worker threads spread the large request
buffers of a bulk load over many arenas: 300k x 50-d points cost 646 bytes each in
`simsearch serve` after load, build and idle with the default, 438 with two arenas. So a
process that hosts shards limits itself to one arena per core (2 to 8): `limit_arenas`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # mallopt parameter number from glibc's malloc.h
_arenas_limited = False
_libc: ctypes.CDLL | None | bool = None


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.malloc_trim  # noqa: B018 (glibc only)
            libc.mallopt  # noqa: B018
            _libc = libc
        except (OSError, AttributeError):
            log.debug("not glibc: freed memory is left to the allocator")
            _libc = False
    return _libc or None


def release_freed() -> None:
    """Return free heap pages to the OS (after an index build, a checkpoint or a restore)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def limit_arenas() -> None:
    """At most one malloc arena per core (2 to 8), once per process; threads made later share them."""
    global _arenas_limited
    libc = _glibc()
    if libc is not None and not _arenas_limited:
        libc.mallopt(M_ARENA_MAX, min(8, max(2, os.cpu_count() or 2)))
        _arenas_limited = True
