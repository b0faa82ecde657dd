"""Thin gRPC servicers: authenticate, convert, delegate to the Engine, convert back.

`@rpc` is the one place errors become statuses: a SimsearchError becomes its status with
rich details; anything else is a bug, logged with its traceback and answered INTERNAL.
"""

from __future__ import annotations

import functools
import logging

import grpc

from simsearch.protos import convert
from simsearch.contract.errors import Internal, SimsearchError, Unauthenticated
from simsearch.protos.simsearch.v1 import (collections_pb2, collections_pb2_grpc, encoders_pb2, encoders_pb2_grpc,
                                           points_pb2, points_pb2_grpc)
from simsearch.protos.status import status_proto, to_status
from simsearch.router.auth import hash_key, key_from_metadata
from simsearch.router.engine import Engine
from simsearch.router.validate import check_search
from simsearch.shard import CollectionSpec, IndexParams

log = logging.getLogger(__name__)


# Methods whose handlers return serialized replies (bytes), registered without a serializer:
# search results come out of the engine and the cache already in wire form.
RAW_REPLIES = frozenset({"Search", "SearchStream"})
STREAM_RESULT_FIELD = points_pb2.SearchStreamResponse.DESCRIPTOR.fields_by_name["result"].number


def tenant_of(engine: Engine, key: str) -> str:
    return tenant_by_digest(engine, hash_key(key))


def tenant_by_digest(engine: Engine, digest: str) -> str:
    tenant = engine.catalog.tenant_for_digest(digest)
    if tenant is None:
        raise Unauthenticated("API key not recognised")
    return tenant


def spec_of(req: collections_pb2.CreateCollectionRequest) -> CollectionSpec:
    """The validated CollectionSpec a CreateCollection asks for (its constructors check every value)."""
    fields = convert.spec_fields(req)
    return CollectionSpec(**{**fields, "index": IndexParams(**fields["index"])})


def bug(name: str) -> Internal:
    log.exception("bug in %s", name)
    return Internal(f"internal error in {name}; see the server log")


def rpc(method):
    @functools.wraps(method)
    async def wrapper(self, request, context: grpc.aio.ServicerContext):
        try:
            tenant = tenant_of(self.engine, key_from_metadata(context.invocation_metadata()))
            return await method(self, request, context, tenant)
        except SimsearchError as e:
            await context.abort_with_status(to_status(e))
        except Exception:
            await context.abort_with_status(to_status(bug(method.__name__)))

    return wrapper


class CollectionsServicer(collections_pb2_grpc.CollectionsServicer):
    def __init__(self, engine: Engine):
        self.engine = engine

    @rpc
    async def CreateCollection(self, request, context, tenant):
        bound = self.engine.encoders.bind(request)
        info = await self.engine.create_collection(tenant, spec_of(bound))
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
    async def Search(self, request, context, tenant) -> bytes:
        """Replies already serialized (see RAW_REPLIES)."""
        return await self._search(request, tenant, context.time_remaining())

    async def SearchStream(self, request_iterator, context: grpc.aio.ServicerContext):
        """Answers each request in order on one call, with serialized SearchStreamResponses
        (see RAW_REPLIES). A failed request gets its own error status and the stream goes on;
        the key is checked once up front (so a bad key fails the call itself) and its digest
        again per request (so revoking it takes effect at once)."""
        try:
            digest = hash_key(key_from_metadata(context.invocation_metadata()))
            tenant_by_digest(self.engine, digest)
        except SimsearchError as e:
            await context.abort_with_status(to_status(e))
            return
        async for request in request_iterator:
            try:
                found = await self._search(request, tenant_by_digest(self.engine, digest), None)
                reply = convert.length_delimited(STREAM_RESULT_FIELD, found)
            except Exception as e:
                error = e if isinstance(e, SimsearchError) else bug("SearchStream")
                reply = points_pb2.SearchStreamResponse(error=status_proto(error)).SerializeToString()
            yield reply

    async def _search(self, request, tenant: str, deadline_s: float | None) -> bytes:
        p = request.params
        opts = check_search(request.k, p.leaves_to_search, p.oversample, p.exact, p.timeout_ms,
                            p.allow_partial, p.no_cache)
        queries = await self.engine.encoders.vectors_for(
            self.engine.spec(tenant, request.collection), lambda: convert.matrix_from_proto(request.queries, "queries"),
            request.inputs, request.encoder, "queries")
        return await self.engine.search(tenant, request.collection, queries, opts, deadline_s)


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
