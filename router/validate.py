"""Request validation at the edge: each request is checked once, cheapest bounds first, before
anything is computed, routed or allocated from what it holds.

The order, for every request kind: counts (ids, rows, raw inputs), then each string's length
in characters and UTF-8 bytes (a loop over lengths, before any numpy conversion: numpy's
fixed-width str arrays pad every id to the longest, so one 10 MB id among 100,000 asked for
3.6 TiB), then the size of what the reply would hold (k x queries), then the values (finite,
norms). Messages name the field and the allowed range and quote at most a short prefix of the
client's input (`excerpt`). Nothing is stored or routed before every check has passed, so a
bad batch is refused whole.

`check_request(request)` holds every bound that needs no collection; `@rpc` runs it before
any method body. What needs the collection (dimension, values, a reply's size given its
dimension or stored ids) runs where the collection is known: `check_vectors`,
`check_get_reply`, `check_reply_size`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
from google.protobuf.message import Message

from simsearch.contract.errors import ResourceExhausted, excerpt, invalid
from simsearch.contract.filters import canonical as canonical_filter, check_field_name
from simsearch.contract.payload_index import MAX_PAYLOAD_INDEXES, check_index, check_indexes
from simsearch.contract.payloads import canonical as canonical_payload, check_keys, check_payloads
from simsearch.protos.filters import from_proto as filter_from_proto
from simsearch.contract.limits import (ASSUMED_ID_BYTES, MAX_BATCH, MAX_DIM, MAX_FEEDBACK_SHOWN, MAX_ID_BYTES,
                                       MAX_FEEDBACK_PAGE, MAX_ID_CHARS, MAX_K,
                                       MAX_LEAVES, MAX_MESSAGE_BYTES, MAX_NAME_CHARS, MAX_OVERSAMPLE, MAX_QUERIES,
                                       MAX_RAW_ITEMS, MAX_REF_CHARS, MAX_RESULTS, MAX_SCROLL_LIMIT, MAX_TEXT_CHARS,
                                       MAX_TIMEOUT_MS, MODEL_REF_PATTERN, NAME_PATTERN)
from simsearch.protos.simsearch.v1 import collections_pb2, common_pb2, encoders_pb2, points_pb2
from simsearch.shard.config import TARGET_RECALL_RANGE, CollectionSpec, check_rows

# ---- strings ----


_NAME = re.compile(NAME_PATTERN.strip("^$"))
_MODEL_REF = re.compile(MODEL_REF_PATTERN)


def check_name(name: str, field: str) -> str:
    """A collection name (or a name to look one up by): what CollectionSpec accepts. A name that
    could never have been created is refused here, so it is never echoed whole."""
    if len(name) > MAX_NAME_CHARS or not _NAME.fullmatch(name):
        raise invalid(field, f"must be 1-{MAX_NAME_CHARS} characters of [A-Za-z0-9_.-] starting with a letter or "
                             f"digit, got {excerpt(name)}")
    return name


def check_ref(ref: str, field: str, *, required: bool = False) -> str:
    """An encoder reference ("name", "name@latest", "name@3"; "" for none unless `required`),
    checked for form here so the registry never sees, or quotes, anything else."""
    if (ref or required) and (len(ref) > MAX_REF_CHARS or not _MODEL_REF.fullmatch(ref)):
        raise invalid(field, f"must be 'name' or 'name@version' (a name of 1-64 characters of [A-Za-z0-9_.-] "
                             f"starting with a letter or digit; a version a positive integer or 'latest'), "
                             f"got {excerpt(ref)}")
    return ref


def check_ids(ids: Sequence[str], field: str = "ids") -> Sequence[str]:
    """Count, then each id's length (characters, then UTF-8 bytes), then NULs, then uniqueness.

    No numpy here: every step is a loop over lengths or a set, so its memory is bounded by the
    request's own size (np.asarray(ids, dtype=str) would pad every id to the longest).
    """
    n = len(ids)
    if n == 0:
        raise invalid(field, f"must hold 1 to {MAX_BATCH} ids, got 0")
    if n > MAX_BATCH:
        raise invalid(field, f"must hold 1 to {MAX_BATCH} ids, got {n}; split the batch")
    lengths = list(map(len, ids))
    longest = max(lengths)
    if longest > MAX_ID_CHARS or min(lengths) == 0:
        bad = next(i for i, m in enumerate(lengths) if not 1 <= m <= MAX_ID_CHARS)
        raise invalid(f"{field}[{bad}]", f"must be 1 to {MAX_ID_CHARS} characters, got {lengths[bad]}")
    if longest * 4 > MAX_ID_BYTES:  # only then can an id's UTF-8 (<= 4 bytes a character) pass the bound
        for i, (m, x) in enumerate(zip(lengths, ids)):
            if m * 4 > MAX_ID_BYTES and (size := len(x.encode("utf-8", "surrogatepass"))) > MAX_ID_BYTES:
                raise invalid(f"{field}[{i}]", f"must be at most {MAX_ID_BYTES} bytes in UTF-8, got {size}")
    if "\x00" in "".join(ids):  # numpy (and so snapshots) would strip trailing NULs, merging ids
        bad = next(i for i, x in enumerate(ids) if "\x00" in x)
        raise invalid(f"{field}[{bad}]", "must not contain NUL characters")
    if len(set(ids)) != n:
        seen: set[str] = set()
        dup = next(x for x in ids if x in seen or seen.add(x))
        raise invalid(field, f"must be unique within one request; {excerpt(dup)} appears "
                             f"{sum(1 for x in ids if x == dup)} times")
    return ids


# ---- matrices and raw inputs ----


def check_matrix(m: common_pb2.Matrix, field: str, max_rows: int, rows: int | None = None) -> int:
    """A float32 Matrix's header against its data, before a byte of it is read. Returns its rows."""
    if m.rows < 0 or m.cols < 0:
        raise invalid(field, f"rows and cols must be >= 0, got {m.rows} x {m.cols}")
    if m.rows == 0:
        raise invalid(field, f"must hold 1 to {max_rows} rows, got 0")
    if m.rows > max_rows:
        raise invalid(field, f"must hold 1 to {max_rows} rows, got {m.rows}; split the batch")
    if not 1 <= m.cols <= MAX_DIM:
        raise invalid(field, f"must have dimension 1 to {MAX_DIM}, got {m.cols}")
    expected = m.rows * m.cols * 4
    if len(m.data) != expected:
        raise invalid(field, f"data must hold rows*cols*4 = {expected} bytes (float32), got {len(m.data)}")
    if rows is not None and m.rows != rows:
        raise invalid(field, f"must have one row per id ({rows}), got {m.rows}")
    return m.rows


