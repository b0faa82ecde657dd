"""Proto <-> numpy/domain conversion, in one place (servicers and the SDK never build messages by hand)."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np

from simsearch.contract.errors import FailedPrecondition, invalid
from simsearch.protos.simsearch.v1 import collections_pb2, common_pb2, points_pb2


def matrix_to_proto(a: np.ndarray) -> common_pb2.Matrix:
    a = np.ascontiguousarray(a, dtype="<f4")
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {a.shape}")
    return common_pb2.Matrix(rows=a.shape[0], cols=a.shape[1], data=a.tobytes())


def matrix_from_proto(m: common_pb2.Matrix, field: str) -> np.ndarray:
    """Decode without copying; raise InvalidArgument naming `field` when the shape lies."""
    if m.rows < 0 or m.cols < 0:
        raise invalid(field, f"rows and cols must be >= 0, got {m.rows} x {m.cols}")
    expected = m.rows * m.cols * 4
    if len(m.data) != expected:
        raise invalid(field, f"data must hold rows*cols*4 = {expected} bytes (float32), got {len(m.data)}")
    return np.frombuffer(m.data, dtype="<f4").reshape(m.rows, m.cols)


def unflatten_results(counts, ids, scores, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat (counts, ids, scores) from a SearchResponse -> (n, k) id and score arrays.

    Rows with fewer than k results are padded with "" ids and NaN scores. A boolean mask
    assignment fills row-major, which is exactly the flat order, so no per-query loop.
    """
    n = len(counts)
    if len(ids) == n * k:  # every row full (the usual case): a reshape, no mask. Lists first: numpy
        return (np.array(list(ids), dtype=object).reshape(n, k),  # reads a list ~2x faster than a
                np.array(list(scores), dtype=np.float32).reshape(n, k))  # protobuf repeated field
    counts = np.asarray(counts, dtype=np.int64)
    mask = np.arange(k)[None, :] < counts[:, None]  # (n, k)
    out_ids = np.full(mask.shape, "", dtype=object)
    out_scores = np.full(mask.shape, np.nan, dtype=np.float32)
    out_ids[mask] = np.asarray(list(ids), dtype=object)
    out_scores[mask] = np.asarray(scores, dtype=np.float32)
    return out_ids, out_scores


def search_response(reply) -> points_pb2.SearchResponse:
    """A router SearchReply (flat hits, timings, flags) -> the wire's SearchResponse."""
    h = reply.hits
    resp = points_pb2.SearchResponse(counts=h.counts.tolist(), ids=h.ids, generation=reply.generation,
                                     cached=reply.cached, partial=reply.partial, missing_shards=reply.missing_shards)
    resp.scores.extend(h.scores.tolist())
    if h.payloads is not None:
        resp.payloads.extend(h.payloads)
    resp.shard_paths.extend(reply.shard_paths)
    resp.unindexed_fields.extend(reply.unindexed_fields)
    for stage, seconds in reply.timings_s.items():
        resp.timings.add(stage=stage, ms=seconds * 1000)
    return resp


IN_USE = ("num_leaves", "leaves_to_search", "dims_per_block", "rebuild_threshold", "oversample")


def index_params_to_proto(p, shard_infos=()):
    """IndexParams -> proto. With the shards' ShardInfo, a 0 (auto) shows the value the shards
    resolved it to when every available shard uses the same one; otherwise it stays 0."""
    values = {f: getattr(p, f) for f in (*IN_USE, "min_index_size")}
    values["target_recall"] = p.recall_target  # the one in force (0 stands for the default)
    live = [s for s in shard_infos if s.available]
    for f in IN_USE:
        used = {getattr(s, f) for s in live}
        if not values[f] and len(used) == 1:
            values[f] = used.pop()
    return collections_pb2.IndexParams(**values)


