"""Hand memory a shard frees back to the operating system, so its RSS tracks what it stores.

Why: glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MiB),
after which big numpy arrays come from the heap instead, and a heap freed in the middle is
not returned. An index build frees a whole copy of the shard's rows; measured on 200k x 50-d
points, RSS per point stayed at 504 bytes after a build with the default behaviour and 393
with the threshold pinned at 128 KiB (what this module sets), against 326 bytes of live data.
No effect (and no error) where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)
M_MMAP_THRESHOLD = -3  # mallopt parameter numbers from glibc's malloc.h
MMAP_THRESHOLD_BYTES = 128 << 10
_libc: ctypes.CDLL | None = None
_configured = False


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            libc.mallopt  # noqa: B018 (glibc only)
            libc.malloc_trim  # noqa: B018
            _libc = libc
        except (OSError, AttributeError):
            log.debug("not glibc: freed memory is left to the allocator")
            _libc = False  # type: ignore[assignment]
    return _libc or None


def pin_mmap_threshold() -> None:
    """Large allocations always mmapped (so freeing them returns the memory); once per process."""
    global _configured
    libc = _glibc()
    if libc is not None and not _configured:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        _configured = True


def release_freed() -> None:
    """Return free heap pages to the OS (after an index build or a restore drops a copy of the rows)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
