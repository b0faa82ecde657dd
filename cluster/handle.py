"""`ShardHandle`: the async surface every shard placement offers the engine.

Two placements implement it: `LocalShardHandle` (the shard in the router's process) and
`RayShardHandle` (the shard in a Ray actor). `ForwardingShardHandle` writes the per-method
forwarding once; a placement says how to run one call (`_call`), how to hand a fan-out's
query array to its shards (`share`) and how to stop a shard (`kill`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from simsearch.shard import SearchResult


class ShardHandle(Protocol):
    label: str
    node: str  # where the shard runs: a Ray node id, or "local" (the router's process)
    host_name: str  # the process holding it: a shard host actor's name, or "local"

    def share(self, array: np.ndarray) -> Any: ...
    def kill(self) -> None: ...
    async def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[str] | None = None) -> int: ...
    async def delete(self, ids: list[str]) -> int: ...
    async def delete_where(self, f: Any) -> int: ...
    async def scroll(self, limit: int, cursor: str, f: Any, with_vectors: bool, with_payload: bool) -> tuple: ...
    async def set_payload(self, ids: list[str], patch: str, delete_keys: list[str], replace: bool) -> int: ...
    async def count(self, f: Any = None) -> int: ...
    async def get(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]: ...
    async def search(self, queries: Any, k: int, **params: Any) -> SearchResult: ...
    async def stats(self) -> dict: ...
    async def max_id_bytes(self) -> int: ...
    async def build_index(self, wait: bool) -> None: ...
    async def set_payload_indexes(self, indexes: dict[str, str]) -> None: ...
    async def wait_payload_indexes(self, timeout_s: float | None) -> bool: ...
    async def close(self, save: bool = True) -> None: ...
    async def position(self) -> int: ...
    async def apply_ops(self, ops: list[tuple[str, tuple]]) -> list: ...
    async def copy_to(self, dest: Path) -> int: ...
    async def reopen(self) -> None: ...
    async def host_gone(self) -> bool: ...
    async def rehome(self, avoid: frozenset[str]) -> None: ...


class ForwardingShardHandle:
    """A ShardHandle whose methods all go through `_call(method, *args)`."""

    label: str
    node: str = "local"
    host_name: str = "local"

    @staticmethod
    def share(array: np.ndarray) -> Any:
        """What the fan-out passes to every shard; by default the array itself."""
        return array

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def kill(self) -> None:
        raise NotImplementedError

    async def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[str] | None = None) -> int:
        return await self._call("upsert", ids, vectors, payloads)

    async def delete(self, ids: list[str]) -> int:
        return await self._call("delete", ids)

    async def delete_where(self, f: Any) -> int:
        return await self._call("delete_where", f)

    async def scroll(self, limit: int, cursor: str, f: Any, with_vectors: bool, with_payload: bool) -> tuple:
        """(ids after cursor in id order, their vectors or None, their payloads or None), at most limit."""
        return await self._call("scroll", limit, cursor, f, with_vectors=with_vectors, with_payload=with_payload)

    async def set_payload(self, ids: list[str], patch: str, delete_keys: list[str], replace: bool) -> int:
        return await self._call("set_payload", ids, patch, delete_keys, replace)

    async def count(self, f: Any = None) -> int:
        return await self._call("count", f)

    async def get(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(found mask over ids, the found rows' vectors, their payloads: canonical JSON, "" for none)."""
        return await self._call("get", ids)

    async def search(self, queries: Any, k: int, **params: Any) -> SearchResult:
        return await self._call("search", queries, k, **params)

    async def stats(self) -> dict:
        return await self._call("stats")

    async def max_id_bytes(self) -> int:
        return await self._call("max_id_bytes")

    async def build_index(self, wait: bool) -> None:
        await self._call("build_index", wait)

    async def set_payload_indexes(self, indexes: dict[str, str]) -> None:
        await self._call("set_payload_indexes", indexes)

    async def wait_payload_indexes(self, timeout_s: float | None) -> bool:
        return await self._call("wait_payload_indexes", timeout_s)

    async def close(self, save: bool = True) -> None:
        await self._call("close", save)

    async def position(self) -> int:
        """The shard's write position (Shard.position): how replicas compare."""
        return await self._call("position")

    async def apply_ops(self, ops: list[tuple[str, tuple]]) -> list:
        """Writes in order, durable together (Shard.apply_ops): each one's result or error."""
        return await self._call("apply_ops", ops)

    async def copy_to(self, dest: Path) -> int:
        """Copy the shard's stored state into dest (another replica's directory); returns the position copied."""
        return await self._call("copy_to", dest)

    async def reopen(self) -> None:
        """Load the shard again from its directory (after close, or after its files were replaced by a copy)."""
        raise NotImplementedError

    async def host_gone(self) -> bool:
        """Whether the process holding the shard is gone for good (a Ray host whose node died)."""
        return False

    async def rehome(self, avoid: frozenset[str]) -> None:
        """Move the shard to a new host, not one of `avoid` (a placement without hosts has nothing to do)."""
