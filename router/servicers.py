"""Thin gRPC servicers: authenticate, convert, delegate to the Engine, convert back.

`@rpc` is the one place errors become statuses: a SimsearchError becomes its status with
rich details; anything else is a bug, logged with its traceback and answered INTERNAL.
"""

from __future__ import annotations

import functools
import logging

import grpc

from simsearch.protos import convert
from simsearch.protos.errors import Internal, SimsearchError, Unauthenticated
from simsearch.protos.simsearch.v1 import (collections_pb2, collections_pb2_grpc, encoders_pb2, encoders_pb2_grpc,
                                           points_pb2, points_pb2_grpc)
from simsearch.protos.status import to_status
from simsearch.router.auth import key_from_metadata
from simsearch.router.engine import Engine
from simsearch.router.validate import check_search

log = logging.getLogger(__name__)


def rpc(method):
    @functools.wraps(method)
    async def wrapper(self, request, context: grpc.aio.ServicerContext):
        try:
            key = key_from_metadata(context.invocation_metadata())
            tenant = self.engine.catalog.tenant_for_key(key)
            if tenant is None:
                raise Unauthenticated("API key not recognised")
            return await method(self, request, context, tenant)
        except SimsearchError as e:
            await context.abort_with_status(to_status(e))
        except Exception:
            log.exception("bug in %s", method.__name__)
            await context.abort_with_status(to_status(Internal(f"internal error in {method.__name__}; see the server log")))

    return wrapper


class CollectionsServicer(collections_pb2_grpc.CollectionsServicer):
    def __init__(self, engine: Engine):
        self.engine = engine

    @rpc
    async def CreateCollection(self, request, context, tenant):
        bound = self.engine.encoders.bind(request)
        info = await self.engine.create_collection(tenant, convert.spec_from_proto(bound))
        if bound.encoder:
            self.engine.encoders.warm(bound.encoder)
        return info

    @rpc
    async def DropCollection(self, request, context, tenant):
        await self.engine.drop_collection(tenant, request.name)
        return collections_pb2.DropCollectionResponse(dropped=True)

    @rpc
    async def ListCollections(self, request, context, tenant):
        return collections_pb2.ListCollectionsResponse(names=self.engine.list_collections(tenant))

    @rpc
    async def DescribeCollection(self, request, context, tenant):
        return await self.engine.describe(tenant, request.name)

    @rpc
    async def BuildIndex(self, request, context, tenant):
        return await self.engine.build_index(tenant, request.name, request.wait)


class PointsServicer(points_pb2_grpc.PointsServicer):
    def __init__(self, engine: Engine):
        self.engine = engine

    @rpc
    async def Upsert(self, request, context, tenant):
        vectors = await self.engine.encoders.vectors_for(
            self.engine.spec(tenant, request.collection), lambda: convert.matrix_from_proto(request.vectors, "vectors"),
            request.inputs, request.encoder, "vectors")
        n, generation = await self.engine.upsert(tenant, request.collection, list(request.ids), vectors)
        return points_pb2.UpsertResponse(upserted=n, generation=generation)

    @rpc
    async def Delete(self, request, context, tenant):
        n, generation = await self.engine.delete(tenant, request.collection, list(request.ids))
        return points_pb2.DeleteResponse(deleted=n, generation=generation)

    @rpc
    async def Get(self, request, context, tenant):
        ids, vectors, missing = await self.engine.get(tenant, request.collection, list(request.ids))
        return points_pb2.GetResponse(ids=ids, vectors=convert.matrix_to_proto(vectors), missing=missing)

    @rpc
    async def Search(self, request, context, tenant):
        p = request.params
        opts = check_search(request.k, p.leaves_to_search, p.oversample, p.exact, p.timeout_ms,
                            p.allow_partial, p.no_cache)
        queries = await self.engine.encoders.vectors_for(
            self.engine.spec(tenant, request.collection), lambda: convert.matrix_from_proto(request.queries, "queries"),
            request.inputs, request.encoder, "queries")
        return await self.engine.search(tenant, request.collection, queries, opts, context.time_remaining())


class EncodersServicer(encoders_pb2_grpc.EncodersServicer):
    def __init__(self, engine: Engine):
        self.engine = engine

    @rpc
    async def Embed(self, request, context, tenant):
        ref, vectors = await self.engine.encoders.embed(request.model, request.inputs)
        return encoders_pb2.EmbedResponse(model=ref, vectors=convert.matrix_to_proto(vectors))

    @rpc
    async def ListModels(self, request, context, tenant):
        return self.engine.encoders.list_models()
