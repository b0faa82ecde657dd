"""Shard hosts: one Ray actor per node holds every shard the router placed on that node.

Why not one actor per shard: each actor is a process that imports numpy, ScaNN and Ray's core
worker (~200 MB before any data) and costs the router a call of its own per search. With one actor
per shard, 4 shards of a 300k x 50-d collection on one machine took 1,063 MiB against 143 MiB in
the server process, and a 4-shard fan-out paid four process hops per query (single-query p50
+1.5 ms, 16 clients at 0.44x the in-process throughput; BENCHMARKS.md). A host per node pays the
process once per node, and the router sends it one call per event-loop turn carrying every search
it has for that host (`HostClient`), whichever shards, collections and client requests they come
from; the host runs them on its threads (ScaNN and the re-rank release the GIL).

Lifecycle. Each host is pinned to its node (hard node affinity: measured, a soft one put 1-2 of 4
hosts on another node than asked, even on a node that had already run a task). Ray restarts a host
whose process dies (max_restarts=-1); when its node dies, Ray cannot place it there and releases its
name (~16 s here, once the node is marked dead), and the router places its shards on a host of a
surviving node (`HostPool.replace`). A restarted or new host holds no shard: the first call for one
gets `ShardNotOpen`, and the router's handle opens it again (its arguments are the router's), which
restores it from its checkpoint and log on the shared data path, then resends the call.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import secrets
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from simsearch.cluster._calls import ActorInitFailed, call_actor
from simsearch.cluster.local_shard import INLINE_MAX_QUERIES, INLINE_MAX_WORK
from simsearch.cluster.direct import DirectClient, DirectServer, decode_result, encode_result
from simsearch.contract.errors import Internal, SimsearchError, Unavailable
from simsearch.shard import IndexParams, SearchResult, Shard

HOST_CONCURRENCY = 16  # Ray calls in flight on one host (writes, builds and searches of all its shards)
HOST_THREADS = max(2, os.cpu_count() or 2)  # a direct call's large searches run on these
TOKEN = secrets.token_hex(32)  # this router's token for its hosts' direct endpoints
ROUTER_ID = secrets.token_hex(4)  # names this router's hosts apart from another router's on the same cluster


class ShardNotOpen(Unavailable):
    """This host holds no such shard (it restarted since): the router opens it again and resends."""


class ShardHost:
    """The actor: shards by key, opened and closed by the router; every other call names its shard."""

    def __init__(self, direct_host: str | None, direct_token: str):
        self._shards: dict[str, Shard] = {}
        self._opening = threading.Lock()
        self._pool = ThreadPoolExecutor(HOST_THREADS, thread_name_prefix="host-search")
        self._direct = DirectServer(self._serve, direct_host or ray.util.get_node_ip_address(), direct_token)

    def direct_address(self) -> str:
        return self._direct.address

    def info(self) -> dict[str, Any]:
        """Where this host runs and what it holds (for operators and tests)."""
        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(), "shards": sorted(self._shards)}

    def open_shard(self, key: str, dim: int, metric: str, params: IndexParams, data_dir: Path | None,
                   options: dict[str, Any]) -> None:
        """Load (or create) the shard; a no-op when it is open. A shard whose files cannot be loaded raises
        ActorInitFailed naming the fault (a reopen cannot help)."""
        with self._opening:
            if key in self._shards:
                return
            try:
                self._shards[key] = Shard(dim, metric, params, data_dir=data_dir, **options)
            except SimsearchError:
                raise
            except Exception as e:
                raise ActorInitFailed(f"{key} is unavailable: {type(e).__name__}: {e}") from None

    def close_shard(self, key: str, save: bool = True) -> None:
        shard = self._shards.pop(key, None)
        if shard is not None:
            shard.close(save)

    def _shard(self, key: str) -> Shard:
        shard = self._shards.get(key)
        if shard is None:
            raise ShardNotOpen(f"{key} is not open on this host (it restarted)")
        return shard

    def call(self, key: str, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self._shard(key), method)(*args, **kwargs)
        if method == "stats":
            result["node"] = ray.get_runtime_context().get_node_id()  # where it is now (a host moves when its node dies)
        return result

    def _one(self, call: tuple) -> bytes | SimsearchError:
        key, queries, k, params = call
        try:
            return encode_result(self._shard(key).search(queries, k, **params))
        except SimsearchError as e:
            return e
        except Exception as e:  # a bug in the shard: INTERNAL, named
            return Internal(f"{key} failed in search: {type(e).__name__}: {e}")

    def _small(self, call: tuple) -> bool:
        """Work a thread hand-off would cost more than (as LocalShardHandle decides what runs inline)."""
        key, queries, k, params = call
        shard = self._shards.get(key)
        if shard is None or len(queries) > INLINE_MAX_QUERIES:
            return shard is None
        return shard.search_work(len(queries), k, exact=params.get("exact", False),
                                 leaves_to_search=params.get("leaves_to_search", 0),
                                 oversample=params.get("oversample", 0)) <= INLINE_MAX_WORK

    def _serve(self, message: tuple) -> bytes:
        """One direct call: ("search", [searches]) or ("call", shard, method, args, kwargs); its reply, an
        error included (never raised: the connection stays usable)."""
        if message[0] == "search":
            return self._search_batch(message[1])
        _, key, method, args, kwargs = message
        try:
            result = self.call(key, method, *args, **kwargs)
        except SimsearchError as e:
            result = e
        except Exception as e:  # a bug in the shard: INTERNAL, named
            result = Internal(f"{key} failed in {method}: {type(e).__name__}: {e}")
        return pickle.dumps(result, protocol=5)

    def _search_batch(self, calls: list[tuple]) -> bytes:
        """Every search of one direct call, one result (flat bytes) or error per search, in order: small ones
        on this thread one after another (a hand-off to another thread costs ~0.4 ms here, more than a
        one-query search), large ones on the pool meanwhile."""
        large = {i: self._pool.submit(self._one, c) for i, c in enumerate(calls) if not self._small(c)}
        small = {i: self._one(c) for i, c in enumerate(calls) if i not in large}
        return pickle.dumps([small[i] if i in small else large[i].result() for i in range(len(calls))], protocol=5)


class _Link:
    """One event loop's connections to a host (asyncio streams serve the loop they were made on: an
    in-process server's loop, a test's), and the searches waiting for this turn's call."""

    def __init__(self) -> None:
        self.client: DirectClient | None = None
        self.pending: list[tuple[tuple, asyncio.Future]] = []


