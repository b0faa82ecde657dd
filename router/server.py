"""Build the gRPC server apart from running it, so tests bind port 0.

`create_server` wires the servicers, health checking and reflection; `Server.stop` marks
health NOT_SERVING, drains in-flight calls for `grace` seconds, snapshots shards, then runs
its `on_stop` callbacks (app.py releases the data-dir lock there).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from simsearch.contract.limits import MAX_MESSAGE_BYTES
from simsearch.protos.simsearch.v1 import admin_pb2, collections_pb2, encoders_pb2, points_pb2
from simsearch.router.admin import AdminServicer
from simsearch.router.engine import Engine
from simsearch.router.servicers import CollectionsServicer, EncodersServicer, PointsServicer
from simsearch.router.wire import request_deserializer

log = logging.getLogger(__name__)
SERVICES: tuple[ServiceDescriptor, ...] = (
    collections_pb2.DESCRIPTOR.services_by_name["Collections"],
    points_pb2.DESCRIPTOR.services_by_name["Points"],
    encoders_pb2.DESCRIPTOR.services_by_name["Encoders"],
    admin_pb2.DESCRIPTOR.services_by_name["Admin"],
)
SERVICE_NAMES = tuple(s.full_name for s in SERVICES)


@dataclass(frozen=True)
class TlsFiles:
    """PEM bytes: the server's certificate chain and key, and the CA its clients' certificates must
    chain to (None: no client certificates asked for)."""

    cert: bytes
    key: bytes
    client_ca: bytes | None = None


@dataclass
class Server:
    server: grpc.aio.Server
    port: int
    engine: Engine
    health: health.aio.HealthServicer
    # Run after the engine is closed, in order, whether or not closing it succeeded.
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    # Awaited after gRPC stops and before the engine closes: other front doors on the engine (the dashboard).
    before_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    dashboard_port: int = 0  # the web dashboard's port (router/dashboard/), 0 when it is not served

    async def start(self) -> None:
        await self.server.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float = 5.0, save: bool = True) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        try:
            for close in self.before_close:
                await close()
            await self.engine.close(save=save)
        finally:
            self._run_on_stop()

    def _run_on_stop(self) -> None:
        callbacks, self.on_stop = self.on_stop, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("stop callback %r failed", callback)

    async def wait(self) -> None:
        await self.server.wait_for_termination()


_HANDLER_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_servicer(servicer: object, service: ServiceDescriptor, server: grpc.aio.Server) -> None:
    """What the generated `add_*Servicer_to_server` does, from the service descriptor, except:
    every request deserializer never raises (an undecodable body reaches the handler as
    `wire.Undecodable`, which `@rpc` refuses as INVALID_ARGUMENT instead of grpc answering
    UNKNOWN with a traceback)."""
    handlers = {}
    for method in service.methods:
        kind = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
        reply = GetMessageClass(method.output_type).SerializeToString
        decode = request_deserializer(f"{service.name}/{method.name}", GetMessageClass(method.input_type))
        handlers[method.name] = kind(getattr(servicer, method.name), request_deserializer=decode,
                                     response_serializer=reply)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


def create_server(engine: Engine, address: str = "127.0.0.1:0", *,
                  max_message_bytes: int = MAX_MESSAGE_BYTES, tls: TlsFiles | None = None) -> Server:
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),  # grpc's default (1) lets a second server bind the same port and split the clients
    ])
    for servicer, service in zip((CollectionsServicer(engine), PointsServicer(engine), EncodersServicer(engine),
                                  AdminServicer(engine)), SERVICES):
        add_servicer(servicer, service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
    if tls is None:
        port = server.add_insecure_port(address)
    else:
        creds = grpc.ssl_server_credentials([(tls.key, tls.cert)], root_certificates=tls.client_ca,
                                            require_client_auth=tls.client_ca is not None)
        port = server.add_secure_port(address, creds)
    if port == 0:
        raise OSError(f"could not bind {address}")
    return Server(server, port, engine, health_servicer)
