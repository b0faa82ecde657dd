"""`simsearch.AsyncClient`: the asyncio SDK, same surface as Client with `await`."""

from __future__ import annotations

from typing import Any, Sequence

import grpc
import numpy as np

from simsearch.client import _requests as rq
from simsearch.client._streams import AsyncSearchStreams, with_timeout
from simsearch.protos.simsearch.v1 import (collections_pb2, collections_pb2_grpc, encoders_pb2, encoders_pb2_grpc,
                                           points_pb2, points_pb2_grpc)
from simsearch.protos.status import from_rpc_error


class AsyncClient:
    """AsyncClient("localhost:50051", api_key=...); stream= as for Client."""

    def __init__(self, address: str, api_key: str | None = None, *, timeout: float | None = 60.0,
                 stream: bool = True):
        self._channel = grpc.aio.insecure_channel(address, options=rq.CHANNEL_OPTIONS)
        self._collections = collections_pb2_grpc.CollectionsStub(self._channel)
        self._points = points_pb2_grpc.PointsStub(self._channel)
        self._encoders = encoders_pb2_grpc.EncodersStub(self._channel)
        self._md = rq.metadata(api_key)
        self.timeout = timeout
        self._streams = AsyncSearchStreams(self._points.SearchStream, self._md,
                                           lambda req: self._call(self._points.Search, req, req.params.timeout_ms / 1000),
                                           enabled=stream)

    async def _call(self, method, request, timeout: float | None = None):
        try:
            return await method(request, metadata=self._md, timeout=timeout or self.timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def create_collection(self, name: str, dim: int = 0, metric: str = "", shards: int = 1, *,
                                encoder: str = "", **index: int) -> rq.CollectionInfo:
        return rq.parse_info(await self._call(self._collections.CreateCollection,
                                              rq.create_request(name, dim, metric, shards, index, encoder)))

    async def drop_collection(self, name: str) -> None:
        await self._call(self._collections.DropCollection, collections_pb2.DropCollectionRequest(name=name))

    async def list_collections(self) -> list[str]:
        return list((await self._call(self._collections.ListCollections, collections_pb2.ListCollectionsRequest())).names)

    async def describe_collection(self, name: str) -> rq.CollectionInfo:
        return rq.parse_info(await self._call(self._collections.DescribeCollection,
                                              collections_pb2.DescribeCollectionRequest(name=name)))

    async def build_index(self, name: str, wait: bool = True, timeout: float | None = 600.0) -> rq.CollectionInfo:
        return rq.parse_info(await self._call(self._collections.BuildIndex,
                                              collections_pb2.BuildIndexRequest(name=name, wait=wait), timeout))

    async def upsert(self, collection: str, ids: Sequence[str | int] | np.ndarray, vectors: Any = None, *,
                     texts: Sequence[str] | None = None, images: Any = None, encoder: str | None = None,
                     batch_size: int | None = None, payloads: Sequence[dict | None] | None = None) -> int:
        _, requests = rq.upsert_plan(collection, ids, vectors, texts=texts, images=images, encoder=encoder,
                                     batch_size=batch_size, payloads=payloads)
        done = 0
        for _, req in requests:
            done += (await self._call(self._points.Upsert, req)).upserted
        return done

    async def delete(self, collection: str, ids: Sequence[str | int] | np.ndarray | None = None, *,
                     filter: Any = None) -> int:  # noqa: A002
        return (await self._call(self._points.Delete, rq.delete_request(collection, ids, filter))).deleted

    async def count(self, collection: str, filter: Any = None) -> int:  # noqa: A002
        return (await self._call(self._points.Count, rq.count_request(collection, filter))).count

    async def get(self, collection: str, ids: Sequence[str | int] | np.ndarray) -> rq.Points:
        return rq.parse_get(await self._call(self._points.Get,
                                             points_pb2.GetRequest(collection=collection, ids=rq.as_str_ids(ids))))

    async def search(self, collection: str, queries: Any = None, k: int = 10, *, texts: Sequence[str] | None = None,
                     images: Any = None, encoder: str | None = None, timeout: float | None = None,
                     **params: Any) -> rq.SearchResults:
        req = rq.search_request(collection, queries, k, texts=texts, images=images, encoder=encoder, **params)
        return rq.parse_search(await self._streams.search(with_timeout(req, timeout or self.timeout)), k)

    async def embed(self, model: str, *, texts: Sequence[str] | None = None, images: Any = None) -> rq.Embedding:
        req = encoders_pb2.EmbedRequest(model=model, inputs=rq.raw_inputs(texts, images))
        return rq.parse_embed(await self._call(self._encoders.Embed, req))

    async def list_models(self) -> list[dict[str, Any]]:
        return rq.parse_models(await self._call(self._encoders.ListModels, encoders_pb2.ListModelsRequest()))

    async def close(self) -> None:
        await self._streams.close()
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
