"""`simsearch.Client`: the blocking SDK, numpy in and out, typed exceptions."""

from __future__ import annotations

import time
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any, Sequence

import numpy as np
from tqdm.auto import tqdm

from simsearch.client import _requests as rq
from simsearch.client._streams import SyncSearchStreams, with_timeout
from simsearch.protos.simsearch.v1 import (collections_pb2, collections_pb2_grpc, encoders_pb2, encoders_pb2_grpc,
                                           points_pb2, points_pb2_grpc)
from simsearch.contract.errors import DeadlineExceeded, InvalidArgument, ResourceExhausted, Unavailable


class Client:
    """Client("localhost:50051", api_key=...). Every gRPC failure is raised as a SimsearchError subclass."""

    def __init__(self, address: str, api_key: str | None = None, *, timeout: float | None = 60.0,
                 stream: bool = True, tls: bool = False, root_certificates: Any = None, client_cert: Any = None,
                 client_key: Any = None):
        """stream: send searches as messages on long-lived SearchStream calls (about half the
        round trip of a unary call for a small query); False sends one unary Search each.
        tls: connect over TLS, verifying the server against root_certificates (PEM bytes or a path;
        None: the system's roots); client_cert and client_key (PEM) for a server that asks for them."""
        self._channel = rq.channel(address, tls=tls, root_certificates=root_certificates, client_cert=client_cert,
                                   client_key=client_key)
        self._collections = collections_pb2_grpc.CollectionsStub(self._channel)
        self._points = points_pb2_grpc.PointsStub(self._channel)
        self._encoders = encoders_pb2_grpc.EncodersStub(self._channel)
        self._md = rq.metadata(api_key)
        self.timeout = timeout
        self._streams = SyncSearchStreams(self._points.SearchStream, self._md,
                                          lambda req: self._call(self._points.Search, req, req.params.timeout_ms / 1000),
                                          enabled=stream)

    def _call(self, method, request, timeout: float | None = None):
        """One call; a refusal by a rate or concurrency limit is retried after the server's RetryInfo."""
        return rq.retrying(lambda: method(request, metadata=self._md, timeout=timeout or self.timeout))

    # ---- collections ----

    def create_collection(self, name: str, dim: int = 0, metric: str = "", shards: int = 1, *, encoder: str = "",
                          payload_indexes: dict[str, str] | None = None, replicas: int = 1, write_quorum: int = 0,
                          **index: float) -> rq.CollectionInfo:
        """metric "" = l2 (cosine when bound to an encoder); encoder = "name@version" binds the
        collection so upsert/search take texts= or images=, and dim may be 0 (the encoder's).
        payload_indexes: {field: type} with types keyword, integer, float, bool, datetime.
        replicas: copies of each shard, on different Ray nodes while there are enough; a write is acknowledged
        once durable on write_quorum of them (0: a majority), and a search reads one, going to another
        when one fails.
        index: num_leaves, leaves_to_search, dims_per_block, rebuild_threshold, min_index_size, oversample,
        target_recall (recall@10 the auto leaves_to_search/oversample are calibrated to after each build;
        default 0.95), and recall_slo (the live recall below which the collection's recall flag is raised;
        default 0.9)."""
        return rq.parse_info(self._call(self._collections.CreateCollection,
                                        rq.create_request(name, dim, metric, shards, index, encoder, payload_indexes,
                                                          replicas, write_quorum)))

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

    def create_payload_index(self, collection: str, field: str, type: str, *, wait: bool = True,  # noqa: A002
                             timeout: float | None = 600.0) -> rq.CollectionInfo:
        """Index a payload field with a type (keyword, integer, float, bool, datetime): later writes of another
        type are refused, and the shards keep its column built. wait: until every shard has read it."""
        return rq.parse_info(self._call(self._collections.CreatePayloadIndex, collections_pb2.CreatePayloadIndexRequest(
            collection=collection, field=field, type=type, wait=wait), timeout))

    def drop_payload_index(self, collection: str, field: str) -> rq.CollectionInfo:
        return rq.parse_info(self._call(self._collections.DropPayloadIndex,
                                        collections_pb2.DropPayloadIndexRequest(collection=collection, field=field)))

    # ---- aliases ----

    def create_alias(self, alias: str, collection: str) -> None:
        """A second name for `collection`, accepted wherever a collection name is (ALREADY_EXISTS when the
        name is taken by a collection or an alias)."""
        self._call(self._collections.CreateAlias,
                   collections_pb2.CreateAliasRequest(alias=alias, collection=collection))

    def switch_alias(self, alias: str, collection: str) -> str:
        """Point an existing alias at `collection`, atomically: every request sent after this returns uses
        the new target. Returns the previous target."""
        return self._call(self._collections.SwitchAlias,
                          collections_pb2.SwitchAliasRequest(alias=alias, collection=collection)).previous

    def update_collection(self, name: str, **settings: float) -> rq.CollectionInfo:
        """Change search-time settings: leaves_to_search, oversample, target_recall, recall_slo (0 = automatic);
        those not named are kept."""
        return rq.parse_info(self._call(self._collections.UpdateCollection,
                                          collections_pb2.UpdateCollectionRequest(name=name, **settings)))

    def reset_drift_reference(self, collection: str, kind: str = "") -> rq.CollectionInfo:
        """Forget the collection's drift reference ("queries", "writes", or "" for both): the next vectors seen
        form a new one (after an intended change)."""
        return rq.parse_info(self._call(self._collections.ResetDriftReference,
                                          collections_pb2.ResetDriftReferenceRequest(collection=collection,
                                                                                     kind=kind)))

    def reindex(self, collection: str, encoder: str, **options: Any) -> rq.ReindexStatus:
        """Re-embed `collection` with `encoder` (name@version) in the background while it serves; promoted through
        a quality gate (label_field=, eval_filter=, eval_size=, k=, min_gain=, min_overlap=) and an optional canary
        (canary_fraction=, canary_seconds=, max_latency_ratio=), or skip_gate=True. Answers at once: poll
        get_reindex (or wait_reindex)."""
        return rq.parse_reindex(self._call(self._collections.Reindex, rq.reindex_request(collection, encoder,
                                                                                             **options)))

    def get_reindex(self, collection: str) -> rq.ReindexStatus:
        """The collection's latest reindex job."""
        return rq.parse_reindex(self._call(self._collections.GetReindex,
                                             collections_pb2.GetReindexRequest(collection=collection)))

    def cancel_reindex(self, collection: str) -> rq.ReindexStatus:
        return rq.parse_reindex(self._call(self._collections.CancelReindex,
                                             collections_pb2.CancelReindexRequest(collection=collection)))

    def wait_reindex(self, collection: str, *, timeout: float = 3600.0, poll: float = 0.5) -> rq.ReindexStatus:
        """Poll until the latest job has ended (TimeoutError after `timeout` seconds)."""
        end = time.monotonic() + timeout
        while True:
            status = self.get_reindex(collection)
            if status.done:
                return status
            if time.monotonic() > end:
                raise TimeoutError(f"reindex of {collection!r} still {status.state} after {timeout:g} s")
            time.sleep(poll)

    def delete_alias(self, alias: str) -> None:
        self._call(self._collections.DeleteAlias, collections_pb2.DeleteAliasRequest(alias=alias))

    def list_aliases(self) -> dict[str, str]:
        """{alias: collection} for each of the tenant's aliases."""
        resp = self._call(self._collections.ListAliases, collections_pb2.ListAliasesRequest())
        return {a.alias: a.collection for a in resp.aliases}

    # ---- points ----

    def upsert(self, collection: str, ids: Sequence[str | int] | np.ndarray, vectors: Any = None, *,
               texts: Sequence[str] | None = None, images: Any = None, encoder: str | None = None,
               batch_size: int | None = None, progress: bool | None = None,
               payloads: Sequence[dict | None] | None = None) -> int:
        """Upsert vectors, or raw texts/images for a collection bound to an encoder, in batches
        (about 8 MiB of vectors and payloads, or 1,024 raw inputs) with a progress bar (on a terminal
        when progress is None). `encoder` names the "name@version" that produced `vectors`.
        `payloads`: one flat dict per id (None or {} for none); an upsert replaces a point's payload."""
        total, requests = rq.upsert_plan(collection, ids, vectors, texts=texts, images=images, encoder=encoder,
                                         batch_size=batch_size, payloads=payloads)
        done = 0
        with tqdm(total=total, unit="vec", desc=f"upsert {collection}", disable=None if progress is None else not progress) as bar:
            for rows, req in requests:
                done += self._call(self._points.Upsert, req).upserted
                bar.update(rows)
        return done

    def upload(self, collection: str, ids: Sequence[str | int] | np.ndarray, vectors: Any, *,
               payloads: Sequence[dict | None] | None = None, parallel: int = 4, retries: int = 5,
               batch_size: int | None = None, progress: bool | None = None) -> int:
        """Upsert a large dataset: the same ~8 MiB requests as `upsert`, `parallel` of them in flight at
        once, each retried on UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED (with the server's
        RetryInfo back-off when it sends one, else exponential from 0.1 s) up to `retries` times; an
        upsert is idempotent, so a retry after a lost reply changes nothing. Every length and payload
        is checked before the first request. Returns how many points were acknowledged."""
        if not 1 <= parallel <= 64:
            raise InvalidArgument(f"parallel: must be in [1, 64], got {parallel}", field="parallel")
        total, requests = rq.upsert_plan(collection, ids, vectors, batch_size=batch_size, payloads=payloads)

        def send(req: points_pb2.UpsertRequest) -> int:
            for attempt in range(retries + 1):
                try:
                    return self._call(self._points.Upsert, req).upserted
                except (Unavailable, DeadlineExceeded, ResourceExhausted) as e:
                    if attempt == retries:
                        raise
                    time.sleep(e.retry_after_s or min(5.0, 0.1 * 2**attempt))
            raise AssertionError("unreachable")

        done = 0
        with tqdm(total=total, unit="vec", desc=f"upload {collection}", disable=None if progress is None else not progress) as bar, \
                ThreadPoolExecutor(parallel, thread_name_prefix="simsearch-upload") as pool:
            pending: dict = {}
            for rows, req in requests:  # built lazily: at most 2 x parallel requests held at once
                pending[pool.submit(send, req)] = rows
                if len(pending) >= 2 * parallel:
                    done += self._settle(pending, bar, FIRST_COMPLETED)
            done += self._settle(pending, bar, ALL_COMPLETED)
        return done

    @staticmethod
    def _settle(pending: dict, bar: Any, when: str) -> int:
        finished, _ = wait(pending, return_when=when)
        done = 0
        for fut in finished:
            done += fut.result()  # the first failure (after its retries) ends the upload, raised here
            bar.update(pending.pop(fut))
        return done

    def delete(self, collection: str, ids: Sequence[str | int] | np.ndarray | None = None, *,
               filter: Any = None) -> int:  # noqa: A002
        """Delete these ids, or every point whose payload passes `filter` (a Mongo-style dict). Returns how
        many existed."""
        return self._call(self._points.Delete, rq.delete_request(collection, ids, filter)).deleted

    def set_payload(self, collection: str, ids: Sequence[str | int] | np.ndarray, payload: dict | None = None, *,
                    delete_keys: Sequence[str] = (), replace: bool = False) -> int:
        """Set `payload`'s fields on each stored point among ids (replace=True: replace its whole payload),
        then remove `delete_keys`; vectors are untouched. Returns how many points were stored."""
        return self._call(self._points.SetPayload,
                          rq.set_payload_request(collection, ids, payload, delete_keys, replace)).updated

    def delete_payload_keys(self, collection: str, ids: Sequence[str | int] | np.ndarray, keys: Sequence[str]) -> int:
        """Remove these fields from each stored point's payload among ids (vectors untouched)."""
        return self.set_payload(collection, ids, None, delete_keys=keys)

    def scroll(self, collection: str, *, filter: Any = None, limit: int = 1000, cursor: str = "",  # noqa: A002
               with_vectors: bool = False, with_payload: bool = True) -> rq.Page:
        """One page of points in id order (those that pass `filter`); pass `page.next_cursor` back for the
        next, until it is "". Every point stored throughout the walk comes exactly once."""
        req = points_pb2.ScrollRequest(collection=collection, limit=limit, cursor=cursor, with_vectors=with_vectors,
                                       with_payload=with_payload, **rq.filter_field(filter))
        return rq.parse_scroll(self._call(self._points.Scroll, req), with_vectors, with_payload)

    def count(self, collection: str, filter: Any = None) -> int:  # noqa: A002
        """Points whose payload passes `filter` (every point without one): exact."""
        return self._call(self._points.Count, rq.count_request(collection, filter)).count

    def feedback(self, collection: str, query: Any = None, *, text: str | None = None, image: Any = None,
                 shown: Sequence[str | int], chosen: str | int = "") -> int:
        """Record what a user did with a search's results: the query (a vector, or one text or image for a
        collection bound to an encoder), the ids shown in order, the one chosen ("" for none). Durable when
        this returns; training mines hard negatives from it (shown, not chosen). Returns the event's number."""
        return self._call(self._points.Feedback, rq.feedback_request(collection, query, text, image, shown, chosen)).event

    def list_feedback(self, collection: str, *, after: int = 0, limit: int = 1000) -> rq.FeedbackPage:
        """A page of the collection's feedback events in order (up to `limit`, 1..1000): those after sequence
        number `after`; pass `page.next_after` back for the next, until it is 0."""
        req = points_pb2.ListFeedbackRequest(collection=collection, after=after, limit=limit)
        return rq.parse_feedback_page(self._call(self._points.ListFeedback, req))

    def get(self, collection: str, ids: Sequence[str | int] | np.ndarray, *, with_inputs: bool = False) -> rq.Points:
        """with_inputs: also the raw inputs (texts or images) a collection bound to an encoder kept."""
        return rq.parse_get(self._call(self._points.Get, rq.get_request(collection, ids, with_inputs)))

    def search(self, collection: str, queries: Any = None, k: int = 10, *, texts: Sequence[str] | None = None,
               images: Any = None, encoder: str | None = None, timeout: float | None = None,
               **params: Any) -> rq.SearchResults:
        """Query vectors, or texts=/images= for a collection bound to an encoder. params:
        leaves_to_search, oversample, target_recall (the cheapest calibrated setting meeting this recall@10
        instead of the collection's), exact, timeout_ms, allow_partial, no_cache, with_payload (each
        hit's payload dict in `.payloads`), filter (a Mongo-style dict over payload fields, e.g.
        {"color": "red", "price": {"$lt": 20}}: only points that pass are returned)."""
        req = with_timeout(rq.search_request(collection, queries, k, texts=texts, images=images, encoder=encoder,
                                             **params), timeout or self.timeout)
        return rq.parse_search(rq.retrying(lambda: self._streams.search(req)), k)

    # ---- encoders ----

    def embed(self, model: str, *, texts: Sequence[str] | None = None, images: Any = None) -> rq.Embedding:
        """Embed raw inputs with a registered encoder ("name@version" or "name" for the latest)."""
        req = encoders_pb2.EmbedRequest(model=model, inputs=rq.raw_inputs(texts, images))
        return rq.parse_embed(self._call(self._encoders.Embed, req))

    def list_models(self) -> list[dict[str, Any]]:
        return rq.parse_models(self._call(self._encoders.ListModels, encoders_pb2.ListModelsRequest()))

    # ---- lifecycle ----

    def close(self) -> None:
        self._streams.close()
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