class HostClient:
    """The router's side of one host: its actor for Ray calls, and its direct endpoint, to which every
    search asked for in one turn of the event loop goes in one call."""

    def __init__(self, actor: Any, name: str, node: str):
        self.actor = actor
        self.name = name
        self.node = node  # the node it was placed on (Ray moves it when that node dies)
        self._links: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Link] = weakref.WeakKeyDictionary()

    def _link(self) -> _Link:
        loop = asyncio.get_running_loop()
        link = self._links.get(loop)
        if link is None:
            link = self._links[loop] = _Link()
        return link

    async def search(self, key: str, queries: np.ndarray, k: int, params: dict[str, Any]) -> SearchResult:
        link = self._link()
        future = asyncio.get_running_loop().create_future()
        link.pending.append(((key, queries, k, params), future))
        if len(link.pending) == 1:  # sent after the other searches this turn adds (a fan-out's, other requests')
            asyncio.get_running_loop().call_soon(self._flush, link)
        return await future

    def _flush(self, link: _Link) -> None:
        batch, link.pending = link.pending, []
        asyncio.ensure_future(self._send(link, batch))

    async def _send(self, link: _Link, batch: list[tuple[tuple, asyncio.Future]]) -> None:
        calls, members = _merge([call for call, _ in batch])
        timeouts = [c[3].get("timeout_s") for c in calls]
        timeout = None if any(t is None for t in timeouts) else max(timeouts) + 1.0
        try:
            client = await self._client(link)
            replies = pickle.loads(await client.call(pickle.dumps(("search", calls), protocol=5), timeout))
        except SimsearchError as e:  # the host is gone or restarting (Unavailable), or too slow
            if isinstance(e, Unavailable):
                self._forget(link)  # ask it (restarted) where it listens now
            replies = [e] * len(calls)
        for reply, rows in zip(replies, members):
            result = reply if isinstance(reply, BaseException) else decode_result(reply)
            for i, (a, b) in rows:
                future = batch[i][1]
                if future.done():  # its caller gave up (a deadline)
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(_rows(result, a, b, len(rows) == 1))

    async def call(self, key: str, method: str, args: tuple, kwargs: dict[str, Any]) -> Any:
        """Any other shard method over the direct connection: a write's vectors go straight to the host, not
        through Ray's object store (whose pages stay resident in the router and the host once touched)."""
        link = self._link()
        try:
            client = await self._client(link)
            result = pickle.loads(await client.call(pickle.dumps(("call", key, method, args, kwargs), protocol=5),
                                                    None))
        except Unavailable:
            self._forget(link)
            raise
        if isinstance(result, BaseException):
            raise result
        return result

    async def _client(self, link: _Link) -> DirectClient:
        if link.client is None:
            address = await call_actor(self.actor, self.name, "direct_address")  # waits out a restart
            link.client = DirectClient(address, TOKEN, self.name)
        return link.client

    @staticmethod
    def _forget(link: _Link) -> None:
        client, link.client = link.client, None
        if client is not None:
            client.close()


