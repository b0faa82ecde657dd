"""Request building and response parsing shared by Client and AsyncClient.

Both clients are thin shells around these functions, so sync and async behave the same.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence, TypeVar

import grpc
import numpy as np

from simsearch.protos import convert
from simsearch.contract.errors import InvalidArgument, QuotaExceeded
from simsearch.protos.status import from_rpc_error
from simsearch.contract.filters import as_filter
from simsearch.contract.payloads import decode as decode_payload, encode as encode_payload
from simsearch.protos.filters import to_proto as filter_to_proto
from simsearch.contract.limits import MAX_BATCH, MAX_MESSAGE_BYTES, MAX_RAW_ITEMS, UPSERT_TARGET_BYTES
from simsearch.protos.simsearch.v1 import collections_pb2, common_pb2, encoders_pb2, points_pb2


_RETRY = {
    "maxAttempts": 4, "initialBackoff": "0.1s", "maxBackoff": "2s", "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
# Idempotent calls only: a retried CreateCollection could answer ALREADY_EXISTS to its own first try.
_IDEMPOTENT = [{"service": "simsearch.v1.Encoders"}] + [
    {"service": "simsearch.v1.Points", "method": m} for m in (  # not Feedback: a resent event would count twice
        "Upsert", "Delete", "Get", "SetPayload", "Scroll", "Count", "Search", "SearchStream",
        "ListFeedback")
] + [
    {"service": "simsearch.v1.Collections", "method": m} for m in (
        "ListCollections", "DescribeCollection", "BuildIndex", "SwitchAlias", "ListAliases", "GetReindex")
]
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps({"methodConfig": [{"name": _IDEMPOTENT, "retryPolicy": _RETRY}]})),
]


T = TypeVar("T")
RATE_LIMIT_RETRIES = 8  # a request refused by a rate or concurrency limit (nothing was done) is sent again


def rate_limit_wait(err: Exception, attempt: int) -> float | None:
    """How long to wait before sending again a request a rate or concurrency limit refused (the server's
    RetryInfo, with jitter so many clients do not return in step), or None to raise the error: it was not
    such a refusal, or RATE_LIMIT_RETRIES were spent. Such a refusal happens before any work, so every
    call may be retried, writes included."""
    if not isinstance(err, QuotaExceeded) or err.retry_after_s is None or attempt >= RATE_LIMIT_RETRIES:
        return None
    return err.retry_after_s * (1.0 + 0.2 * random.random()) * (1.5 ** attempt)


def retrying(send: Callable[[], T]) -> T:
    """send() (a gRPC call, or an SDK step raising SimsearchError), sent again after each refusal by a
    rate or concurrency limit (`rate_limit_wait`); any other failure raised as its SimsearchError."""
    attempt = 0
    while True:
        try:
            return send()
        except (grpc.RpcError, QuotaExceeded) as e:
            err = from_rpc_error(e) if isinstance(e, grpc.RpcError) else e
        wait = rate_limit_wait(err, attempt)
        if wait is None:
            raise err from None
        time.sleep(wait)
        attempt += 1


async def retrying_async(send: Callable[[], Awaitable[T]]) -> T:
    """`retrying` for awaitables: waits with asyncio.sleep."""
    attempt = 0
    while True:
        try:
            return await send()
        except (grpc.RpcError, QuotaExceeded) as e:
            err = from_rpc_error(e) if isinstance(e, grpc.RpcError) else e
        wait = rate_limit_wait(err, attempt)
        if wait is None:
            raise err from None
        await asyncio.sleep(wait)
        attempt += 1


def _pem(value: bytes | str | os.PathLike | None) -> bytes | None:
    """PEM bytes as given, or read from a path."""
    if value is None or isinstance(value, bytes):
        return value
    with open(value, "rb") as f:
        return f.read()


def channel(address: str, *, tls: bool = False, root_certificates: bytes | str | os.PathLike | None = None,
            client_cert: bytes | str | os.PathLike | None = None, client_key: bytes | str | os.PathLike | None = None,
            aio: bool = False):
    """A gRPC channel: plaintext, or TLS (tls=True, or any certificate given) verified against
    root_certificates (PEM bytes or a path; None: the system's roots), presenting client_cert/client_key
    for mutual TLS."""
    grpc_mod = grpc.aio if aio else grpc
    if not (tls or root_certificates or client_cert or client_key):
        return grpc_mod.insecure_channel(address, options=CHANNEL_OPTIONS)
    if (client_cert is None) != (client_key is None):
        raise InvalidArgument("client_cert and client_key: pass both (mutual TLS) or neither", field="client_cert")
    creds = grpc.ssl_channel_credentials(_pem(root_certificates), _pem(client_key), _pem(client_cert))
    return grpc_mod.secure_channel(address, creds, options=CHANNEL_OPTIONS)


def metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    key = api_key or os.environ.get("SIMSEARCH_API_KEY")
    return (("x-api-key", key),) if key else ()


def as_str_ids(ids: Sequence[str | int] | np.ndarray) -> list[str]:
    """Ids may be given as str or int (or a numpy array of either); the wire carries str."""
    arr = np.asarray(ids)
    if arr.dtype.kind in "fc" and arr.size:
        raise TypeError(f"ids must be str or int, got {arr.dtype}")
    return arr.astype(str).tolist()


def as_matrix(vectors: Any) -> np.ndarray:
    a = np.asarray(vectors, dtype=np.float32)
    return a[None, :] if a.ndim == 1 else a


def upsert_batches(ids: list[str], vectors: np.ndarray, batch_size: int | None,
                   payload_bytes: np.ndarray | None = None) -> list[slice]:
    """Request slices; checks the whole call first so a bulk upsert never half-applies for a length mismatch.
    Without batch_size, each request carries about UPSERT_TARGET_BYTES of vectors and payloads (whose
    sizes, `payload_bytes` per row, vary: the cuts follow their running sum)."""
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise InvalidArgument(f"vectors: must have one row per id ({len(ids)}), got shape {vectors.shape}",
                              field="vectors")
    if batch_size is not None or payload_bytes is None:
        if batch_size is None:
            row_bytes = vectors.shape[1] * 4 + 32
            batch_size = max(1, min(MAX_BATCH, UPSERT_TARGET_BYTES // row_bytes))
        return [slice(i, i + batch_size) for i in range(0, len(ids), batch_size)] or [slice(0, 0)]
    ends = np.cumsum(payload_bytes + vectors.shape[1] * 4 + 32)
    cuts, start = [], 0
    while start < len(ids):
        base = ends[start - 1] if start else 0
        stop = int(np.searchsorted(ends, base + UPSERT_TARGET_BYTES, "right"))
        stop = min(max(stop, start + 1), start + MAX_BATCH, len(ids))
        cuts.append(slice(start, stop))
        start = stop
    return cuts or [slice(0, 0)]


RAW_BATCH = min(1024, MAX_RAW_ITEMS)  # raw inputs per request


def raw_inputs(texts: Sequence[str] | None = None, images: Any = None) -> common_pb2.RawInputs:
    """Texts, or uint8 images shaped (N, H, W) or (N, C, H, W), as the wire's RawInputs."""
    if (texts is None) == (images is None):
        raise InvalidArgument("inputs: pass exactly one of texts or images", field="inputs")
    if texts is not None:
        if isinstance(texts, str):
            raise InvalidArgument("inputs.texts: pass a list of strings, not one string", field="inputs.texts")
        return common_pb2.RawInputs(texts=list(texts))
    a = np.asarray(images)
    if a.dtype != np.uint8:
        raise InvalidArgument(f"inputs.images: must be uint8 pixels, got dtype {a.dtype}", field="inputs.images")
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4:
        raise InvalidArgument(f"inputs.images: must be (N, H, W) or (N, C, H, W), got shape {a.shape}",
                              field="inputs.images")
    n, c, h, w = a.shape
    return common_pb2.RawInputs(images=common_pb2.ImageBatch(count=n, channels=c, height=h, width=w,
                                                             pixels=np.ascontiguousarray(a).tobytes()))


def upsert_request(collection: str, ids: list[str], vectors: np.ndarray | None, *,
                   inputs: common_pb2.RawInputs | None = None, encoder: str = "",
                   payloads: list[str] | None = None) -> points_pb2.UpsertRequest:
    if inputs is not None:
        return points_pb2.UpsertRequest(collection=collection, ids=ids, inputs=inputs, payloads=payloads or [])
    return points_pb2.UpsertRequest(collection=collection, ids=ids, vectors=convert.matrix_to_proto(vectors),
                                    encoder=encoder or "", payloads=payloads or [])


def encode_payloads(payloads: Sequence[dict | None] | None, n: int) -> list[str] | None:
    """Payload dicts (None or {} for none) as the JSON texts a request carries, checked like the server
    checks them, all before the first request; None when there are none at all."""
    if payloads is None:
        return None
    if len(payloads) != n:
        raise InvalidArgument(f"payloads: must hold one payload per id ({n}), got {len(payloads)}", field="payloads")
    texts = [encode_payload(p, f"payloads[{i}]") for i, p in enumerate(payloads)]
    return texts if any(texts) else None


def upsert_plan(collection: str, ids: Sequence[str | int] | np.ndarray, vectors: Any = None, *,
                texts: Sequence[str] | None = None, images: Any = None, encoder: str | None = None,
                batch_size: int | None = None, payloads: Sequence[dict | None] | None = None,
                ) -> tuple[int, Iterator[tuple[int, points_pb2.UpsertRequest]]]:
    """(number of ids, lazily built (rows, request) pairs). Lengths are checked before the first
    request is built, so a bulk upsert never half-applies for a mismatch; requests are built
    one at a time, so a bulk upsert never holds its whole payload twice."""
    ids = as_str_ids(ids)
    docs = encode_payloads(payloads, len(ids))
    pick = (lambda b: None) if docs is None else (lambda b: docs[b])  # noqa: E731
    if vectors is None and texts is None and images is None:
        raise InvalidArgument("vectors: pass vectors, or texts/images for a collection bound to an encoder",
                              field="vectors")
    if vectors is None:
        count = len(texts) if texts is not None else len(images)
        slices = upsert_batches(ids, np.zeros((count, 0), np.float32), batch_size or RAW_BATCH)
        build = lambda b: upsert_request(collection, ids[b], None, payloads=pick(b), inputs=(  # noqa: E731
            raw_inputs(list(texts[b])) if texts is not None else raw_inputs(None, np.asarray(images)[b])))
    else:
        vectors = as_matrix(vectors)
        sizes = None if docs is None else np.fromiter(
            (len(t) if t.isascii() else len(t.encode("utf-8")) for t in docs), np.int64, len(docs))
        slices = upsert_batches(ids, vectors, batch_size, sizes)
        build = lambda b: upsert_request(collection, ids[b], vectors[b], encoder=encoder or "",  # noqa: E731
                                         payloads=pick(b))
    return len(ids), ((len(ids[b]), build(b)) for b in slices)


def search_request(collection: str, queries: Any, k: int, *, texts: Sequence[str] | None = None, images: Any = None,
                   encoder: str | None = None, leaves_to_search: int = 0, oversample: int = 0, exact: bool = False,
                   timeout_ms: int = 0, allow_partial: bool = False, no_cache: bool = False,
                   with_payload: bool | Sequence[str] = False,
                   filter: Any = None, target_recall: float = 0.0) -> points_pb2.SearchRequest:  # noqa: A002
    """with_payload: True for each hit's whole payload, or a list of the fields wanted."""
    fields: list[str] = []
    if not isinstance(with_payload, bool):
        if isinstance(with_payload, str):
            raise InvalidArgument("with_payload: must be True/False or a list of field names, got a string",
                                  field="with_payload")
        fields = list(with_payload)
        if not fields:
            raise InvalidArgument("with_payload: an empty list of fields; pass True for every field",
                                  field="with_payload")
    params = points_pb2.SearchParams(leaves_to_search=leaves_to_search, oversample=oversample, exact=exact,
                                     timeout_ms=timeout_ms, allow_partial=allow_partial, no_cache=no_cache,
                                     with_payload=bool(with_payload), payload_fields=fields,
                                     target_recall=target_recall)
    f = as_filter(filter)  # a Mongo-style dict (or a Filter); checked here, named by its path on error
    where = {} if f is None else {"filter": filter_to_proto(f)}
    if queries is None:
        return points_pb2.SearchRequest(collection=collection, inputs=raw_inputs(texts, images), k=k, params=params,
                                        **where)
    return points_pb2.SearchRequest(collection=collection, queries=convert.matrix_to_proto(as_matrix(queries)), k=k,
                                    params=params, encoder=encoder or "", **where)


def delete_request(collection: str, ids: Any = None, filter: Any = None) -> points_pb2.DeleteRequest:  # noqa: A002
    """Ids, or a filter (a Mongo-style dict): one of the two."""
    f = as_filter(filter)
    if (ids is None) == (f is None):
        raise InvalidArgument("ids: pass ids, or filter= to delete every point that passes it (not both)", field="ids")
    if f is not None:
        return points_pb2.DeleteRequest(collection=collection, filter=filter_to_proto(f))
    return points_pb2.DeleteRequest(collection=collection, ids=as_str_ids(ids))


def set_payload_request(collection: str, ids: Any, payload: dict | None, delete_keys: Sequence[str],
                        replace: bool) -> points_pb2.SetPayloadRequest:
    return points_pb2.SetPayloadRequest(collection=collection, ids=as_str_ids(ids),
                                        payload=encode_payload(payload, "payload"), delete_keys=list(delete_keys),
                                        replace=replace)


@dataclass(frozen=True)
class Page:
    ids: list[str]
    vectors: np.ndarray | None  # with with_vectors=True
    payloads: list[dict] | None  # with with_payload=True
    next_cursor: str  # pass it back for the next page; "" after the last one


def parse_scroll(resp: points_pb2.ScrollResponse, with_vectors: bool, with_payload: bool) -> Page:
    return Page(list(resp.ids), convert.matrix_from_proto(resp.vectors, "vectors") if with_vectors and len(resp.ids)
                else None, [decode_payload(t) for t in resp.payloads] if with_payload else None, resp.next_cursor)


def filter_field(filter: Any) -> dict:  # noqa: A002
    """{"filter": proto} for a request, or {} when there is no filter; the dict is checked here."""
    f = as_filter(filter)
    return {} if f is None else {"filter": filter_to_proto(f)}


def count_request(collection: str, filter: Any = None) -> points_pb2.CountRequest:  # noqa: A002
    return points_pb2.CountRequest(collection=collection, **filter_field(filter))


def create_request(name: str, dim: int, metric: str, shards: int, index: dict[str, float], encoder: str = "",
                   payload_indexes: dict[str, str] | None = None, replicas: int = 1, write_quorum: int = 0):
    index = dict(index)
    recall_slo = index.pop("recall_slo", 0.0)
    return collections_pb2.CreateCollectionRequest(recall_slo=recall_slo,
        name=name, dim=dim, metric=metric, shards=shards, index=collections_pb2.IndexParams(**index), encoder=encoder,
        payload_indexes=[collections_pb2.PayloadIndex(field=f, type=t) for f, t in (payload_indexes or {}).items()],
        replicas=replicas, write_quorum=write_quorum)


@dataclass(frozen=True)
class Embedding:
    model: str  # the resolved "name@version": pass it as `encoder=` with these vectors
    vectors: np.ndarray  # (n, dim) float32, unit norm


def parse_embed(resp: encoders_pb2.EmbedResponse) -> Embedding:
    return Embedding(resp.model, convert.matrix_from_proto(resp.vectors, "vectors"))


def parse_models(resp: encoders_pb2.ListModelsResponse) -> list[dict[str, Any]]:
    return [{"ref": m.ref, "kind": m.kind, "embedding_dim": m.embedding_dim, "input_shape": list(m.input_shape),
             "created": m.created, "metrics": dict(m.metrics), "data_fingerprint": m.data_fingerprint}
            for m in resp.models]


@dataclass(frozen=True)
class SearchResults:
    """Per-query results as (n, k) arrays; rows with fewer than k hits are padded ("" / NaN)."""

    ids: np.ndarray  # (n, k) object (str)
    scores: np.ndarray  # (n, k) float32: l2 squared distance, dot/cosine similarity
    timings_ms: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    partial: bool = False
    missing_shards: tuple[int, ...] = ()
    generation: int = 0
    payloads: np.ndarray | None = None  # with with_payload=True: (n, k) object, a dict per hit (None as padding)
    shard_paths: tuple[str, ...] = ()  # how each shard answered ("index", "filter-exact", ...); () when cached
    unindexed_fields: tuple[str, ...] = ()  # the filter's fields without a payload index (read from payloads)

    def __len__(self) -> int:
        return len(self.ids)


def parse_search(resp: points_pb2.SearchResponse, k: int) -> SearchResults:
    ids, scores = convert.unflatten_results(resp.counts, resp.ids, resp.scores, k)
    payloads = None
    if len(resp.payloads):
        payloads = np.full(ids.shape, None, object)
        payloads[ids != ""] = [decode_payload(t) for t in resp.payloads]
    return SearchResults(ids, scores, {t.stage: t.ms for t in resp.timings}, resp.cached, resp.partial,
                         tuple(resp.missing_shards), resp.generation, payloads, tuple(resp.shard_paths),
                         tuple(resp.unindexed_fields))


@dataclass(frozen=True)
class Points:
    ids: list[str]
    vectors: np.ndarray  # (len(ids), dim)
    missing: list[str]
    payloads: list[dict] = field(default_factory=list)  # one per found id ({} for none)
    # with_inputs=True: the raw inputs the found points were upserted with, one per id (texts, or uint8
    # images (n, C, H, W)); ids upserted as plain vectors are in without_inputs ("" / zero pixels above)
    texts: list[str] | None = None
    images: np.ndarray | None = None
    without_inputs: list[str] = field(default_factory=list)


def parse_get(resp: points_pb2.GetResponse) -> Points:
    ids = list(resp.ids)
    payloads = [decode_payload(t) for t in resp.payloads] if len(resp.payloads) else [{} for _ in ids]
    texts = images = None
    if resp.HasField("inputs"):
        im = resp.inputs.images
        if im.count:
            images = np.frombuffer(im.pixels, np.uint8).reshape(im.count, im.channels, im.height, im.width)
        else:
            texts = list(resp.inputs.texts)
    return Points(ids, convert.matrix_from_proto(resp.vectors, "vectors"), list(resp.missing), payloads, texts, images,
                  list(resp.without_inputs))


def feedback_request(collection: str, query: Any, text: str | None, image: Any, shown: Any,
                     chosen: str | int) -> points_pb2.FeedbackRequest:
    """One feedback event: the query as a vector, or as one text or one uint8 image (H, W) / (C, H, W)."""
    if sum(x is not None for x in (query, text, image)) != 1:
        raise InvalidArgument("query: pass exactly one of query (a vector), text or image", field="query")
    req = points_pb2.FeedbackRequest(collection=collection, shown=as_str_ids(shown), chosen=str(chosen))
    if query is not None:
        req.query.CopyFrom(convert.matrix_to_proto(as_matrix(query)))
    else:
        req.inputs.CopyFrom(raw_inputs([text] if text is not None else None,
                                       None if image is None else np.asarray(image)[None]))
    return req


@dataclass(frozen=True)
class FeedbackEvent:
    """One recorded feedback event: the query as recorded (exactly one of vector, text, image is set)."""

    seq: int
    at: float  # unix seconds
    shown: list[str]
    chosen: str  # "" = none was
    vector: np.ndarray | None = None  # (dim,) float32
    text: str | None = None
    image: np.ndarray | None = None  # (C, H, W) uint8


@dataclass(frozen=True)
class FeedbackPage:
    events: list[FeedbackEvent]
    next_after: int  # pass it back as `after` for the next page; 0 after the last one


def parse_feedback_page(resp: points_pb2.ListFeedbackResponse) -> FeedbackPage:
    events = []
    for m in resp.events:
        vector = text = image = None
        if m.query.rows:
            vector = convert.matrix_from_proto(m.query, "query")[0]
        elif m.inputs.images.count:
            im = m.inputs.images
            image = np.frombuffer(im.pixels, np.uint8).reshape(im.channels, im.height, im.width)
        else:
            text = m.inputs.texts[0]
        events.append(FeedbackEvent(m.seq, m.at, list(m.shown), m.chosen, vector, text, image))
    return FeedbackPage(events, resp.next_after)


def get_request(collection: str, ids: Any, with_inputs: bool = False) -> points_pb2.GetRequest:
    return points_pb2.GetRequest(collection=collection, ids=as_str_ids(ids), with_inputs=with_inputs)


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    dim: int
    metric: str
    shards: int
    points: int
    generation: int
    index_state: str
    index: dict[str, int]
    shard_info: list[dict[str, Any]]
    encoder: str = ""
    # field -> {"type", "state" ("building" / "ready"), "points", "invalid_points"}
    payload_indexes: dict[str, dict[str, Any]] = field(default_factory=dict)
    replicas: int = 1
    write_quorum: int = 1  # the quorum in force
    embedding_generation: int = 0  # 0 at creation; each promoted reindex's number after it
    reindex: list["ReindexStatus"] = field(default_factory=list)  # reindex jobs, newest first
    # {"queries": {score, threshold, alarm, exceeded, reference, recent}, "writes": {...}, "health": {collapsed,
    # spread, effective_rank, norm_mean, ...}, "checks", "checked_at"}: drift from the reference samples
    drift: dict[str, Any] = field(default_factory=dict)
    # {"recall", "samples", "slo", "breached", "sampled_requests", "skipped", "fraction", "tuned_target", ...}: recall@k
    # of a sample of live searches re-run exactly
    live_recall: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReindexStatus:
    """A reindex job: state "building", "evaluating", "canary", then "promoted", "refused", "rolled-back", "failed"
    or "cancelled"; `decision` holds the gate's figures (current / candidate: p_at_1, r_at_<k>, map_at_r) and the
    canary's."""

    collection: str
    generation: int
    encoder: str
    from_encoder: str
    state: str
    copied: int
    total: int
    error: str
    passed: bool
    reason: str
    decision: dict[str, Any]
    started_at: float
    updated_at: float

    @property
    def done(self) -> bool:
        return self.state not in ("building", "evaluating", "canary")


def parse_reindex(m: collections_pb2.ReindexStatus) -> ReindexStatus:
    return ReindexStatus(m.collection, m.generation, m.encoder, m.from_encoder, m.state, m.copied, m.total, m.error,
                         m.passed, m.reason, json.loads(m.decision or "{}"), m.started_at, m.updated_at)


def reindex_request(collection: str, encoder: str, *, label_field: str = "", eval_filter: Any = None,
                    eval_size: int = 0, k: int = 0, min_gain: float = 0.0, min_overlap: float = 0.0,
                    canary_fraction: float = 0.0, canary_seconds: float = 0.0, max_latency_ratio: float = 0.0,
                    batch: int = 0, skip_gate: bool = False) -> collections_pb2.ReindexRequest:
    f = as_filter(eval_filter, "eval_filter")
    where = {} if f is None else {"eval_filter": filter_to_proto(f)}
    return collections_pb2.ReindexRequest(
        collection=collection, encoder=encoder, label_field=label_field, eval_size=eval_size, k=k, min_gain=min_gain,
        min_overlap=min_overlap, canary_fraction=canary_fraction, canary_seconds=canary_seconds,
        max_latency_ratio=max_latency_ratio, batch=batch, skip_gate=skip_gate, **where)


def parse_info(m: collections_pb2.CollectionInfo) -> CollectionInfo:
    ix = m.index
    index = {f.name: getattr(ix, f.name) for f in ix.DESCRIPTOR.fields}
    shards = [{f.name: getattr(s, f.name) for f in s.DESCRIPTOR.fields if f.name != "replicas"}
              | {"replicas": [{f.name: getattr(r, f.name) for f in r.DESCRIPTOR.fields} for r in s.replicas]}
              for s in m.shard_info]
    indexes = {p.field: {"type": p.type, "state": p.state, "points": p.points, "invalid_points": p.invalid_points}
               for p in m.payload_indexes}
    return CollectionInfo(m.name, m.dim, m.metric, m.shards, m.points, m.generation, m.index_state, index, shards,
                          m.encoder, indexes, m.replicas or 1, m.write_quorum or 1, m.embedding_generation,
                          [parse_reindex(r) for r in m.reindex], _drift(m.drift) if m.HasField("drift") else {},
                          _live_recall(m.live_recall) if m.HasField("live_recall") else {})


def _live_recall(lr: collections_pb2.LiveRecall) -> dict[str, Any]:
    out = {f.name: getattr(lr, f.name) for f in lr.DESCRIPTOR.fields if f.name != "by_filter"}
    out["by_filter"] = {s: {"recall": v.recall, "samples": v.samples} for s, v in lr.by_filter.items()}
    return out


def _drift(d: collections_pb2.DriftInfo) -> dict[str, Any]:
    def fields(msg) -> dict[str, Any]:
        return {f.name: (list(getattr(msg, f.name)) if f.name == "reasons" else getattr(msg, f.name))
                for f in msg.DESCRIPTOR.fields}

    return {"queries": fields(d.queries), "writes": fields(d.writes),
            "health": fields(d.health) if d.health.measured else {}, "checks": d.checks, "checked_at": d.checked_at}
