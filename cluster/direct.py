"""A direct gRPC path from the router to a shard host actor, for searches: Ray places, restarts and
addresses the actor; the queries and the results do not go through Ray's task machinery.

Why, measured on this 2-core machine between two Python processes, one query on a 2,000-point
shard (0.115 ms of search): a Ray actor call took 0.98 ms, a unary gRPC call (grpc.aio client,
sync server) 0.85 ms, a length-prefixed message over a plain TCP socket 0.09 ms. So this is a
plain socket protocol: the router keeps a few connections per host (`DirectClient`, asyncio
streams), each served by a thread of the host (`DirectServer`); a connection carries one call at a
time, so calls in flight at once take different connections.

Each message is a 4-byte little-endian length and a body. A connection's first message is the
router's token (random per router process, given to the host at creation through Ray, whose own
traffic is token-authenticated), compared in constant time; a wrong one closes the connection. The
endpoint listens on the address the router chose: loopback for the private local Ray, the node's
address in a cluster. A call's body is a pickled list of (shard, queries, k, params) from that
authenticated router (the same trust Ray's own calls between these processes rely on): every
search the router has for that host in one turn of its event loop (cluster/shard_host.py). The
reply is a pickled list with, per search, its error or its result in a flat binary form
(`encode_result`): the distances as float32 bytes, the ids (and payloads) as one NUL-joined UTF-8
string, which the edge guarantees holds no NUL.
"""

from __future__ import annotations

import asyncio
import hmac
import pickle
import socket
import struct
import threading
from collections.abc import Callable

import numpy as np

from simsearch.contract.errors import DeadlineExceeded, Unavailable
from simsearch.shard import SearchResult

MAX_MESSAGE = 1 << 30  # the router bounds requests and replies already (contract.limits)
MAX_IDLE = 8  # connections a router keeps open per host and event loop when idle
_LEN = struct.Struct("<I")
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


def _read_exactly(conn: socket.socket, n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = conn.recv(min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_message(conn: socket.socket) -> bytes | None:
    head = _read_exactly(conn, _LEN.size)
    if head is None:
        return None
    (n,) = _LEN.unpack(head)
    if n > MAX_MESSAGE:
        return None
    return _read_exactly(conn, n)


class DirectServer:
    """The host's side: a listening socket and a thread per connection; each call's body goes to
    `serve` (the unpickled list of searches) and its bytes go back. Only connections that open with
    `token` are served."""

    def __init__(self, serve: Callable[[list], bytes], host: str, token: str):
        self._serve = serve
        self._token = token.encode()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_STREAM)
        self._sock.bind((host, 0))
        self._sock.listen(64)
        port = self._sock.getsockname()[1]
        self.address = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        self._closed = False
        threading.Thread(target=self._accept, name="direct-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._connection, args=(conn,), name="direct-conn", daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        with conn:
            try:
                sent = _read_message(conn)
                if sent is None or not hmac.compare_digest(sent, self._token):
                    return  # not our router: closed unanswered
                while (body := _read_message(conn)) is not None:
                    reply = self._serve(pickle.loads(body))
                    conn.sendall(_LEN.pack(len(reply)) + reply)
            except OSError:
                return  # the router closed the connection (or went away)

    def stop(self) -> None:
        self._closed = True
        self._sock.close()


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def call(self, body: bytes) -> bytes:
        self.writer.write(_LEN.pack(len(body)) + body)
        (n,) = _LEN.unpack(await self.reader.readexactly(_LEN.size))
        return await self.reader.readexactly(n)

    def close(self) -> None:
        self.writer.close()


class DirectClient:
    """The router's side for one host address and one event loop: idle connections are reused, one call
    at a time each. Failures raise Unavailable (connect, a closed connection) or DeadlineExceeded; the
    connection of a failed call is closed, never reused."""

    def __init__(self, address: str, token: str, label: str):
        host, _, port = address.rpartition(":")
        self._host, self._port = host.strip("[]"), int(port)
        self._token = token.encode()
        self._label = label
        self._idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self._host, self._port, limit=1 << 20)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        writer.write(_LEN.pack(len(self._token)) + self._token)
        return _Connection(reader, writer)

    async def call(self, body: bytes, timeout_s: float | None) -> bytes:
        used: list[_Connection] = []

        async def attempt() -> bytes:
            conn = self._idle.pop() if self._idle else await self._connect()
            used.append(conn)
            return await conn.call(body)

        try:
            reply = await (attempt() if timeout_s is None else asyncio.wait_for(attempt(), timeout_s))
        except asyncio.TimeoutError:
            for conn in used:
                conn.close()
            raise DeadlineExceeded(f"{self._label} did not answer within {timeout_s:.3f} s") from None
        except (OSError, asyncio.IncompleteReadError) as e:
            for conn in used:
                conn.close()
            raise Unavailable(f"{self._label} is unavailable: {type(e).__name__}: {e}") from None
        except BaseException:  # cancelled mid-call: its reply would be read by the next caller
            for conn in used:
                conn.close()
            raise
        if len(self._idle) < MAX_IDLE:
            self._idle.append(used[0])
        else:
            used[0].close()
        return reply

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
