"""Build the gRPC server apart from running it, so tests bind port 0.

`create_server` wires the servicers, health checking and reflection; `Server.stop` marks
health NOT_SERVING, drains in-flight calls for `grace` seconds, then snapshots shards.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import grpc
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from simsearch.contract.limits import MAX_MESSAGE_BYTES
from simsearch.protos.simsearch.v1 import (collections_pb2, collections_pb2_grpc, encoders_pb2, encoders_pb2_grpc,
                                           points_pb2)
from simsearch.router.engine import Engine
from simsearch.router.servicers import RAW_REPLIES, CollectionsServicer, EncodersServicer, PointsServicer

log = logging.getLogger(__name__)
SERVICE_NAMES = (
    collections_pb2.DESCRIPTOR.services_by_name["Collections"].full_name,
    points_pb2.DESCRIPTOR.services_by_name["Points"].full_name,
    encoders_pb2.DESCRIPTOR.services_by_name["Encoders"].full_name,
)


@dataclass
class Server:
    server: grpc.aio.Server
    port: int
    engine: Engine
    health: health.aio.HealthServicer

    async def start(self) -> None:
        await self.server.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float = 5.0, save: bool = True) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.engine.close(save=save)

    async def wait(self) -> None:
        await self.server.wait_for_termination()


_HANDLER_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_points_servicer(servicer: PointsServicer, server: grpc.aio.Server) -> None:
    """`points_pb2_grpc.add_PointsServicer_to_server`, except that the RAW_REPLIES methods are
    registered without a response serializer: their handlers return the wire bytes themselves."""
    service = points_pb2.DESCRIPTOR.services_by_name["Points"]
    handlers = {}
    for method in service.methods:
        kind = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
        reply = None if method.name in RAW_REPLIES else GetMessageClass(method.output_type).SerializeToString
        handlers[method.name] = kind(getattr(servicer, method.name),
                                     request_deserializer=GetMessageClass(method.input_type).FromString,
                                     response_serializer=reply)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)


def create_server(engine: Engine, address: str = "127.0.0.1:0", *,
                  max_message_bytes: int = MAX_MESSAGE_BYTES) -> Server:
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ])
    collections_pb2_grpc.add_CollectionsServicer_to_server(CollectionsServicer(engine), server)
    add_points_servicer(PointsServicer(engine), server)
    encoders_pb2_grpc.add_EncodersServicer_to_server(EncodersServicer(engine), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    return Server(server, port, engine, health_servicer)