def has_raw_inputs(inputs: common_pb2.RawInputs) -> bool:
    """Whether a request sends raw inputs (texts or images) instead of vectors."""
    return bool(len(inputs.texts) or inputs.images.count or inputs.images.pixels)


def check_raw_inputs(inputs: common_pb2.RawInputs, field: str = "inputs") -> int:
    """The bounds that need no encoder: how many, and how long each text. The encoder's own
    checks (kind, image shape, empty texts) follow once its manifest is read. Returns the count
    the request declares (texts, or images.count)."""
    texts, images = inputs.texts, inputs.images
    if len(texts):
        if len(texts) > MAX_RAW_ITEMS:
            raise invalid(f"{field}.texts", f"must hold 1..{MAX_RAW_ITEMS} texts, got {len(texts)}")
        lengths = list(map(len, texts))
        if max(lengths) > MAX_TEXT_CHARS:
            bad = next(i for i, m in enumerate(lengths) if m > MAX_TEXT_CHARS)
            raise invalid(f"{field}.texts[{bad}]", f"must be at most {MAX_TEXT_CHARS} characters, got {lengths[bad]}")
        return len(texts)
    if not 0 <= images.count <= MAX_RAW_ITEMS:
        raise invalid(f"{field}.images.count", f"must be in [1, {MAX_RAW_ITEMS}], got {images.count}")
    return images.count


# ---- vectors (need the collection) ----


def check_vectors(vectors: np.ndarray, spec: CollectionSpec, field: str, rows: int | None = None,
                  max_rows: int = MAX_BATCH) -> np.ndarray:
    check_shape(vectors, spec, field, rows, max_rows)
    check_rows(vectors, spec.metric, field)
    return vectors


