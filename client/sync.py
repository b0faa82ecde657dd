"""`simsearch.Client`: the blocking SDK, numpy in and out, typed exceptions."""

from __future__ import annotations

from typing import Any, Sequence

import grpc
import numpy as np
from tqdm.auto import tqdm

from simsearch.client import _requests as rq
from simsearch.protos.simsearch.v1 import collections_pb2, collections_pb2_grpc, points_pb2, points_pb2_grpc
from simsearch.protos.status import from_rpc_error


class Client:
    """Client("localhost:50051", api_key=...). Every gRPC failure is raised as a SimsearchError subclass."""

    def __init__(self, address: str, api_key: str | None = None, *, timeout: float | None = 60.0):
        self._channel = grpc.insecure_channel(address, options=rq.CHANNEL_OPTIONS)
        self._collections = collections_pb2_grpc.CollectionsStub(self._channel)
        self._points = points_pb2_grpc.PointsStub(self._channel)
        self._md = rq.metadata(api_key)
        self.timeout = timeout

    def _call(self, method, request, timeout: float | None = None):
        try:
            return method(request, metadata=self._md, timeout=timeout or self.timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    # ---- collections ----

    def create_collection(self, name: str, dim: int, metric: str = "l2", shards: int = 1,
                          **index: int) -> rq.CollectionInfo:
        """index: num_leaves, leaves_to_search, dims_per_block, rebuild_threshold, min_index_size, oversample."""
        return rq.parse_info(self._call(self._collections.CreateCollection,
                                        rq.create_request(name, dim, metric, shards, index)))

    def drop_collection(self, name: str) -> None:
        self._call(self._collections.DropCollection, collections_pb2.DropCollectionRequest(name=name))

    def list_collections(self) -> list[str]:
        return list(self._call(self._collections.ListCollections, collections_pb2.ListCollectionsRequest()).names)

    def describe_collection(self, name: str) -> rq.CollectionInfo:
        return rq.parse_info(self._call(self._collections.DescribeCollection,
                                        collections_pb2.DescribeCollectionRequest(name=name)))

    def build_index(self, name: str, wait: bool = True, timeout: float | None = 600.0) -> rq.CollectionInfo:
        """Fold every shard's fresh buffer into a new ScaNN index now."""
        return rq.parse_info(self._call(self._collections.BuildIndex,
                                        collections_pb2.BuildIndexRequest(name=name, wait=wait), timeout))

    # ---- points ----

    def upsert(self, collection: str, ids: Sequence[str | int] | np.ndarray, vectors: Any, *,
               batch_size: int | None = None, progress: bool | None = None) -> int:
        """Upsert in batches of about 8 MiB with a progress bar (shown on a terminal when progress is None)."""
        ids, vectors = rq.as_str_ids(ids), rq.as_matrix(vectors)
        batches = rq.upsert_batches(ids, vectors, batch_size)
        done = 0
        with tqdm(total=len(ids), unit="vec", desc=f"upsert {collection}", disable=None if progress is None else not progress) as bar:
            for b in batches:
                done += self._call(self._points.Upsert, rq.upsert_request(collection, ids[b], vectors[b])).upserted
                bar.update(len(ids[b]))
        return done

    def delete(self, collection: str, ids: Sequence[str | int] | np.ndarray) -> int:
        return self._call(self._points.Delete, points_pb2.DeleteRequest(collection=collection, ids=rq.as_str_ids(ids))).deleted

    def get(self, collection: str, ids: Sequence[str | int] | np.ndarray) -> rq.Points:
        return rq.parse_get(self._call(self._points.Get, points_pb2.GetRequest(collection=collection, ids=rq.as_str_ids(ids))))

    def search(self, collection: str, queries: Any, k: int = 10, *, timeout: float | None = None,
               **params: Any) -> rq.SearchResults:
        """params: leaves_to_search, oversample, exact, timeout_ms, allow_partial, no_cache."""
        req = rq.search_request(collection, rq.as_matrix(queries), k, **params)
        return rq.parse_search(self._call(self._points.Search, req, timeout), k)

    # ---- lifecycle ----

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
