"""Run the dashboard's ASGI app with uvicorn on the server's own event loop, so every page reads the
same Engine the gRPC servicers use (no thread, no copy of the state)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from simsearch.router.dashboard.app import create_app
from simsearch.router.dashboard.series import Sampler
from simsearch.router.engine import Engine

log = logging.getLogger(__name__)


class _InLoopServer(uvicorn.Server):
    """uvicorn's server without its signal capture: `simsearch serve` owns SIGINT/SIGTERM (router/app.py)
    and stops the dashboard itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (0: any free port), bound before anything serves, so a port in use
    is a start-up fault and the chosen port is known. OSError when it cannot be bound."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                         flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class DashboardServer:
    """The dashboard's HTTP(S) listener and its metrics sampler: `start()` serves the pages on `sock` in the
    running loop, `stop()` closes it (open connections get a moment to finish)."""

    def __init__(self, engine: Engine, sock: socket.socket, *, tls_cert: Path | None = None,
                 tls_key: Path | None = None):
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.sampler = Sampler()
        app = create_app(engine, self.sampler, secure=tls_cert is not None)
        # no access log (URLs name collections), no proxy headers (the guard counts wrong keys per client address)
        config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, proxy_headers=False,
                                server_header=False, ws="none", timeout_graceful_shutdown=2,
                                ssl_certfile=tls_cert, ssl_keyfile=tls_key)
        self._server = _InLoopServer(config)
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.ensure_future(self._server.serve(sockets=[self.sock]))
        while not self._server.started:
            if self._task.done():  # failed to start: raise its error
                self._task.result()
                raise RuntimeError("the dashboard stopped while starting")
            await asyncio.sleep(0.01)
        self.sampler.start()

    async def stop(self) -> None:
        await self.sampler.stop()
        if self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, 5.0)
        except (asyncio.TimeoutError, Exception):
            log.exception("the dashboard did not stop cleanly")
        finally:
            self._task = None
            self.sock.close()