def check_shape(vectors: np.ndarray, spec: CollectionSpec, field: str, rows: int | None = None,
                max_rows: int = MAX_BATCH) -> None:
    """Row count and dimension only: what must hold before a query's bytes are looked up in the
    cache (the values are checked before anything is computed from them, or admitted)."""
    n, d = vectors.shape
    if n == 0:
        raise invalid(field, f"must hold 1 to {max_rows} rows, got 0")
    if n > max_rows:
        raise invalid(field, f"must hold 1 to {max_rows} rows, got {n}; split the batch")
    if d != spec.dim:
        raise invalid(field, f"must have dimension {spec.dim} (collection {excerpt(spec.name)}), got {d}")
    if rows is not None and n != rows:
        raise invalid(field, f"must have one row per id ({rows}), got {n}")


# ---- search ----


class SearchOptions(NamedTuple):  # a tuple: built per search, ~3x cheaper than a frozen dataclass
    k: int
    leaves_to_search: int
    oversample: int
    exact: bool
    timeout_ms: int
    allow_partial: bool
    no_cache: bool
    with_payload: bool = False
    filter: Any = None  # a contract.filters.Filter, or None
    filter_key: str = ""  # its canonical form: equivalent filters share cache entries, different ones never do
    payload_fields: tuple[str, ...] = ()  # with_payload: only these fields (() = all)
    target_recall: float = 0.0  # 0: the collection's calibrated defaults

    def cache_tag(self) -> str:
        """The parameters that change results, for the cache key (field names JSON-quoted: any text is unambiguous)."""
        fields = json.dumps(self.payload_fields, ensure_ascii=False) if self.payload_fields else ""
        return (f"l{self.leaves_to_search}o{self.oversample}e{int(self.exact)}p{int(self.with_payload)}{fields}"
                f"t{self.target_recall!r}f{self.filter_key}")


def check_search(k: int, leaves_to_search: int, oversample: int, exact: bool, timeout_ms: int,
                 allow_partial: bool, no_cache: bool, with_payload: bool = False) -> SearchOptions:
    if not 1 <= k <= MAX_K:
        raise invalid("k", f"must be in [1, {MAX_K}], got {k}")
    if not 0 <= leaves_to_search <= MAX_LEAVES:
        raise invalid("params.leaves_to_search", f"must be 0 (collection default) or in [1, {MAX_LEAVES}], got {leaves_to_search}")
    if not 0 <= oversample <= MAX_OVERSAMPLE:
        raise invalid("params.oversample", f"must be 0 (collection default) or in [1, {MAX_OVERSAMPLE}], got {oversample}")
    if not 0 <= timeout_ms <= MAX_TIMEOUT_MS:
        raise invalid("params.timeout_ms", f"must be 0 (call deadline) or in [1, {MAX_TIMEOUT_MS}], got {timeout_ms}")
    return SearchOptions(k, leaves_to_search, oversample, exact, timeout_ms, allow_partial, no_cache, with_payload)


def search_options(request: points_pb2.SearchRequest) -> SearchOptions:
    """check_search on a SearchRequest's own fields."""
    p = request.params
    opts = check_search(request.k, p.leaves_to_search, p.oversample, p.exact, p.timeout_ms, p.allow_partial,
                        p.no_cache, p.with_payload)
    if p.target_recall:
        lo, hi = TARGET_RECALL_RANGE
        if not lo <= p.target_recall <= hi:  # NaN fails this too
            raise invalid("params.target_recall", f"must be 0 (collection default) or in [{lo}, {hi}], got {p.target_recall}")
        opts = opts._replace(target_recall=p.target_recall)
    if request.HasField("filter"):
        f = filter_from_proto(request.filter, "filter")
        opts = opts._replace(filter=f, filter_key=canonical_filter(f))
    if len(p.payload_fields):
        if not p.with_payload:
            raise invalid("params.payload_fields", "needs params.with_payload (the fields of the payloads returned)")
        opts = opts._replace(payload_fields=tuple(check_keys(p.payload_fields, "params.payload_fields")))
    return opts


