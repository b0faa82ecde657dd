"""`simsearch.AsyncClient`: the asyncio SDK, same surface as Client with `await`."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Sequence

import numpy as np

from simsearch.client import _requests as rq
from simsearch.client._streams import AsyncSearchStreams, with_timeout
from simsearch.protos.simsearch.v1 import (collections_pb2, collections_pb2_grpc, encoders_pb2, encoders_pb2_grpc,
                                           points_pb2, points_pb2_grpc)
from simsearch.contract.errors import DeadlineExceeded, InvalidArgument, ResourceExhausted, Unavailable


class AsyncClient:
    """AsyncClient("localhost:50051", api_key=...); stream= as for Client."""

    def __init__(self, address: str, api_key: str | None = None, *, timeout: float | None = 60.0,
                 stream: bool = True, tls: bool = False, root_certificates: Any = None, client_cert: Any = None,
                 client_key: Any = None):
        self._channel = rq.channel(address, tls=tls, root_certificates=root_certificates, client_cert=client_cert,
                                   client_key=client_key, aio=True)
        self._collections = collections_pb2_grpc.CollectionsStub(self._channel)
        self._points = points_pb2_grpc.PointsStub(self._channel)
        self._encoders = encoders_pb2_grpc.EncodersStub(self._channel)
        self._md = rq.metadata(api_key)
        self.timeout = timeout
        self._streams = AsyncSearchStreams(self._points.SearchStream, self._md,
                                           lambda req: self._call(self._points.Search, req, req.params.timeout_ms / 1000),
                                           enabled=stream)

    async def _call(self, method, request, timeout: float | None = None):
        """One call; a refusal by a rate or concurrency limit is retried after the server's RetryInfo."""
        return await rq.retrying_async(lambda: method(request, metadata=self._md, timeout=timeout or self.timeout))

    async def create_collection(self, name: str, dim: int = 0, metric: str = "", shards: int = 1, *,
                                encoder: str = "", payload_indexes: dict[str, str] | None = None,
                                replicas: int = 1, write_quorum: int = 0, **index: float) -> rq.CollectionInfo:
        """As Client.create_collection."""
        return rq.parse_info(await self._call(self._collections.CreateCollection,
                                              rq.create_request(name, dim, metric, shards, index, encoder,
                                                                payload_indexes, replicas, write_quorum)))

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

    async def create_payload_index(self, collection: str, field: str, type: str, *, wait: bool = True,  # noqa: A002
                                   timeout: float | None = 600.0) -> rq.CollectionInfo:
        """Index a payload field with a type (keyword, integer, float, bool, datetime): later writes of another
        type are refused, and the shards keep its column built. wait: until every shard has read it."""
        return rq.parse_info(await self._call(self._collections.CreatePayloadIndex, collections_pb2.CreatePayloadIndexRequest(
            collection=collection, field=field, type=type, wait=wait), timeout))

    async def drop_payload_index(self, collection: str, field: str) -> rq.CollectionInfo:
        return rq.parse_info(await self._call(self._collections.DropPayloadIndex,
                                        collections_pb2.DropPayloadIndexRequest(collection=collection, field=field)))

    async def create_alias(self, alias: str, collection: str) -> None:
        await self._call(self._collections.CreateAlias,
                         collections_pb2.CreateAliasRequest(alias=alias, collection=collection))

    async def switch_alias(self, alias: str, collection: str) -> str:
        """Returns the previous target."""
        return (await self._call(self._collections.SwitchAlias,
                                 collections_pb2.SwitchAliasRequest(alias=alias, collection=collection))).previous

    async def update_collection(self, name: str, **settings: float) -> rq.CollectionInfo:
        """Change search-time settings: leaves_to_search, oversample, target_recall, recall_slo (0 = automatic);
        those not named are kept."""
        return rq.parse_info(await self._call(self._collections.UpdateCollection,
                                          collections_pb2.UpdateCollectionRequest(name=name, **settings)))

    async def reset_drift_reference(self, collection: str, kind: str = "") -> rq.CollectionInfo:
        """Forget the collection's drift reference ("queries", "writes", or "" for both): the next vectors seen
        form a new one (after an intended change)."""
        return rq.parse_info(await self._call(self._collections.ResetDriftReference,
                                          collections_pb2.ResetDriftReferenceRequest(collection=collection,
                                                                                     kind=kind)))

    async def reindex(self, collection: str, encoder: str, **options: Any) -> rq.ReindexStatus:
        """Re-embed `collection` with `encoder` (name@version) in the background while it serves; promoted through
        a quality gate (label_field=, eval_filter=, eval_size=, k=, min_gain=, min_overlap=) and an optional canary
        (canary_fraction=, canary_seconds=, max_latency_ratio=), or skip_gate=True. Answers at once: poll
        get_reindex (or wait_reindex)."""
        return rq.parse_reindex(await self._call(self._collections.Reindex, rq.reindex_request(collection, encoder,
                                                                                             **options)))

    async def get_reindex(self, collection: str) -> rq.ReindexStatus:
        """The collection's latest reindex job."""
        return rq.parse_reindex(await self._call(self._collections.GetReindex,
                                             collections_pb2.GetReindexRequest(collection=collection)))

    async def cancel_reindex(self, collection: str) -> rq.ReindexStatus:
        return rq.parse_reindex(await self._call(self._collections.CancelReindex,
                                             collections_pb2.CancelReindexRequest(collection=collection)))

    async def wait_reindex(self, collection: str, *, timeout: float = 3600.0, poll: float = 0.5) -> rq.ReindexStatus:
        """Poll until the latest job has ended (TimeoutError after `timeout` seconds)."""
        end = time.monotonic() + timeout
        while True:
            status = await self.get_reindex(collection)
            if status.done:
                return status
            if time.monotonic() > end:
                raise TimeoutError(f"reindex of {collection!r} still {status.state} after {timeout:g} s")
            await asyncio.sleep(poll)

    async def delete_alias(self, alias: str) -> None:
        await self._call(self._collections.DeleteAlias, collections_pb2.DeleteAliasRequest(alias=alias))

    async def list_aliases(self) -> dict[str, str]:
        resp = await self._call(self._collections.ListAliases, collections_pb2.ListAliasesRequest())
        return {a.alias: a.collection for a in resp.aliases}

    async def upsert(self, collection: str, ids: Sequence[str | int] | np.ndarray, vectors: Any = None, *,
                     texts: Sequence[str] | None = None, images: Any = None, encoder: str | None = None,
                     batch_size: int | None = None, payloads: Sequence[dict | None] | None = None) -> int:
        _, requests = rq.upsert_plan(collection, ids, vectors, texts=texts, images=images, encoder=encoder,
                                     batch_size=batch_size, payloads=payloads)
        done = 0
        for _, req in requests:
            done += (await self._call(self._points.Upsert, req)).upserted
        return done

    async def upload(self, collection: str, ids: Sequence[str | int] | np.ndarray, vectors: Any, *,
                     payloads: Sequence[dict | None] | None = None, parallel: int = 4, retries: int = 5,
                     batch_size: int | None = None) -> int:
        """Client.upload, awaitable: `parallel` requests in flight, each retried on UNAVAILABLE,
        DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED up to `retries` times (upserts are idempotent)."""
        if not 1 <= parallel <= 64:
            raise InvalidArgument(f"parallel: must be in [1, 64], got {parallel}", field="parallel")
        _, requests = rq.upsert_plan(collection, ids, vectors, batch_size=batch_size, payloads=payloads)
        gate = asyncio.Semaphore(parallel)

        async def send(req: points_pb2.UpsertRequest) -> int:
            async with gate:
                for attempt in range(retries + 1):
                    try:
                        return (await self._call(self._points.Upsert, req)).upserted
                    except (Unavailable, DeadlineExceeded, ResourceExhausted) as e:
                        if attempt == retries:
                            raise
                        await asyncio.sleep(e.retry_after_s or min(5.0, 0.1 * 2**attempt))
                raise AssertionError("unreachable")

        done, batch = 0, []
        for _, req in requests:  # at most 2 x parallel requests built at once
            batch.append(asyncio.ensure_future(send(req)))
            if len(batch) >= 2 * parallel:
                done += sum(await asyncio.gather(*batch))
                batch = []
        return done + sum(await asyncio.gather(*batch))

    async def delete(self, collection: str, ids: Sequence[str | int] | np.ndarray | None = None, *,
                     filter: Any = None) -> int:  # noqa: A002
        return (await self._call(self._points.Delete, rq.delete_request(collection, ids, filter))).deleted

    async def set_payload(self, collection: str, ids: Sequence[str | int] | np.ndarray, payload: dict | None = None,
                          *, delete_keys: Sequence[str] = (), replace: bool = False) -> int:
        return (await self._call(self._points.SetPayload,
                                 rq.set_payload_request(collection, ids, payload, delete_keys, replace))).updated

    async def delete_payload_keys(self, collection: str, ids: Sequence[str | int] | np.ndarray, keys: Sequence[str]) -> int:
        """Remove these fields from each stored point's payload among ids (vectors untouched)."""
        return await self.set_payload(collection, ids, None, delete_keys=keys)

    async def scroll(self, collection: str, *, filter: Any = None, limit: int = 1000,  # noqa: A002
                     cursor: str = "", with_vectors: bool = False, with_payload: bool = True) -> rq.Page:
        req = points_pb2.ScrollRequest(collection=collection, limit=limit, cursor=cursor, with_vectors=with_vectors,
                                       with_payload=with_payload, **rq.filter_field(filter))
        return rq.parse_scroll(await self._call(self._points.Scroll, req), with_vectors, with_payload)

    async def count(self, collection: str, filter: Any = None) -> int:  # noqa: A002
        return (await self._call(self._points.Count, rq.count_request(collection, filter))).count

    async def feedback(self, collection: str, query: Any = None, *, text: str | None = None, image: Any = None,
                       shown: Sequence[str | int], chosen: str | int = "") -> int:
        """As Client.feedback."""
        return (await self._call(self._points.Feedback,
                                 rq.feedback_request(collection, query, text, image, shown, chosen))).event

    async def list_feedback(self, collection: str, *, after: int = 0, limit: int = 1000) -> rq.FeedbackPage:
        """As Client.list_feedback."""
        req = points_pb2.ListFeedbackRequest(collection=collection, after=after, limit=limit)
        return rq.parse_feedback_page(await self._call(self._points.ListFeedback, req))

    async def get(self, collection: str, ids: Sequence[str | int] | np.ndarray, *, with_inputs: bool = False) -> rq.Points:
        return rq.parse_get(await self._call(self._points.Get, rq.get_request(collection, ids, with_inputs)))

    async def search(self, collection: str, queries: Any = None, k: int = 10, *, texts: Sequence[str] | None = None,
                     images: Any = None, encoder: str | None = None, timeout: float | None = None,
                     **params: Any) -> rq.SearchResults:
        req = with_timeout(rq.search_request(collection, queries, k, texts=texts, images=images, encoder=encoder,
                                             **params), timeout or self.timeout)
        return rq.parse_search(await rq.retrying_async(lambda: self._streams.search(req)), k)

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