def spec_fields(req) -> dict:
    """CreateCollectionRequest -> the keyword arguments of a CollectionSpec, with its index
    parameters as a dict (the router builds and so validates both); unset fields are left out
    or take the documented defaults."""
    ix = req.index
    index = {f: getattr(ix, f) for f in ("num_leaves", "leaves_to_search", "dims_per_block", "rebuild_threshold",
                                         "min_index_size", "oversample", "target_recall") if getattr(ix, f)}
    return dict(name=req.name, dim=req.dim, metric=req.metric or ("cosine" if req.encoder else "l2"),
                shards=req.shards or 1, index=index, encoder=req.encoder, replicas=req.replicas or 1,
                write_quorum=req.write_quorum, recall_slo=req.recall_slo)


def collection_status(status) -> collections_pb2.CollectionInfo:
    """A router CollectionStatus -> CollectionInfo."""
    info = collection_info(status.spec, status.generation, status.created_at, status.shard_stats,
                           status.payload_indexes)
    info.embedding_generation = status.spec.embedding_generation
    info.reindex.extend(reindex_status(job) for job in status.reindex)
    if status.drift:
        info.drift.CopyFrom(drift_info(status.drift))
    if status.live_recall:
        lr = status.live_recall
        info.live_recall.CopyFrom(collections_pb2.LiveRecall(
            recall=lr["recall"], samples=lr["samples"], slo=lr["slo"], breached=lr["breached"],
            sampled_requests=lr["sampled_requests"], skipped=lr["skipped"], fraction=lr["fraction"],
            tuned_target=lr.get("tuned_target", 0.0), updated_at=lr["updated_at"], rerun_seconds=lr["rerun_seconds"],
            by_filter={s: collections_pb2.FilterRecall(**v) for s, v in lr.get("by_filter", {}).items()}))
    return info


def drift_info(view: dict) -> collections_pb2.DriftInfo:
    """router/drift_monitor.py DriftMonitor.view -> DriftInfo."""
    out = collections_pb2.DriftInfo(checks=view.get("checks", 0), checked_at=view.get("checked_at", 0.0))
    for kind in ("queries", "writes"):
        s = view.get(kind)
        if s:
            getattr(out, kind).CopyFrom(collections_pb2.DriftStream(
                score=s["score"], threshold=s["threshold"], alarm=s["alarm"], exceeded=s["exceeded"],
                reference=s["reference"], recent=s["recent"]))
    h = view.get("health") or {}
    if h:
        out.health.CopyFrom(collections_pb2.EmbeddingHealthInfo(measured=True, **h))
    return out


def reindex_status(job: dict) -> collections_pb2.ReindexStatus:
    """A reindex job as router/reindex.py `job_view` gives it -> ReindexStatus (its figures as JSON)."""
    decision = job.get("decision") or {}
    return collections_pb2.ReindexStatus(
        collection=job["collection"], generation=job["generation"], encoder=job["encoder"],
        from_encoder=job["from_encoder"], state=job["state"], copied=job["copied"], total=decision.get("total", 0),
        started_at=job["started_at"], updated_at=job["updated_at"], error=job["error"],
        decision=json.dumps(decision, sort_keys=True, default=float), passed=bool(decision.get("passed", False)),
        reason=str(decision.get("reason", "")))


def payload_indexes_info(declared: dict[str, str], shard_stats: list[dict | None]) -> list:
    """Each declared index summed over the shards: "building" while any shard (answering or not) has not
    read its column."""
    out = []
    for name, kind in sorted(declared.items()):
        per = [((st or {}).get("payload_indexes") or {}).get(name) for st in shard_stats]
        ready = all(p is not None and p["type"] == kind and p["state"] == "ready" for p in per)
        out.append(collections_pb2.PayloadIndex(field=name, type=kind, state="ready" if ready else "building",
                                                points=sum(p["points"] for p in per if p),
                                                invalid_points=sum(p["invalid"] for p in per if p)))
    return out


_NOT_SHARD_INFO = ("payload_indexes", "pid", "host", "node", "position", "replicas", "calibration_s")  # summed per index / where it runs: not for tenants