def _varint_bytes(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def reply_bytes(k: int, n_queries: int, id_bytes: int) -> int:
    """An upper bound on a SearchResponse of k hits for each of n queries, ids of `id_bytes`:
    per hit a length-prefixed id and a 4-byte score, per query a varint count, plus slack for
    the timings and the gRPC frame."""
    per_hit = 1 + _varint_bytes(id_bytes) + id_bytes + 4
    return n_queries * (_varint_bytes(k) + k * per_hit) + 4096


def check_reply_size(k: int, n_queries: int, id_bytes: int | None = None, *, field: str = "queries") -> None:
    """k x queries within MAX_RESULTS (else INVALID_ARGUMENT), and the reply that many hits would
    make within MAX_MESSAGE_BYTES (else RESOURCE_EXHAUSTED): refused before anything is computed.

    `id_bytes`: the longest id the collection holds, in UTF-8 bytes, when the caller knows it;
    None assumes ASSUMED_ID_BYTES (with that, MAX_RESULTS is the binding bound).
    """
    if k * n_queries > MAX_RESULTS:
        raise invalid(field, f"k x queries must be at most {MAX_RESULTS:,} results per request, got "
                             f"{k} x {n_queries:,} = {k * n_queries:,}; lower k or send fewer queries per request")
    size = reply_bytes(k, n_queries, ASSUMED_ID_BYTES if id_bytes is None else id_bytes)
    if size > MAX_MESSAGE_BYTES:
        per = ASSUMED_ID_BYTES if id_bytes is None else id_bytes
        raise ResourceExhausted(
            f"{field}: the reply to k={k} x {n_queries:,} queries could reach {size / 2**20:,.0f} MiB "
            f"(ids of up to {per} bytes), over the {MAX_MESSAGE_BYTES / 2**20:.0f} MiB message limit; "
            f"lower k or send fewer queries per request", field=field)


def check_get_reply(ids: Sequence[str], dim: int, *, field: str = "ids") -> None:
    """A Get's reply within MAX_MESSAGE_BYTES, refused (RESOURCE_EXHAUSTED) before a vector is
    gathered: every requested id comes back once (found or missing), each found one with its
    dim-wide float32 vector. Call after check_ids (ids are then at most 256 characters)."""
    n = len(ids)
    size = n * (dim * 4 + 3) + sum(map(len, ids)) + 4096
    if size > MAX_MESSAGE_BYTES:
        fits = max(1, (MAX_MESSAGE_BYTES - 4096) * n // size)
        raise ResourceExhausted(
            f"{field}: the reply to a Get of {n:,} ids of dimension {dim} could reach {size / 2**20:,.0f} MiB, "
            f"over the {MAX_MESSAGE_BYTES / 2**20:.0f} MiB message limit; ask for at most about {fits:,} ids "
            f"per request", field=field)


def check_search_payloads(hits: int, payload_bytes: int, id_bytes: int) -> None:
    """A search reply with its hits' payloads within MAX_MESSAGE_BYTES (known once the shards answered)."""
    size = hits * (id_bytes + 12) + payload_bytes + 3 * hits + 4096
    if payload_bytes and size > MAX_MESSAGE_BYTES:
        raise ResourceExhausted(
            f"params.with_payload: the {hits:,} hits with their payloads would be {size / 2**20:,.0f} MiB, over the "
            f"{MAX_MESSAGE_BYTES / 2**20:.0f} MiB message limit; ask for fewer queries or a smaller k",
            field="params.with_payload")


def check_get_payloads(ids: Sequence[str], dim: int, payloads: Sequence[str], *, field: str = "ids") -> None:
    """A Get's reply with its payloads (known only once the shards answer: up to 64 KiB each) within
    MAX_MESSAGE_BYTES; RESOURCE_EXHAUSTED naming how many ids would fit."""
    extra = sum(map(len, payloads))
    if not extra:
        return
    n = len(ids)
    size = n * (dim * 4 + 3) + sum(map(len, ids)) + 4096 + extra + 3 * len(payloads)
    if size > MAX_MESSAGE_BYTES:
        fits = max(1, (MAX_MESSAGE_BYTES - 4096) * n // size)
        raise ResourceExhausted(
            f"{field}: the reply to a Get of {n:,} ids with their payloads would be {size / 2**20:,.0f} MiB, over "
            f"the {MAX_MESSAGE_BYTES / 2**20:.0f} MiB message limit; ask for at most about {fits:,} ids per request",
            field=field)


# ---- one check per request kind, from the message itself (no collection needed) ----


def _check_collection_request(req: Message) -> None:
    check_name(req.name, "name")


def _check_alias_request(req: collections_pb2.CreateAliasRequest | collections_pb2.SwitchAliasRequest) -> None:
    check_name(req.alias, "alias")
    check_name(req.collection, "collection")


def _check_delete_alias(req: collections_pb2.DeleteAliasRequest) -> None:
    check_name(req.alias, "alias")


def _check_create(req: collections_pb2.CreateCollectionRequest) -> dict[str, str]:
    """Returns the declared payload indexes, field -> type."""
    check_name(req.name, "name")
    check_ref(req.encoder, "encoder")
    if len(req.payload_indexes) > MAX_PAYLOAD_INDEXES:
        raise invalid("payload_indexes", f"must hold at most {MAX_PAYLOAD_INDEXES} indexes, got "
                                         f"{len(req.payload_indexes)}")
    return check_indexes([(ix.field, ix.type) for ix in req.payload_indexes])


def _check_payload_index(req: collections_pb2.CreatePayloadIndexRequest | collections_pb2.DropPayloadIndexRequest
                         ) -> None:
    check_name(req.collection, "collection")
    check_field_name(req.field, "field")
    if isinstance(req, collections_pb2.CreatePayloadIndexRequest):
        check_index(req.field, req.type)


class CheckedUpsert(NamedTuple):
    ids: list[str]
    payloads: list[str] | None  # canonical JSON per id (contract.payloads), None when the request sends none


def _check_upsert(req: points_pb2.UpsertRequest) -> CheckedUpsert:
    check_name(req.collection, "collection")
    ids = req.ids
    if not 1 <= len(ids) <= MAX_BATCH:
        check_ids(ids)  # raises the count's message
    if has_raw_inputs(req.inputs):
        n = check_raw_inputs(req.inputs)
        if n and n != len(ids):  # 0: no count declared, which the encoder's own checks refuse
            raise invalid("inputs", f"must hold one input per id ({len(ids)}), got {n}")
    else:
        check_matrix(req.vectors, "vectors", MAX_BATCH, rows=len(ids))
    checked = list(ids)  # the one conversion of the repeated field: the servicer passes this list on
    check_ids(checked)
    check_ref(req.encoder, "encoder")
    return CheckedUpsert(checked, check_payloads(req.payloads, len(checked)))


class CheckedDelete(NamedTuple):
    ids: list[str] | None  # these ids, or
    filter: Any  # every point that passes this contract.filters.Filter


def _check_delete(req: points_pb2.DeleteRequest) -> CheckedDelete:
    """Ids, or a filter with no ids: one of the two."""
    if req.HasField("filter"):
        check_name(req.collection, "collection")
        if len(req.ids):
            raise invalid("ids", "must be empty when a filter says what to delete; send one or the other")
        return CheckedDelete(None, filter_from_proto(req.filter, "filter"))
    return CheckedDelete(_check_ids_request(req), None)


class CheckedSetPayload(NamedTuple):
    ids: list[str]
    patch: str  # canonical JSON object ("" = nothing to set)
    delete_keys: list[str]


def _check_set_payload(req: points_pb2.SetPayloadRequest) -> CheckedSetPayload:
    check_name(req.collection, "collection")
    ids = check_ids(list(req.ids))
    patch = canonical_payload(req.payload, "payload")
    keys = check_keys(req.delete_keys)
    if not patch and not keys and not req.replace:
        raise invalid("payload", "must set some fields (or pass delete_keys, or replace=true to clear the payloads)")
    return CheckedSetPayload(ids, patch, keys)


def _check_scroll(req: points_pb2.ScrollRequest) -> Any:
    check_name(req.collection, "collection")
    if not 1 <= req.limit <= MAX_SCROLL_LIMIT:
        raise invalid("limit", f"must be in [1, {MAX_SCROLL_LIMIT}], got {req.limit}")
    if len(req.cursor) > MAX_ID_CHARS:
        raise invalid("cursor", f"must be a page's next_cursor (an id, at most {MAX_ID_CHARS} characters), "
                                f"got {len(req.cursor)} characters")
    return filter_from_proto(req.filter, "filter") if req.HasField("filter") else None


def _check_count(req: points_pb2.CountRequest) -> Any:
    check_name(req.collection, "collection")
    return filter_from_proto(req.filter, "filter") if req.HasField("filter") else None


def _check_ids_request(req: points_pb2.GetRequest | points_pb2.DeleteRequest) -> list[str]:
    check_name(req.collection, "collection")
    # one pass to Python strs (each pass over a repeated field re-creates them); the servicer passes it on
    return check_ids(list(req.ids))


def _check_feedback(req: points_pb2.FeedbackRequest) -> list[str]:
    """One query (a vector row or a raw input), the ids shown (1..MAX_FEEDBACK_SHOWN), the chosen one among
    them or none. Returns the shown ids."""
    check_name(req.collection, "collection")
    if has_raw_inputs(req.inputs) == (req.query.rows > 0):
        raise invalid("query", "set exactly one of query (one vector) or inputs (one raw input)")
    if has_raw_inputs(req.inputs):
        if check_raw_inputs(req.inputs) != 1:
            raise invalid("inputs", "must hold exactly one text or image: the query")
    else:
        check_matrix(req.query, "query", 1)
    if len(req.shown) > MAX_FEEDBACK_SHOWN:
        raise invalid("shown", f"must hold 1 to {MAX_FEEDBACK_SHOWN} ids, got {len(req.shown)}")
    shown = list(check_ids(list(req.shown), "shown"))
    if req.chosen and req.chosen not in shown:
        raise invalid("chosen", f"must be one of the shown ids or empty, got {excerpt(req.chosen)}")
    return shown


def _check_list_feedback(req: points_pb2.ListFeedbackRequest) -> None:
    check_name(req.collection, "collection")
    if not 1 <= req.limit <= MAX_FEEDBACK_PAGE:
        raise invalid("limit", f"must be in [1, {MAX_FEEDBACK_PAGE}], got {req.limit}")
    if req.after < 0:
        raise invalid("after", f"must be 0 (from the first event) or a page's next_after (>= 0), got {req.after}")


def _check_search(req: points_pb2.SearchRequest) -> SearchOptions:
    check_name(req.collection, "collection")
    opts = search_options(req)
    if has_raw_inputs(req.inputs):
        n = check_raw_inputs(req.inputs)  # at most MAX_RAW_ITEMS < MAX_QUERIES
    else:
        n = check_matrix(req.queries, "queries", MAX_QUERIES)
    check_reply_size(opts.k, n)
    check_ref(req.encoder, "encoder")
    return opts


def _check_embed(req: encoders_pb2.EmbedRequest) -> None:
    check_ref(req.model, "model", required=True)
    check_raw_inputs(req.inputs)


_CHECKS: dict[type, Callable[[Message], Any]] = {
    collections_pb2.CreateCollectionRequest: _check_create,
    collections_pb2.DropCollectionRequest: _check_collection_request,
    collections_pb2.DescribeCollectionRequest: _check_collection_request,
    collections_pb2.BuildIndexRequest: _check_collection_request,
    collections_pb2.CreateAliasRequest: _check_alias_request,
    collections_pb2.SwitchAliasRequest: _check_alias_request,
    collections_pb2.DeleteAliasRequest: _check_delete_alias,
    collections_pb2.CreatePayloadIndexRequest: _check_payload_index,
    collections_pb2.DropPayloadIndexRequest: _check_payload_index,
    points_pb2.UpsertRequest: _check_upsert,
    points_pb2.DeleteRequest: _check_delete,
    points_pb2.CountRequest: _check_count,
    points_pb2.ScrollRequest: _check_scroll,
    points_pb2.SetPayloadRequest: _check_set_payload,
    points_pb2.GetRequest: _check_ids_request,
    points_pb2.SearchRequest: _check_search,
    points_pb2.FeedbackRequest: _check_feedback,
    points_pb2.ListFeedbackRequest: _check_list_feedback,
    encoders_pb2.EmbedRequest: _check_embed,
}


def check_request(request: Message) -> Any:
    """Every bound on `request` that needs no collection, cheapest first (see the module
    docstring); raises InvalidArgument / ResourceExhausted naming the field. Requests with
    nothing to bound (ListCollections, ListModels) pass. Returns what the check derived (a
    search's SearchOptions, a write's or get's ids as a list), so nothing is parsed twice."""
    check = _CHECKS.get(type(request))
    return check(request) if check is not None else None
