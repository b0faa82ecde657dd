"""Searches over long-lived `Points.SearchStream` calls instead of one unary call each.

Why: on this machine a unary gRPC round trip costs ~0.65 ms even when the server does
nothing, and a message on an open bidirectional stream ~0.35 ms (BENCHMARKS.md); for a
small query that difference is a third of the whole latency. So both SDK clients keep a
few open streams, one per concurrent caller, and send each search as one message on one
of them. Replies come back in order on a stream, and each caller holds its stream until
its reply arrives, so pairing needs no ids.

A failed request gets its own error on the stream, which stays usable. When the stream
itself fails (server restarted, connection lost, a server without SearchStream), the
stream is dropped and that search is sent again as a unary call, which carries the
channel's retry policy; UNIMPLEMENTED turns streaming off for the client.

One call's gRPC deadline would cover the whole stream, so a search's timeout travels in
`params.timeout_ms` and the server enforces it.
"""

from __future__ import annotations

import asyncio
import queue
from typing import Awaitable, Callable, Iterator

import grpc

from simsearch.protos.simsearch.v1 import points_pb2
from simsearch.protos.status import error_from_status_proto, from_rpc_error
from simsearch.contract.limits import MAX_TIMEOUT_MS

# Failures of the stream itself after which the search is sent again as a unary call.
_RESEND = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.CANCELLED,
           grpc.StatusCode.INTERNAL}

Metadata = tuple[tuple[str, str], ...]


def with_timeout(req: points_pb2.SearchRequest, timeout: float | None) -> points_pb2.SearchRequest:
    """The request with the caller's timeout as params.timeout_ms, unless it names its own."""
    if timeout and not req.params.timeout_ms:
        req.params.timeout_ms = max(1, min(MAX_TIMEOUT_MS, int(timeout * 1000)))
    return req


def after_stream_failure(streams: "SyncSearchStreams | AsyncSearchStreams", e: BaseException) -> None:
    """The stream itself failed: return if the search should be resent as a unary call (and turn
    streaming off for a server without SearchStream), else raise the failure as a SimsearchError."""
    code = e.code() if isinstance(e, grpc.RpcError) else grpc.StatusCode.UNAVAILABLE
    if code == grpc.StatusCode.UNIMPLEMENTED:
        streams.enabled = False
    if code not in _RESEND:
        raise from_rpc_error(e) from None


def result_of(reply: points_pb2.SearchStreamResponse) -> points_pb2.SearchResponse:
    """The reply's result, or its error raised as the matching SimsearchError."""
    if reply.HasField("error"):
        raise error_from_status_proto(reply.error)
    return reply.result


class _SyncStream:
    """One open call; the gRPC consumer thread drains `_requests` into it."""

    def __init__(self, method: Callable, metadata: Metadata):
        self._requests: queue.SimpleQueue[points_pb2.SearchRequest | None] = queue.SimpleQueue()
        self._replies = method(self._drain(), metadata=metadata)

    def _drain(self) -> Iterator[points_pb2.SearchRequest]:
        while (req := self._requests.get()) is not None:
            yield req

    def ask(self, req: points_pb2.SearchRequest) -> points_pb2.SearchStreamResponse:
        self._requests.put(req)
        return next(self._replies)

    def close(self) -> None:
        self._requests.put(None)  # half-close: the server ends the call cleanly


class SyncSearchStreams:
    """The blocking client's streams: an idle list (thread-safe append/pop), one per caller."""

    def __init__(self, method: Callable, metadata: Metadata,
                 unary: Callable[[points_pb2.SearchRequest], points_pb2.SearchResponse], enabled: bool = True):
        self._method, self._metadata, self._unary = method, metadata, unary
        self._idle: list[_SyncStream] = []
        self.enabled = enabled

    def search(self, req: points_pb2.SearchRequest) -> points_pb2.SearchResponse:
        if not self.enabled:
            return self._unary(req)
        try:
            stream = self._idle.pop()
        except IndexError:
            stream = _SyncStream(self._method, self._metadata)
        try:
            reply = stream.ask(req)
        except (grpc.RpcError, StopIteration) as e:
            stream.close()
            after_stream_failure(self, e)
            return self._unary(req)
        except BaseException:
            stream.close()
            raise
        self._idle.append(stream)
        return result_of(reply)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


class AsyncSearchStreams:
    """The asyncio client's streams: the same protocol with grpc.aio calls."""

    def __init__(self, method: Callable, metadata: Metadata,
                 unary: Callable[[points_pb2.SearchRequest], Awaitable[points_pb2.SearchResponse]],
                 enabled: bool = True):
        self._method, self._metadata, self._unary = method, metadata, unary
        self._idle: list[grpc.aio.StreamStreamCall] = []
        self.enabled = enabled

    async def search(self, req: points_pb2.SearchRequest) -> points_pb2.SearchResponse:
        if not self.enabled:
            return await self._unary(req)
        call = self._idle.pop() if self._idle else self._method(metadata=self._metadata)
        try:
            await call.write(req)
            reply = await call.read()
        except (grpc.RpcError, asyncio.InvalidStateError) as e:  # InvalidStateError: the call had ended
            call.cancel()
            after_stream_failure(self, e)
            return await self._unary(req)
        except BaseException:
            call.cancel()
            raise
        if reply is grpc.aio.EOF:  # the server ended the call: resend as unary
            return await self._unary(req)
        self._idle.append(call)
        return result_of(reply)

    async def close(self) -> None:
        while self._idle:
            await self._idle.pop().done_writing()