def _merge(calls: list[tuple]) -> tuple[list[tuple], list[list[tuple[int, tuple[int, int]]]]]:
    """Searches of one shard with the same k and parameters (concurrent one-query requests, as a loaded
    router has many) become one batched search: ScaNN and the re-rank cost far less per query in a batch.
    Returns the calls to send and, per call, which searches' rows it holds: [(search index, (from, to))].
    A merged call carries the latest of its searches' timeouts (each caller still keeps its own)."""
    groups: dict[bytes, list[int]] = {}
    for i, (key, queries, k, params) in enumerate(calls):
        same = {p: v for p, v in params.items() if p != "timeout_s"}
        groups.setdefault(pickle.dumps((key, k, same, queries.dtype.str, queries.shape[1:])), []).append(i)
    out, members = [], []
    for idx in groups.values():
        key, _, k, params = calls[idx[0]]
        if len(idx) == 1:
            out.append(calls[idx[0]])
            members.append([(idx[0], (0, len(calls[idx[0]][1])))])
            continue
        timeouts = [calls[i][3].get("timeout_s") for i in idx]
        merged = {p: v for p, v in params.items() if p != "timeout_s"}
        if all(t is not None for t in timeouts):
            merged["timeout_s"] = max(timeouts)
        bounds = np.cumsum([0] + [len(calls[i][1]) for i in idx])
        out.append((key, np.concatenate([calls[i][1] for i in idx]), k, merged))
        members.append([(i, (int(bounds[j]), int(bounds[j + 1]))) for j, i in enumerate(idx)])
    return out, members


def _rows(result: SearchResult, a: int, b: int, whole: bool) -> SearchResult:
    if whole:
        return result
    return SearchResult(ids=result.ids[a:b], distances=result.distances[a:b],
                        payloads=None if result.payloads is None else result.payloads[a:b], path=result.path)


class HostPool:
    """This router's hosts: one per alive Ray node, created on first use, and more on a node when a shard's
    replicas must share it; a new shard goes to the host holding the fewest of this router's shards."""

    def __init__(self, direct_host: str | None):
        self._direct_host = direct_host
        self._hosts: dict[tuple[str, int], HostClient] = {}  # (node id, slot) -> host
        self._load: dict[str, int] = {}  # host name -> shards placed on it

    def _host(self, node: str, slot: int) -> HostClient:
        host = self._hosts.get((node, slot))
        if host is None:
            name = f"shard-host-{ROUTER_ID}-{node[:12]}" + (f"-{slot}" if slot else "")
            actor = ray.remote(ShardHost).options(
                name=name, get_if_exists=True, num_cpus=0, max_concurrency=HOST_CONCURRENCY, max_restarts=-1,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
                runtime_env={"env_vars": {"MALLOC_ARENA_MAX": "2"}},
            ).remote(self._direct_host, TOKEN)
            host = self._hosts[(node, slot)] = HostClient(actor, name, node)
            self._load.setdefault(name, 0)
        return host

    def place(self, avoid: frozenset[str] = frozenset()) -> HostClient:
        """The host for a new shard. avoid: the hosts holding the shard's other replicas. The least loaded
        host on an alive node that holds none of them; when every alive node holds one (fewer nodes than
        replicas), a host process of its own on the least loaded node, so a replica still survives the
        loss of another's process, though not of their node."""
        nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
        taken = {h.node for h in self._hosts.values() if h.name in avoid}
        apart = [self._host(n, 0) for n in nodes if n not in taken]
        if apart:
            host = min(apart, key=lambda h: self._load[h.name])
        else:
            node = min(nodes, key=lambda n: sum(self._load[h.name] for (m, _), h in self._hosts.items() if m == n))
            slot = next(s for s in range(len(avoid) + 1) if self._host(node, s).name not in avoid)
            host = self._host(node, slot)
        self._load[host.name] += 1
        return host

    def replace(self, gone: HostClient, avoid: frozenset[str] = frozenset()) -> HostClient:
        """A host for a shard whose host is gone for good (its node died): forget that host, place anew."""
        for key, host in list(self._hosts.items()):
            if host.name == gone.name:
                del self._hosts[key]
        self._load[gone.name] = max(0, self._load.get(gone.name, 1) - 1)
        return self.place(avoid)
