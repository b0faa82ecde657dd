"""The Ray facade for one shard: one actor per shard, failures mapped to platform errors.

The actor class is the plain `simsearch.shard.Shard`; this module is the only place that
knows it runs remotely. Actors are threaded (max_concurrency) so searches run while a
write or a build is in progress, and they take no CPU reservation because their work is
I/O-bound bursts that must not be starved by Ray's CPU accounting on small machines.

A shard actor whose process dies is restarted by Ray (max_restarts=-1): its constructor runs
again with the same arguments and restores the shard from its checkpoint and log (shard/wal.py),
so what was acknowledged is there again. A call that meets the dead or restarting actor is sent
again, with backoff, until it succeeds or its time is up (the search's own timeout, else
RESTART_WAIT_S): reads are safe to resend, and so are this platform's writes (an upsert, a delete,
a payload change or a build applied twice leaves what applying it once does).
"""

from __future__ import annotations

import asyncio
import pickle
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import ray

from simsearch.cluster._calls import ActorInitFailed, call_actor
from simsearch.cluster.direct import MAX_MESSAGE, METHOD, TOKEN_HEADER, DirectServer, decode_result, encode_result
from simsearch.cluster.handle import ForwardingShardHandle
from simsearch.cluster.runtime import NAMESPACE, direct_host
from simsearch.contract.errors import Unavailable
from simsearch.protos.status import from_rpc_error
from simsearch.shard import IndexParams, SearchResult, Shard

ACTOR_CONCURRENCY = 8
INLINE_BYTES = 100_000  # below this Ray inlines arguments anyway; a query array this small goes direct
RESTART_WAIT_S = 60.0  # how long a call waits for a restarting shard actor when it has no timeout of its own
RETRY_FIRST_S, RETRY_MAX_S = 0.05, 1.0  # the backoff between tries
_TOKEN = secrets.token_hex(32)  # this router's token for its shards' direct endpoints (cluster/direct.py)


def share(array: np.ndarray) -> Any:
    """Put a large argument in the object store once, so fanning it out to S shards copies it once."""
    return ray.put(array) if array.nbytes > INLINE_BYTES else array


class ShardActor(Shard):
    """The shard as a Ray actor: the plain Shard, plus the direct search endpoint (cluster/direct.py)
    and a search whose reply is already flat bytes (pickling an array of Python strings costs more
    than the search of one query)."""

    def __init__(self, *args: Any, direct_host: str | None = None, direct_token: str = "", **kwargs: Any):
        super().__init__(*args, **kwargs)
        host = direct_host or ray.util.get_node_ip_address()  # a cluster: where the router can reach this node
        self._direct = DirectServer(self, host, direct_token)

    def direct_address(self) -> str:
        return self._direct.address

    def search_encoded(self, queries: np.ndarray, k: int, **params: Any) -> bytes:
        return encode_result(self.search(queries, k, **params))

    def close(self, save: bool = True) -> None:
        self._direct.stop()
        super().close(save)


class RayShardHandle(ForwardingShardHandle):
    """Async calls to one shard actor; raises SimsearchError subclasses only."""

    share = staticmethod(share)  # the fan-out puts a large query array in the object store once

    def __init__(self, actor: Any, label: str):
        self._actor = actor
        self.label = label
        self._killed = False
        self._address: str | None = None  # the actor's direct endpoint, asked of it (again after a restart)
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    @classmethod
    def create(cls, label: str, dim: int, metric: str, params: IndexParams, data_dir: Path | None, *,
               detached: bool = False, **shard_options: Any) -> "RayShardHandle":
        """shard_options: Shard's keyword options (durability, durability_interval_ms)."""
        options: dict[str, Any] = dict(name=label, max_concurrency=ACTOR_CONCURRENCY, num_cpus=0,
                                       get_if_exists=True, max_restarts=-1)
        if detached:
            options["lifetime"] = "detached"
        actor = ray.remote(ShardActor).options(**options).remote(dim, metric, params, data_dir=data_dir,
                                                                  direct_host=direct_host(), direct_token=_TOKEN,
                                                                  **shard_options)
        return cls(actor, label)

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._retrying(lambda: call_actor(self._actor, self.label, method, *args, **kwargs),
                                    kwargs.get("timeout_s"))

    async def _retrying(self, attempt: Callable[[], Awaitable[Any]], timeout_s: float | None) -> Any:
        """attempt(), again with backoff while the actor is unavailable (dead and restarting), until
        timeout_s (else RESTART_WAIT_S) has passed."""
        give_up = time.monotonic() + min(timeout_s or RESTART_WAIT_S, RESTART_WAIT_S)
        delay = RETRY_FIRST_S
        while True:
            try:
                return await attempt()
            except ActorInitFailed:
                raise  # its constructor cannot load the shard: a restart will not either
            except Unavailable:
                if self._killed or time.monotonic() + delay >= give_up or await self._gone():
                    raise
            await asyncio.sleep(delay)  # the actor is restarting (Ray queues the next call until it is up)
            delay = min(2 * delay, RETRY_MAX_S)

    async def _gone(self) -> bool:
        """Whether the actor is dead for good (killed, or out of restarts): its name is released then, while
        a restarting actor keeps it (a GCS lookup, off the loop)."""
        try:
            await asyncio.to_thread(ray.get_actor, self.label, namespace=NAMESPACE)
            return False
        except ValueError:
            return True

    async def search(self, queries: Any, k: int, **params: Any) -> SearchResult:
        """A query array small enough to send inline goes over the direct endpoint; a large one (an
        ObjectRef from `share`, read by the actor from the object store without a copy) over Ray, answered
        in the same flat form."""
        if isinstance(queries, np.ndarray):
            return await self._retrying(lambda: self._direct_search(queries, k, params), params.get("timeout_s"))
        return decode_result(await self._call("search_encoded", queries, k, **params))

    async def _direct_search(self, queries: np.ndarray, k: int, params: dict[str, Any]) -> SearchResult:
        if self._stub is None:
            self._address = await call_actor(self._actor, self.label, "direct_address")  # waits out a restart
            self._channel = grpc.aio.insecure_channel(self._address, options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)])
            self._stub = self._channel.unary_unary(METHOD)
        timeout = params.get("timeout_s")
        try:
            reply = await self._stub(pickle.dumps((queries, k, params), protocol=5),
                                     metadata=((TOKEN_HEADER, _TOKEN),), timeout=timeout + 1.0 if timeout else None)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE:  # the actor died: ask it (restarted) where it listens now
                self._forget_endpoint()
                raise Unavailable(f"{self.label} is unavailable: {e.details()}") from None
            raise from_rpc_error(e) from None
        return decode_result(reply)

    def _forget_endpoint(self) -> None:
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            asyncio.ensure_future(channel.close())

    def kill(self) -> None:
        self._killed = True
        self._forget_endpoint()
        ray.kill(self._actor, no_restart=True)
