"""What the pages read, through the Engine's own read methods (list, describe, scroll, get, search,
get_inputs, embed): never a write, and only the collections the session's key may use."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import numpy as np

from simsearch.contract.errors import NotFound, excerpt
from simsearch.protos.convert import decode_inputs
from simsearch.router.auth import Principal
from simsearch.router.deadline import Deadline
from simsearch.router.engine import Engine
from simsearch.router.replies import Hits
from simsearch.router.validate import check_search

MAP_SCAN = 5_000  # points read (in id order) to draw the map's sample from
MAP_SAMPLE = 1_500  # points on the map
DISTANCE_SCAN = 20_000  # points the distance histograms' neighbours are searched among, exactly
PAGE = 2_000


def visible(engine: Engine, principal: Principal) -> list[str]:
    """The tenant's collections this key may use (a key limited to some sees only those)."""
    names = engine.list_collections(principal.tenant)
    if principal.collections is not None:
        names = [n for n in names if n in principal.collections]
    return names


def check_visible(engine: Engine, principal: Principal, name: str) -> None:
    """NotFound, the same as for a missing collection, for one this key may not use."""
    if name not in visible(engine, principal):
        raise NotFound(f"collection {excerpt(name)} does not exist", field="collection")


async def overview(engine: Engine, principal: Principal) -> list[dict]:
    """Every visible collection's state: spec, point counts and index state summed or listed over shards."""
    names = visible(engine, principal)
    statuses = await asyncio.gather(*(engine.describe(principal.tenant, n) for n in names), return_exceptions=True)
    return [state(n, s) for n, s in zip(names, statuses)]


def state(name: str, status) -> dict:
    if isinstance(status, BaseException):
        return {"name": name, "error": str(status)}
    shards = status.shard_stats
    spec = status.spec
    states = sorted({s.get("index_state", "unavailable") for s in shards})
    return {"name": name, "dim": spec.dim, "metric": spec.metric, "encoder": spec.encoder or "",
            "shards": spec.shards, "replicas": spec.replicas, "generation": status.generation,
            "embedding_generation": spec.embedding_generation,
            "points": sum(s.get("points", 0) for s in shards), "index_state": ", ".join(states),
            "shard_stats": shards, "payload_indexes": status.payload_indexes, "reindex": status.reindex,
            "index": spec.index, "created": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(status.created_at))}


@dataclass(frozen=True)
class Sample:
    ids: list[str]
    vectors: np.ndarray  # (n, dim) float32
    payloads: list[str]
    scanned: int  # points read to draw it


async def scan(engine: Engine, tenant: str, name: str, limit: int) -> Sample:
    """The first `limit` points in id order, with vectors and payloads (Scroll pages)."""
    ids: list[str] = []
    vectors: list[np.ndarray] = []
    payloads: list[str] = []
    cursor = ""
    while len(ids) < limit:
        page_ids, vecs, docs, cursor = await engine.scroll(tenant, name, min(PAGE, limit - len(ids)), cursor, None,
                                                           True, True)
        ids += page_ids
        vectors.append(vecs)
        payloads += docs
        if not cursor:
            break
    matrix = np.concatenate(vectors) if vectors else np.empty((0, engine.spec(tenant, name).dim), np.float32)
    return Sample(ids, matrix, payloads, len(ids))


def subsample(s: Sample, size: int, seed: int = 0) -> Sample:
    """`size` of the scanned points, drawn at random (in scan order)."""
    if len(s.ids) <= size:
        return s
    pick = np.sort(np.random.default_rng(seed).choice(len(s.ids), size, replace=False))
    return Sample([s.ids[i] for i in pick], s.vectors[pick], [s.payloads[i] for i in pick], s.scanned)


async def search(engine: Engine, tenant: str, name: str, queries: np.ndarray, k: int) -> Hits:
    """The collection's own search (index, shards, merge), under the tenant's search limit; never cached."""
    opts = check_search(k, 0, 0, False, 0, False, True, with_payload=True)
    deadline = Deadline.at_edge(None, 0, engine.default_timeout_s)
    with engine.limits.search(tenant, engine.catalog.quotas(tenant)):
        return (await engine.search(tenant, name, queries, opts, deadline)).hits


async def embed(engine: Engine, tenant: str, name: str, inputs) -> np.ndarray:
    """A raw query embedded by the collection's encoder."""
    spec = engine.spec(tenant, name)
    deadline = Deadline.at_edge(None, 0, engine.default_timeout_s)
    return await engine.encoders.vectors_for(spec, lambda: np.empty((0, spec.dim), np.float32), inputs, "",
                                             "queries", deadline)


async def kept_inputs(engine: Engine, tenant: str, name: str, ids: list[str]):
    """The kept raw inputs of ids as a RawInputs message (None for a collection without an encoder)."""
    if not engine.spec(tenant, name).encoder or not ids:
        return None
    blobs = await engine.get_inputs(tenant, name, ids)
    if all(b is None for b in blobs):
        return None
    return await asyncio.to_thread(decode_inputs, blobs)