def collection_info(spec, generation: int, created_at: float, shard_stats: list[dict | None],
                    payload_indexes: dict[str, str] | None = None):
    """CollectionInfo from the spec and each shard's stats() (None for a shard that did not answer)."""
    infos = []
    for i, st in enumerate(shard_stats):
        if st is None or "unavailable" in st:
            infos.append(collections_pb2.ShardInfo(shard=i, available=False, error=(st or {}).get("unavailable", "")))
        else:
            infos.append(collections_pb2.ShardInfo(shard=i, available=True,
                                                   **{k: v for k, v in st.items() if k not in _NOT_SHARD_INFO},
                                                   replicas=[collections_pb2.ReplicaInfo(**r) for r in st.get("replicas", ())]))
    states = {s.index_state for s in infos if s.available}
    if infos and not states:  # no shard answered (a collection skipped at start-up, or every actor gone)
        state = "unavailable"
    elif "building" in states:
        state = "building"
    elif states == {"ready"}:
        state = "ready"
    elif states & {"ready", "partial"}:  # an index on some shards, or fresh rows still scanned exactly
        state = "partial"
    else:
        state = "none"
    return collections_pb2.CollectionInfo(
        name=spec.name, dim=spec.dim, metric=spec.metric, shards=spec.shards,
        index=index_params_to_proto(spec.index, infos), points=sum(s.points for s in infos),
        generation=generation, index_state=state, shard_info=infos, created_at=created_at, encoder=spec.encoder,
        payload_indexes=payload_indexes_info(payload_indexes or {}, shard_stats),
        replicas=spec.replicas, write_quorum=spec.quorum, target_recall=spec.index.recall_target,
    )


# ---- raw inputs kept by a collection bound to an encoder (router/inputs_store.py) ----

_SHAPE = struct.Struct("<3H")
INPUT_LEVEL = 1  # zlib: fast; images of glyphs or clothes shrink 2-5x at this level already


def encode_inputs(inputs: common_pb2.RawInputs) -> list[bytes]:
    """One compressed blob per input of a request (texts, or images of one shape)."""
    if len(inputs.texts):
        return [zlib.compress(b"t" + t.encode("utf-8"), INPUT_LEVEL) for t in inputs.texts]
    im = inputs.images
    head = b"i" + _SHAPE.pack(im.channels, im.height, im.width)
    size = im.channels * im.height * im.width
    pixels = memoryview(im.pixels)
    return [zlib.compress(head + pixels[i * size:(i + 1) * size], INPUT_LEVEL) for i in range(im.count)]


def decode_inputs(blobs: list[bytes | None]) -> common_pb2.RawInputs:
    """The inputs of points in order, as a request would carry them. Points without a stored input are ""
    (texts) or zero pixels (images); the caller lists them."""
    raw = [zlib.decompress(b) if b is not None else None for b in blobs]
    kinds = {r[:1] for r in raw if r is not None}
    if kinds == {b"i"}:
        shapes = {_SHAPE.unpack(r[1:7]) for r in raw if r is not None}
        if len(shapes) != 1:
            raise FailedPrecondition(f"stored images have different shapes {sorted(shapes)}")
        (c, h, w), = shapes
        pixels = np.zeros((len(raw), c * h * w), np.uint8)
        for i, r in enumerate(raw):
            if r is not None:
                pixels[i] = np.frombuffer(r, np.uint8, offset=7)
        return common_pb2.RawInputs(images=common_pb2.ImageBatch(count=len(raw), channels=c, height=h, width=w,
                                                                 pixels=pixels.tobytes()))
    return common_pb2.RawInputs(texts=[r[1:].decode("utf-8") if r is not None else "" for r in raw])


def feedback_page(events, next_after: int) -> points_pb2.ListFeedbackResponse:
    """A page of feedback events (router/feedback_store.py's FeedbackEvent): the query as recorded, a vector
    (float32 bytes) or a kept raw input."""
    reply = points_pb2.ListFeedbackResponse(next_after=next_after)
    for e in events:
        m = reply.events.add(seq=e.seq, at=e.at, shown=e.shown, chosen=e.chosen)
        if e.kind == "vector":
            m.query.CopyFrom(matrix_to_proto(np.frombuffer(e.query, np.float32)[None]))
        else:
            m.inputs.CopyFrom(decode_inputs([e.query]))
    return reply
