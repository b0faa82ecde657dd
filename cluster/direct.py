"""A direct gRPC path from the router to a shard actor, for searches: Ray places, restarts and
addresses the actor; the queries and the results do not go through Ray's task machinery.

Why: a Ray actor call from the router cost ~1.5 ms here and a 4-way fan-out ~3.7 ms, against
~0.1 ms of shard work for one query (BENCHMARKS.md, "Where the time goes"): the task submission,
the object serialisation of an `ids` array of Python strings, and the reply's trip through the
core worker. A unary gRPC call on a channel the router keeps open costs a fraction of that.

The actor (`serve_direct`) listens on a port of its own, on the address the router chose (loopback
for the private local Ray, the node's address in a cluster), and answers only calls that carry the
router's token (random per router process, given to the actor at creation through Ray, whose own
traffic is token-authenticated). The request is `pickle((queries, k, params))` from that
authenticated router, the same trust Ray's own calls between these processes rely on; the reply is
a flat binary form (`encode_result`): the distances as float32 bytes, the ids (and payloads) as
one NUL-joined UTF-8 string, which the edge guarantees holds no NUL.
"""

from __future__ import annotations

import hmac
import pickle
import struct
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np

from simsearch.contract.errors import Internal, SimsearchError, Unauthenticated
from simsearch.protos.status import to_status
from simsearch.shard import SearchResult

METHOD = "/simsearch.internal.ShardDirect/Search"
TOKEN_HEADER = "x-simsearch-shard-token"
SERVER_THREADS = 8  # like the actor's max_concurrency: searches run while a write or a build is in progress
MAX_MESSAGE = 1 << 30  # the router bounds requests and replies already (contract.limits)
_HEAD = struct.Struct("<IIBII")  # rows, k, has payloads, len(path), len(ids bytes)


def encode_result(r: SearchResult) -> bytes:
    n, k = r.ids.shape
    ids = "\0".join(r.ids.ravel().tolist()).encode()
    path = r.path.encode()
    payloads = b"" if r.payloads is None else "\0".join(r.payloads.ravel().tolist()).encode()
    return b"".join((_HEAD.pack(n, k, r.payloads is not None, len(path), len(ids)), path,
                     np.ascontiguousarray(r.distances, "<f4").tobytes(), ids, payloads))


def decode_result(data: bytes) -> SearchResult:
    n, k, has_payloads, path_len, ids_len = _HEAD.unpack_from(data)
    off = _HEAD.size
    path = data[off:off + path_len].decode()
    off += path_len
    distances = np.frombuffer(data, "<f4", n * k, off).reshape(n, k)
    off += 4 * n * k
    ids = _texts(data[off:off + ids_len], n, k)
    payloads = _texts(data[off + ids_len:], n, k) if has_payloads else None
    return SearchResult(ids=ids, distances=distances, payloads=payloads, path=path)


def _texts(data: bytes, n: int, k: int) -> np.ndarray:
    out = np.empty(n * k, dtype=object)
    if n * k:
        out[:] = data.decode().split("\0")
    return out.reshape(n, k)


class DirectServer:
    """The actor's side: a gRPC server answering searches on `shard` for callers with `token`."""

    def __init__(self, shard: Any, host: str, token: str):
        self._shard = shard
        self._token = token.encode()
        self._server = grpc.server(ThreadPoolExecutor(SERVER_THREADS, thread_name_prefix="direct"),
                                   options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                                            ("grpc.max_send_message_length", MAX_MESSAGE)])
        handler = grpc.unary_unary_rpc_method_handler(self._search)  # raw bytes in and out
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "simsearch.internal.ShardDirect", {"Search": handler}),))
        port = self._server.add_insecure_port(f"{host}:0" if ":" not in host else f"[{host}]:0")
        self._server.start()
        self.address = f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"

    def _search(self, body: bytes, context: grpc.ServicerContext) -> bytes:
        sent = dict(context.invocation_metadata()).get(TOKEN_HEADER, "")
        if not hmac.compare_digest(sent.encode(), self._token):
            context.abort_with_status(to_status(Unauthenticated("this shard answers its router only")))
        try:
            queries, k, params = pickle.loads(body)
            return encode_result(self._shard.search(queries, k, **params))
        except SimsearchError as e:
            context.abort_with_status(to_status(e))
        except Exception as e:  # a bug in the shard: INTERNAL, named, like a Ray call's (cluster._calls)
            context.abort_with_status(to_status(Internal(f"shard search failed: {type(e).__name__}: {e}")))

    def stop(self) -> None:
        self._server.stop(grace=None)
