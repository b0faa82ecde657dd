"""`simsearch bench --filtered`: filtered search at several selectivities, every system side by side
in one run, against exact filtered ground truth.

Data: the benchmark's database (Fashion-MNIST's 60,000 training images by default; its test images
are the queries) with one payload per point:
- "label": the image's class (int 0-9; seeded random for a dataset without labels, and the JSON
  says so). Correlated with the vector, unlike the synthetic fields.
- "category": a keyword from 1,000 values ("cat0000".."cat0999", the number is the frequency
  rank) drawn with Zipf-like frequencies (p ~ 1/rank), so single categories cover ~13 % down to
  ~0.01 % of the points.
- "price": a float, lognormal (median ~20), in cents.
- "tags": a list of 1-3 distinct keywords from 20 ("tag00".."tag19"), skewed (p ~ 1/rank^0.8).
All synthetic fields are drawn from one seed, independently of the vectors.

Filters are chosen on the data so that their measured selectivity is close to the targets
(50 %, 10 %, 1 %, 0.1 %; a two-condition filter at ~1 %), plus two extras: the label (10 %,
correlated with the query) and a tag ($contains on a list field). Which points pass each filter
is decided once per point by `contract.filters.matches`, the reference evaluator; that mask gives
the exact filtered top-k (float64 brute force over the passing points, cached on disk) and checks
every returned hit (`wrong hits`: hits that fail the filter; `short lists`: queries answered with
fewer than min(k, passing) hits).

Systems, each at one setting, measured unfiltered and under every filter on the same queries:
- simsearch: `simsearch serve` in its own process, through the SDK: `search(..., filter={...})`,
  at the server's defaults (no leaves_to_search given: the server chooses its filtered path).
- raw ScaNN + post-filter (the naive approach): the in-process index at simsearch's default probe
  (7 % of the leaves), asked for k x 10 and k x 100 neighbours, keeping the first k that pass
  (the mask lookup is timed with the search).
- Chroma's server (`where`) and Milvus Lite (`filter` expressions; INVERTED scalar indexes on the
  scalar payload fields): HNSW at the cheapest ef whose unfiltered recall@10 reaches the target
  (0.95) on 200 queries, then that ef for every filter; Milvus Lite (its engine searches faiss HNSW
  with an IDSelector during traversal, with no exact fallback) also at ef 256 under filters. Tags
  are lists in both (Chroma 1.x takes list metadata and `$contains`; Milvus an ARRAY field and
  `array_contains`).
Batched throughput is timed in `rounds` interleaved passes over all filters of a system (the best
pass counts: this 2-core VM drifts by tens of percent over minutes); recall comes from the first.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from simsearch import datasets as D
from simsearch.bench.measure import latency
from simsearch.bench.services import ChromaServer, MilvusLite
from simsearch.bench.simsearch_system import SimsearchServer, ids_to_rows
from simsearch.bench.systems import EF_SEARCH, RawScann, prepare
from simsearch.contract.filters import And, Condition, Filter, Not, matches, parse
from simsearch.shard.config import DEFAULT_PROBE_FRACTION

CATEGORIES = 1000
ZIPF_S = 1.0
TAGS = 20
TAG_SKEW = 0.8
PRICE_LOG_MEAN, PRICE_LOG_SIGMA = 3.0, 0.8  # median e^3 ~ 20
TARGETS = (0.5, 0.1, 0.01, 0.001)
FILTERED_SYSTEMS = ("simsearch", "raw-scann", "chroma", "milvus")
POST_FILTER = (10, 100)  # raw ScaNN asks for k x these many neighbours before filtering
CALIBRATION_QUERIES = 200
FILTER_EF = 256  # Milvus Lite's second variant: ef under filters
DIAGNOSTIC_BATCH = 100  # queries in the request whose shard_paths the JSON records

Log = Callable[[str], None]


# ---- payloads and filters ----


PAYLOAD_INDEXES = {"label": "integer", "category": "keyword", "price": "float", "tags": "keyword"}


def make_payloads(n: int, labels: np.ndarray | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """One payload dict per point (see the module docstring); seeded, independent of the vectors."""
    rng = np.random.default_rng(seed)
    if labels is None:
        labels = rng.integers(0, 10, n)
    zipf = 1.0 / np.arange(1, CATEGORIES + 1) ** ZIPF_S
    cats = rng.choice(CATEGORIES, n, p=zipf / zipf.sum())
    prices = np.round(rng.lognormal(PRICE_LOG_MEAN, PRICE_LOG_SIGMA, n), 2)
    # 1-3 distinct tags per point, skewed: the Gumbel top-k trick draws without replacement by weight
    w = 1.0 / np.arange(1, TAGS + 1) ** TAG_SKEW
    keys = np.log(w / w.sum())[None, :] + rng.gumbel(size=(n, TAGS))
    order = np.argsort(-keys, axis=1)[:, :3]
    counts = rng.integers(1, 4, n)
    return [{"label": int(labels[i]), "category": f"cat{cats[i]:04d}", "price": float(prices[i]),
             "tags": [f"tag{t:02d}" for t in sorted(order[i, :counts[i]])]} for i in range(n)]


def _pct(x: float) -> str:
    return f"{x * 100:g} %"


def choose_filters(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Filters whose measured selectivity on these payloads is close to TARGETS, a two-condition one at
    ~1 %, and the label / tag extras: [{"key", "name", "where" (Mongo dict), "target", "kind"}]."""
    n = len(payloads)
    cat = np.array([p["category"] for p in payloads])
    price = np.array([p["price"] for p in payloads])
    names, counts = np.unique(cat, return_counts=True)
    by_count = names[np.lexsort((names, -counts))]  # most common first, ties by name
    count_of = dict(zip(names, counts))

    def closest_category(target: float) -> str:
        return min(names, key=lambda c: (abs(math.log(count_of[c] / (target * n))), c))

    def category_set(target: float, start: int) -> list[str]:
        """Categories from frequency rank `start` on, until their total is closest to target."""
        chosen, total = [], 0
        for c in by_count[start:]:
            if total + count_of[c] / 2 > target * n and chosen:
                break
            chosen.append(str(c))
            total += count_of[c]
        return sorted(chosen)

    median = round(float(np.median(price)), 2)
    out = [{"key": "50%", "name": "price range", "where": {"price": {"$lt": median}}, "target": 0.5}]
    ten = category_set(0.1, min(5, len(by_count) - 1))
    out.append({"key": "10%", "name": "category $in", "where": {"category": {"$in": ten}}, "target": 0.1})
    out.append({"key": "1%", "name": "category eq", "where": {"category": str(closest_category(0.01))},
                "target": 0.01})
    out.append({"key": "0.1%", "name": "category eq", "where": {"category": str(closest_category(0.001))},
                "target": 0.001})
    # two conditions at ~1 %: a ~10 % category set (other categories) and the price range that keeps ~10 % of it
    two = category_set(0.1, min(5 + len(ten), len(by_count) - 1))
    in_two = price[np.isin(cat, two)]
    share = min(1.0, 0.01 * n / max(1, len(in_two)))
    lo, hi = (round(float(q), 2) for q in np.quantile(in_two, [0.3, min(1.0, 0.3 + share)])) if len(in_two) else (0, 0)
    out.append({"key": "2-cond", "name": "category $in + price range",
                "where": {"category": {"$in": two}, "price": {"$gte": lo, "$lt": hi}}, "target": 0.01})
    label = 7  # Fashion-MNIST's "sneaker": a tenth of the images, as every class
    out.append({"key": "label", "name": "label eq (correlated with the image)", "where": {"label": label},
                "target": None})
    tags, tag_counts = np.unique([t for p in payloads for t in p["tags"]], return_counts=True)
    tag = str(min(zip(tags, tag_counts), key=lambda tc: (abs(math.log(tc[1] / (0.05 * n))), tc[0]))[0])
    out.append({"key": "tag", "name": "tags $contains (a list field)", "where": {"tags": {"$contains": tag}},
                "target": None})
    for f in out:
        f["kind"] = "target" if f["target"] is not None and f["key"] != "2-cond" else "extra"
    return out


def filter_masks(filters: list[dict[str, Any]], payloads: list[dict[str, Any]]) -> list[np.ndarray]:
    """For each filter, which points pass: `contract.filters.matches` (the reference) once per point."""
    out = []
    for f in filters:
        parsed = parse(f["where"])
        out.append(np.fromiter((matches(parsed, p) for p in payloads), bool, len(payloads)))
    return out


def _exact_small(train: np.ndarray, test: np.ndarray, metric: str) -> np.ndarray:
    """Every train row for each query, nearest first, in float64 (for subsets of at most k rows)."""
    db, q = train.astype(np.float64), test.astype(np.float64)
    d = ((q[:, None, :] - db[None]) ** 2).sum(-1) if metric == "l2" else -(q @ db.T)
    return np.argsort(d, axis=1, kind="stable")


def filtered_truth(ds: D.Dataset, mask: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k among the points that pass, as database rows, padded with -1 when fewer pass;
    float64 brute force (datasets.exact_neighbors), cached by a digest of the data and the mask."""
    h = hashlib.blake2b(digest_size=8)
    for part in (np.ascontiguousarray(ds.train), np.ascontiguousarray(ds.test), np.packbits(mask),
                 str((ds.train.shape, ds.metric)).encode()):
        h.update(part)
    path = D.cache_dir() / f"gt-filtered-{ds.name}-{k}-{h.hexdigest()}.npy"
    if path.exists():
        return np.load(path)
    rows = np.flatnonzero(mask)
    out = np.full((len(ds.test), k), -1, np.int64)
    if len(rows) > k:
        out[:] = rows[D.exact_neighbors(ds.train[rows], ds.test, k, ds.metric)]
    elif len(rows):
        out[:, :len(rows)] = rows[_exact_small(ds.train[rows], ds.test, ds.metric)]
    np.save(path, out)
    return out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the true filtered neighbours found; -1 pads in truth (fewer pass than k) don't count."""
    k = truth.shape[1]
    hits = ((found[:, :k, None] == truth[:, None, :]) & (truth[:, None, :] >= 0)).any(axis=2).sum()
    return float(hits) / max(1, int((truth >= 0).sum()))


def violations(found: np.ndarray, mask: np.ndarray, k: int) -> tuple[int, int]:
    """(hits that fail the filter, queries answered with fewer than min(k, passing) hits)."""
    have = found >= 0
    wrong = int((have & ~mask[np.where(have, found, 0)]).sum())
    short = int((have.sum(axis=1) < min(k, int(mask.sum()))).sum())
    return wrong, short


# ---- the peers' filter languages ----

_CHROMA_OPS = {"eq": "$eq", "ne": "$ne", "in": "$in", "nin": "$nin", "gt": "$gt", "gte": "$gte", "lt": "$lt",
               "lte": "$lte", "contains": "$contains"}


def to_chroma(f: Filter) -> dict[str, Any]:
    """A Filter -> Chroma's `where`: one operator per dict, $and/$or of at least two (Chroma has no $not
    and no $exists; `$contains` on list metadata matches an element)."""
    if isinstance(f, Condition):
        if f.op not in _CHROMA_OPS:
            raise ValueError(f"Chroma's where has no ${f.op}")
        return {f.field: {_CHROMA_OPS[f.op]: list(f.value) if f.op in ("in", "nin") else f.value}}
    if isinstance(f, Not):
        raise ValueError("Chroma's where has no $not")
    items = [to_chroma(i) for i in f.items]
    return items[0] if len(items) == 1 else {"$and" if isinstance(f, And) else "$or": items}


_MILVUS_OPS = {"eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _milvus_literal(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v) if isinstance(v, str) else repr(v)


def to_milvus(f: Filter) -> str:
    """A Filter -> a Milvus boolean expression (`category in ["a", "b"] and price >= 10.0`);
    `$contains` on an ARRAY field is `array_contains`."""
    if isinstance(f, Condition):
        if f.op in _MILVUS_OPS:
            return f"{f.field} {_MILVUS_OPS[f.op]} {_milvus_literal(f.value)}"
        if f.op in ("in", "nin"):
            values = ", ".join(_milvus_literal(v) for v in f.value)
            return f"{f.field} {'in' if f.op == 'in' else 'not in'} [{values}]"
        if f.op == "contains":
            return f"array_contains({f.field}, {_milvus_literal(f.value)})"
        raise ValueError(f"no Milvus expression for ${f.op} here")
    if isinstance(f, Not):
        return f"not ({to_milvus(f.item)})"
    joiner = " and " if isinstance(f, And) else " or "
    parts = [to_milvus(i) for i in f.items]
    return parts[0] if len(parts) == 1 else joiner.join(f"({p})" for p in parts)


@dataclass(frozen=True)
class Case:
    """One filter (or none) as every system takes it, with the reference mask and the exact truth."""

    key: str
    where: dict[str, Any] | None
    mask: np.ndarray
    truth: np.ndarray
    chroma: dict[str, Any] | None = None
    milvus: str = ""

    @staticmethod
    def of(key: str, where: dict[str, Any] | None, mask: np.ndarray, truth: np.ndarray) -> Case:
        if where is None:
            return Case(key, None, mask, truth)
        parsed = parse(where)
        return Case(key, where, mask, truth, to_chroma(parsed), to_milvus(parsed))


# ---- systems ----


@dataclass
class PostFilterScann:
    """Raw ScaNN (simsearch's parameters, in-process) at simsearch's default probe, post-filtered: ask for
    k x m neighbours (re-ordered exactly, k x m x oversample candidates), keep the first k that pass.
    Unfiltered it answers k. Variants: one per m."""

    multipliers: tuple[int, ...] = POST_FILTER
    name: str = "raw ScaNN + post-filter"
    kind: str = "naive"
    params: dict[str, Any] = field(default_factory=dict)

    def build(self, ds: D.Dataset, payloads: list[dict[str, Any]], log: Log) -> None:
        self.raw = RawScann()
        self.raw.build(ds)
        self.probe = max(1, math.ceil(self.raw.leaves * DEFAULT_PROBE_FRACTION))
        self.raw.set_knob({"leaves_to_search": self.probe})
        self.params = {**self.raw.params, "leaves_to_search": self.probe,
                       "post_filter": [f"k x {m}" for m in self.multipliers]}
        self.m = 1

    def calibrate(self, ds: D.Dataset, truth: np.ndarray, k: int, target: float, log: Log) -> dict[str, Any]:
        return {"leaves_to_search": self.probe, "of_leaves": self.raw.leaves,
                "why": f"simsearch's default probe ({DEFAULT_PROBE_FRACTION:.0%} of the leaves)"}

    def variants(self) -> list[str]:
        return [f"k x {m}" for m in self.multipliers]

    def set_variant(self, variant: str | None) -> None:
        self.m = 1 if variant is None else int(variant.split("x")[1])

    def _keep(self, rows: np.ndarray, case: Case, k: int) -> np.ndarray:
        if case.where is None:
            return rows[:, :k]
        ok = (rows >= 0) & case.mask[np.where(rows >= 0, rows, 0)]
        order = np.argsort(~ok, axis=1, kind="stable")[:, :k]  # passing hits first, in rank order
        out = np.take_along_axis(rows, order, 1)
        out[~np.take_along_axis(ok, order, 1)] = -1
        return out

    def search_batch(self, queries: np.ndarray, k: int, case: Case) -> np.ndarray:
        m = 1 if case.where is None else self.m
        rows, _ = self.raw.searcher.search_batched_parallel(
            prepare(queries, self.raw.metric), final_num_neighbors=k * m,
            pre_reorder_num_neighbors=k * m * self.raw.oversample, leaves_to_search=self.probe)
        return self._keep(rows.astype(np.int64), case, k)

    def search_one(self, query: np.ndarray, k: int, case: Case) -> np.ndarray:
        m = 1 if case.where is None else self.m
        rows, _ = self.raw.searcher.search(query, final_num_neighbors=k * m,
                                           pre_reorder_num_neighbors=k * m * self.raw.oversample,
                                           leaves_to_search=self.probe)
        return self._keep(rows.astype(np.int64)[None, :], case, k)[0]

    def close(self) -> None:
        self.raw.close()


class FilteredSimsearch(SimsearchServer):
    """`simsearch serve` with the payloads upserted through the SDK; search(..., filter=...) at the
    server's defaults (the server picks its filtered path), no cache."""

    def build(self, ds: D.Dataset, payloads: list[dict[str, Any]], log: Log) -> None:  # type: ignore[override]
        self.start()
        # the payload indexes a user would declare (Milvus gets INVERTED indexes on the same fields)
        self.client.create_collection("bench", ds.train.shape[1], metric=ds.metric, shards=self.shards,
                                      payload_indexes=PAYLOAD_INDEXES)
        t0 = time.perf_counter()
        self.client.upsert("bench", np.arange(len(ds.train)), ds.train, payloads=payloads, progress=None)
        self.ingest_s = time.perf_counter() - t0
        log(f"  upserted {len(ds.train):,} points with payloads in {self.ingest_s:.1f} s; building the index")
        t0 = time.perf_counter()
        info = self.client.build_index("bench")
        self.index_s = time.perf_counter() - t0
        self.leaves = max(s["num_leaves"] for s in info.shard_info)
        self.params.update(leaves_per_shard=self.leaves, ingest_s=round(self.ingest_s, 2),
                           index_s=round(self.index_s, 2))
        self.wait_idle()
        for q in ds.test[:50]:  # warm the channel
            self.client.search("bench", q, 10, no_cache=True)

    def calibrate(self, ds: D.Dataset, truth: np.ndarray, k: int, target: float, log: Log) -> dict[str, Any]:
        probe = max(1, math.ceil(self.leaves * DEFAULT_PROBE_FRACTION))
        return {"leaves_to_search": "server default", "of_leaves": self.leaves, "unfiltered_probe": probe,
                "why": "the server's defaults: it chooses how to answer each filter"}

    def variants(self) -> list[str]:
        return [""]

    def set_variant(self, variant: str | None) -> None:
        pass

    def _params(self, case: Case) -> dict[str, Any]:
        return {"no_cache": True} if case.where is None else {"no_cache": True, "filter": case.where}

    def search_batch(self, queries: np.ndarray, k: int, case: Case) -> np.ndarray:  # type: ignore[override]
        p = self._params(case)
        return np.concatenate([ids_to_rows(self.client.search("bench", queries[i:i + self.batch], k, **p).ids)
                               for i in range(0, len(queries), self.batch)])

    def search_one(self, query: np.ndarray, k: int, case: Case) -> np.ndarray:  # type: ignore[override]
        return ids_to_rows(self.client.search("bench", query, k, **self._params(case)).ids)[0]

    def diagnostics(self, queries: np.ndarray, k: int, case: Case) -> dict[str, list[str]]:
        """How each shard answered (the reply's shard_paths: "index", "filter-exact", "filter-index", ...)
        for one query alone and for a request of DIAGNOSTIC_BATCH queries. (Larger batches come back with
        "": cluster/local_shard.py splits them over its pool threads and drops the path when it joins them.)"""
        p = self._params(case)
        one = self.client.search("bench", queries[0], k, **p)
        many = self.client.search("bench", queries[:DIAGNOSTIC_BATCH], k, **p)
        return {"single": list(getattr(one, "shard_paths", ())), "batched": list(getattr(many, "shard_paths", ()))}


def _calibrate_ef(system: Any, ds: D.Dataset, truth: np.ndarray, k: int, target: float, log: Log) -> dict[str, Any]:
    """The cheapest ef (EF_SEARCH order) whose unfiltered recall@k on the first queries reaches target."""
    q = ds.test[:CALIBRATION_QUERIES]
    tried = []
    for knob in system.knobs():
        system.set_knob(knob)
        r = D.recall_at(system.search_batch_plain(q, k), truth[:len(q)], k)
        tried.append({"knob": knob, "recall": r})
        log(f"  calibrating {knob}: unfiltered recall@{k} {r:.4f} on {len(q)} queries")
        if r >= target:
            break
    return {**tried[-1]["knob"], "unfiltered_recall_calibration": tried[-1]["recall"], "tried": tried,
            "why": f"the cheapest ef with unfiltered recall@{k} >= {target} on {len(q)} queries"}


class _PeerMixin:
    """Filtered-bench surface shared by the service peers: the payloads kept for their build hooks."""

    payloads: list[dict[str, Any]]

    def variants(self) -> list[str]:
        return [""]

    def set_variant(self, variant: str | None) -> None:
        pass

    def calibrate(self, ds: D.Dataset, truth: np.ndarray, k: int, target: float, log: Log) -> dict[str, Any]:
        return _calibrate_ef(self, ds, truth, k, target, log)


class FilteredMilvus(_PeerMixin, MilvusLite):
    """Milvus Lite with the payload fields as typed columns (INT64 label, VARCHAR category, DOUBLE price,
    ARRAY<VARCHAR> tags) and INVERTED scalar indexes on the scalar ones (the only scalar index Milvus Lite
    builds; it refuses one on an ARRAY);
    filters as `filter` expressions."""

    def build(self, ds: D.Dataset, payloads: list[dict[str, Any]], log: Log) -> None:  # type: ignore[override]
        self.payloads = payloads
        self.params["payload_fields"] = "label INT64, category VARCHAR, price DOUBLE, tags ARRAY<VARCHAR>"
        self.params["scalar_indexes"] = "INVERTED on label, category, price (none on the ARRAY: refused)"
        MilvusLite.build(self, ds)

    def variants(self) -> list[str]:
        """At the calibrated ef, and at FILTER_EF (a user who knows filters need a wider search)."""
        return ["", f"ef {FILTER_EF} under filters"]

    def set_variant(self, variant: str | None) -> None:
        if not hasattr(self, "calibrated_ef"):
            self.calibrated_ef = self.ef
        self.ef = FILTER_EF if variant else self.calibrated_ef

    def add_payload_fields(self, schema: Any) -> None:
        from pymilvus import DataType

        schema.add_field("label", DataType.INT64)
        schema.add_field("category", DataType.VARCHAR, max_length=32)
        schema.add_field("price", DataType.DOUBLE)
        schema.add_field("tags", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=8, max_length=16)

    def payload_of(self, row: int) -> dict[str, Any]:
        return self.payloads[row]

    def add_payload_indexes(self, index: Any) -> None:
        for name in ("label", "category", "price"):  # Milvus Lite: "ARRAY does not support scalar index"
            index.add_index(name, index_type="INVERTED")

    def search_batch_plain(self, queries: np.ndarray, k: int) -> np.ndarray:
        return MilvusLite.search_batch(self, queries, k)

    def search_batch(self, queries: np.ndarray, k: int, case: Case) -> np.ndarray:  # type: ignore[override]
        return np.concatenate([self._search(queries[i:i + 100], k, case.milvus) for i in range(0, len(queries), 100)])

    def search_one(self, query: np.ndarray, k: int, case: Case) -> np.ndarray:  # type: ignore[override]
        return self._search(query[None, :], k, case.milvus)[0]


class FilteredChroma(_PeerMixin, ChromaServer):
    """Chroma's server with each payload as the point's metadata (tags as a list: Chroma 1.x takes list
    metadata and `$contains` on it); filters as `where`."""

    def build(self, ds: D.Dataset, payloads: list[dict[str, Any]], log: Log) -> None:  # type: ignore[override]
        self.payloads = payloads
        self.params["metadata"] = "label int, category str, price float, tags list[str]"
        ChromaServer.build(self, ds)

    def metadatas(self, start: int, stop: int) -> list[dict[str, Any]] | None:
        return self.payloads[start:stop]

    def search_batch_plain(self, queries: np.ndarray, k: int) -> np.ndarray:
        return ChromaServer.search_batch(self, queries, k)

    def search_batch(self, queries: np.ndarray, k: int, case: Case) -> np.ndarray:  # type: ignore[override]
        return np.concatenate([self._search(queries[i:i + 100], k, case.chroma) for i in range(0, len(queries), 100)])

    def search_one(self, query: np.ndarray, k: int, case: Case) -> np.ndarray:  # type: ignore[override]
        return self._search(query[None, :], k, case.chroma)[0]


def make_filtered_system(name: str, shards: int, placement: str, batch: int) -> Any:
    return {"simsearch": lambda: FilteredSimsearch(shards=shards, placement=placement, batch=batch),
            "raw-scann": PostFilterScann, "chroma": FilteredChroma, "milvus": FilteredMilvus}[name]()


# ---- the run ----


def labels_for(dataset: str, ds: D.Dataset) -> np.ndarray | None:
    """The database's class labels when the dataset has them (Fashion-MNIST's `head` copy drops them)."""
    if ds.train_labels is not None:
        return ds.train_labels
    if dataset == "fashion-mnist":
        full = D.fashion_mnist()
        return full.train_labels[:len(ds.train)]
    return None


def _measure_batched(system: Any, queries: np.ndarray, k: int, case: Case) -> tuple[np.ndarray, float]:
    system.search_batch(queries[:min(50, len(queries))], k, case)  # warm caches, pools and the filter's columns
    t = time.perf_counter()
    found = system.search_batch(queries, k, case)
    return found, len(queries) / (time.perf_counter() - t)


def run_filtered(ds: D.Dataset, labels: np.ndarray | None, systems: list[str], *, k: int = 10, single: int = 200,
                 rounds: int = 2, shards: int = 1, placement: str = "local", batch: int = 1000, seed: int = 0,
                 target: float = 0.95, single_budget_s: float = 10.0, log: Log = print) -> dict[str, Any]:
    """Payloads, filters, exact filtered truth, then every system: build, one setting, unfiltered and every
    filter (recall@k, batched QPS best of `rounds` interleaved passes, single-query p50/p99)."""
    from simsearch.bench.run import dataset_info, machine

    t0 = time.perf_counter()
    payloads = make_payloads(len(ds.train), labels, seed)
    filters = choose_filters(payloads)
    masks = filter_masks(filters, payloads)
    log(f"payloads for {len(payloads):,} points and {len(filters)} filters (reference evaluator on every point) "
        f"in {time.perf_counter() - t0:.1f} s")
    for f, m in zip(filters, masks):
        f["selectivity"], f["passing"] = float(m.mean()), int(m.sum())
        log(f"  {f['key']:>6}: {f['name']}: {m.mean():.4%} pass ({m.sum():,} points)")
    t0 = time.perf_counter()
    log(f"exact filtered top-{k} in float64 for {len(ds.test):,} queries x {len(filters)} filters (cached)")
    cases = [Case.of("unfiltered", None, np.ones(len(ds.train), bool), D.ground_truth(ds)[:, :k])]
    for f, m in zip(filters, masks):
        cases.append(Case.of(f["key"], f["where"], m, filtered_truth(ds, m, k)))
        f["chroma_where"], f["milvus_expr"] = cases[-1].chroma, cases[-1].milvus
    log(f"  ground truth in {time.perf_counter() - t0:.1f} s")
    result: dict[str, Any] = {
        "dataset": dataset_info(ds), "k": k, "machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "payloads": {"seed": seed, "label": "the image class" if labels is not None else "seeded random 0-9",
                     "category": f"{CATEGORIES} keywords, p ~ 1/rank^{ZIPF_S}",
                     "price": f"lognormal(mu={PRICE_LOG_MEAN}, sigma={PRICE_LOG_SIGMA}), cents",
                     "tags": f"1-3 distinct of {TAGS} keywords, p ~ 1/rank^{TAG_SKEW}",
                     "example": payloads[0]},
        "filters": filters, "rounds": rounds, "single": single, "recall_target_for_settings": target,
        "diagnostic_batch": DIAGNOSTIC_BATCH,
        "systems": []}
    for name in systems:
        result["systems"] += _run_system(name, ds, payloads, cases, k=k, single=single, rounds=rounds, shards=shards,
                                         placement=placement, batch=batch, target=target,
                                         single_budget_s=single_budget_s, log=log)
    result["summary"] = summary(result)
    return result


def _run_system(name: str, ds: D.Dataset, payloads: list[dict[str, Any]], cases: list[Case], *, k: int, single: int,
                rounds: int, shards: int, placement: str, batch: int, target: float, single_budget_s: float,
                log: Log) -> list[dict[str, Any]]:
    system = make_filtered_system(name, shards, placement, batch)
    try:
        log(f"{system.name}: building with payloads")
        t0 = time.perf_counter()
        system.build(ds, payloads, log)
        build_s = time.perf_counter() - t0
        log(f"  built in {build_s:.1f} s")
        setting = system.calibrate(ds, cases[0].truth, k, target, log)
        unfiltered, filtered = cases[0], cases[1:]
        jobs = [(None, unfiltered)] + [(v, c) for v in system.variants() for c in filtered]
        rows: dict[tuple[str | None, str], dict[str, Any]] = {}
        for r in range(rounds):
            log(f"  pass {r + 1}/{rounds} over {len(jobs)} (variant, filter) pairs")
            for variant, case in jobs:
                system.set_variant(variant)
                key = (variant, case.key)
                if key not in rows:
                    rows[key] = _first_pass(system, ds, case, k, single, single_budget_s)
                    if isinstance(system, FilteredSimsearch):
                        rows[key]["shard_paths"] = _try(lambda: system.diagnostics(ds.test, k, case))
                elif "batched_error" not in rows[key]:
                    try:
                        rows[key]["batched_qps_runs"].append(_measure_batched(system, ds.test, k, case)[1])
                    except Exception as e:  # noqa: BLE001 (a peer's or our failure is a figure, not the end of the run)
                        rows[key]["batched_error_later"] = _error(e)
                row = rows[key]
                row["batched_qps"] = max(row["batched_qps_runs"], default=None)
                label = case.key + (f" ({variant})" if variant else "")
                log(f"    {label:>30}: " + _describe_row(row, k, r == 0))
        base = rows[(None, "unfiltered")]
        out = []
        for variant in system.variants():
            per = [rows[(variant, c.key)] for c in filtered]
            for row in per:
                row["qps_over_unfiltered"] = _ratio(row["batched_qps"], base["batched_qps"])
                row["single_qps_over_unfiltered"] = _ratio(row["single_qps"], base["single_qps"])
            suffix = "" if not variant else f", {variant}" if system.name.endswith(")") else f" ({variant})"
            out.append({"name": system.name + suffix, "system": name,
                        "kind": system.kind, "params": system.params, "setting": setting, "build_s": build_s,
                        "unfiltered": base, "rows": per})
        return out
    finally:
        system.close()


def _error(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}"


def _try(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        return {"error": _error(e)}


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def _singles(system: Any, case: Case, queries: np.ndarray, k: int, max_queries: int,
             budget_s: float) -> tuple[list[float], np.ndarray]:
    """One query per call, back to back (as bench.measure.single_loop), keeping the answers."""
    lat: list[float] = []
    found = []
    start = time.perf_counter()
    for q in queries[:max_queries]:
        t = time.perf_counter()
        rows = system.search_one(q, k, case)
        lat.append(time.perf_counter() - t)
        found.append(np.pad(rows[:k], (0, k - len(rows[:k])), constant_values=-1))
        if len(lat) >= 30 and t - start > budget_s:
            break
    return lat, np.stack(found)


def _first_pass(system: Any, ds: D.Dataset, case: Case, k: int, single: int, budget_s: float) -> dict[str, Any]:
    """Batched (recall, QPS, wrong hits, short lists), then one query per call (latency). A failure in
    either is recorded in the row; recall then comes from whichever ran (the JSON says which)."""
    row: dict[str, Any] = {"filter": case.key, "batched_qps_runs": [], "recall": None, "single_qps": None,
                           "single": latency([]), "wrong_hits": None, "short_lists": None}
    found = None
    try:
        found, qps = _measure_batched(system, ds.test, k, case)
        row["batched_qps_runs"].append(qps)
    except Exception as e:  # noqa: BLE001 (a peer's or our failure is a figure, not the end of the run)
        row["batched_error"] = _error(e)
    try:
        lat, found_single = _singles(system, case, ds.test, k, single, budget_s)
        row.update(single_qps=len(lat) / sum(lat), single=latency(lat))
    except Exception as e:  # noqa: BLE001
        row["single_error"] = _error(e)
        found_single = None
    if found is None and found_single is not None:
        found = found_single
        row["recall_from"] = f"{len(found)} queries one per call (the batched requests failed)"
    if found is not None:
        truth = case.truth[:len(found)]
        row["recall"] = recall(found, truth)
        row["wrong_hits"], row["short_lists"] = violations(found, case.mask, k)
    return row


def _describe_row(row: dict[str, Any], k: int, first: bool) -> str:
    parts = []
    if row["recall"] is not None:
        parts.append(f"recall@{k} {row['recall']:.4f}")
    if row["batched_qps_runs"]:
        parts.append(f"batched {row['batched_qps_runs'][-1]:,.0f} QPS")
    if "batched_error" in row and first:
        parts.append(f"BATCHED FAILED ({row['batched_error'][:120]})")
    if row["single_qps"] is not None and first:
        parts.append(f"p50 {row['single']['p50_ms']:.2f} ms p99 {row['single']['p99_ms']:.2f} ms")
    if "single_error" in row and first:
        parts.append(f"ONE-PER-CALL FAILED ({row['single_error'][:120]})")
    if row["wrong_hits"]:
        parts.append(f"WRONG HITS {row['wrong_hits']}")
    if row["short_lists"]:
        parts.append(f"short lists {row['short_lists']}")
    return "  ".join(parts)


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """Per system: the lowest recall over the target selectivities and the two-condition filter, and
    batched QPS at the 1 % filter over unfiltered (issue 16: >= 0.95 and >= 0.5x); failures counted."""
    keys = [f["key"] for f in result["filters"] if f["kind"] == "target" or f["key"] == "2-cond"]
    out = {}
    for s in result["systems"]:
        by = {r["filter"]: r for r in s["rows"]}
        measured = [key for key in keys if by[key]["recall"] is not None]
        worst = min(measured, key=lambda key: by[key]["recall"]) if measured else None
        out[s["name"]] = {"min_recall": by[worst]["recall"] if worst else None, "min_recall_filter": worst,
                          "qps_1pct_over_unfiltered": by["1%"].get("qps_over_unfiltered"),
                          "wrong_hits": sum(r["wrong_hits"] or 0 for r in s["rows"]),
                          "short_lists": sum(r["short_lists"] or 0 for r in s["rows"]),
                          "failed": [r["filter"] for r in s["rows"] if any(e in r for e in _ERRORS)]}
    return out


_ERRORS = ("batched_error", "single_error", "batched_error_later")


# ---- outputs ----


def _f(x: float | None, spec: str) -> str:
    return "—" if x is None else format(x, spec)


def _qps(x: float | None) -> str:
    return "—" if x is None else format(x, ",.0f") if x >= 100 else format(x, ".3g")


def table(result: dict[str, Any]) -> str:
    ds = result["dataset"]
    k = result["k"]
    lines = [f"**{ds['name']}**{' (synthetic)' if ds['synthetic'] else ''}: {ds['train']:,} vectors x {ds['dim']} "
             f"with payloads, {ds['queries']:,} queries, {ds['metric']}, k = {k}; batched QPS the best of "
             f"{result['rounds']} interleaved passes, latency over up to {result['single']} queries one per call.",
             "", "| filter | what | selectivity | passing points |", "|---|---|---|---|"]
    for f in result["filters"]:
        lines.append(f"| {f['key']} | {f['name']}: `{_short(f['where'])}` | {f['selectivity']:.3%} "
                     f"| {f['passing']:,} |")
    lines += ["", "| system | setting | unfiltered recall@10 | batched QPS | 1-query QPS | p50 ms | p99 ms |",
              "|---|---|---|---|---|---|---|"]
    notes: list[str] = []
    for s in result["systems"]:
        u = s["unfiltered"]
        lines.append(f"| {s['name']} | {_setting(s['setting'])} | {_f(u['recall'], '.3f')} "
                     f"| {_qps(u['batched_qps'])} | {_qps(u['single_qps'])} "
                     f"| {_f(u['single']['p50_ms'], '.2f')} | {_f(u['single']['p99_ms'], '.2f')} |")
        notes += [f"{s['name']}, unfiltered: {e} {u[e]}" for e in _ERRORS if e in u]
    lines += ["", f"| filter | selectivity | system | recall@{k} | batched QPS | × unfiltered | 1-query QPS "
                  f"| p50 ms | p99 ms | wrong hits | short lists | shard path (1 query / {result.get('diagnostic_batch', '?')}) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    sel = {f["key"]: f["selectivity"] for f in result["filters"]}
    for f in result["filters"]:
        for s in result["systems"]:
            r = next(r for r in s["rows"] if r["filter"] == f["key"])
            marks = []
            for e in _ERRORS:
                if e in r:
                    notes.append(f"{s['name']}, {f['key']}: {e.replace('_', ' ')}: {r[e]}")
                    marks.append(str(len(notes)))
            if "recall_from" in r:
                notes.append(f"{s['name']}, {f['key']}: recall from {r['recall_from']}")
                marks.append(str(len(notes)))
            mark = f" [{', '.join(marks)}]" if marks else ""
            lines.append(f"| {f['key']} | {sel[f['key']]:.3%} | {s['name']}{mark} | {_f(r['recall'], '.3f')} "
                         f"| {_qps(r['batched_qps'])} | {_f(r.get('qps_over_unfiltered'), '.2f')} "
                         f"| {_qps(r['single_qps'])} | {_f(r['single']['p50_ms'], '.2f')} "
                         f"| {_f(r['single']['p99_ms'], '.2f')} | {_f(r['wrong_hits'], 'd')} "
                         f"| {_f(r['short_lists'], 'd')} | {_paths(r.get('shard_paths'))} |")
    lines += ["", "| system | lowest recall@10 (50/10/1/0.1 %, two conditions) | batched QPS at 1 % / unfiltered "
                  "| wrong hits | short lists | failed |", "|---|---|---|---|---|---|"]
    for name, s in result["summary"].items():
        lines.append(f"| {name} | {_f(s['min_recall'], '.3f')} ({s['min_recall_filter']}) "
                     f"| {_f(s['qps_1pct_over_unfiltered'], '.2f')} | {s['wrong_hits']} | {s['short_lists']} "
                     f"| {', '.join(s['failed']) or 'none'} |")
    if notes:
        lines += [""] + [f"[{i}] {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines)


def _paths(paths: dict[str, Any] | None) -> str:
    if not paths:
        return ""
    if "error" in paths:
        return "(error)"
    return " / ".join(",".join(sorted(set(paths[w]))) or "?" for w in ("single", "batched"))


def _short(where: Any) -> str:
    """JSON with long lists cut to their first three values and a count (the JSON output has them all)."""
    def cut(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: cut(x) for k, x in v.items()}
        if isinstance(v, list) and len(v) > 4:
            return v[:3] + [f"... {len(v)} values"]
        return v
    return json.dumps(cut(where))


def _setting(setting: dict[str, Any]) -> str:
    keep = {k: v for k, v in setting.items() if k not in ("tried", "why", "unfiltered_recall_calibration")}
    return ", ".join(f"{k} {v}" for k, v in keep.items())


def plot(result: dict[str, Any], out: Path) -> Path:
    """recall@10 and batched QPS against measured selectivity (log x), one line per system over the
    target filters, the other filters as separate markers, unfiltered QPS as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ds = result["dataset"]
    filters = {f["key"]: f for f in result["filters"]}
    main = [f["key"] for f in result["filters"] if f["kind"] == "target"]
    markers = {"2-cond": "X", "label": "^", "tag": "s"}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    for i, s in enumerate(result["systems"]):
        color = f"C{i}"
        by = {r["filter"]: r for r in s["rows"]}
        for ax, key in ((axes[0], "recall"), (axes[1], "batched_qps")):
            have = [m for m in main if by[m][key] is not None]
            ax.plot([filters[m]["selectivity"] for m in have], [by[m][key] for m in have], marker="o", color=color,
                    label=s["name"])
            for extra, mk in markers.items():
                if extra in by and by[extra][key] is not None:
                    ax.scatter([filters[extra]["selectivity"]], [by[extra][key]], marker=mk, color=color, s=40)
        if s["unfiltered"]["batched_qps"]:
            axes[1].axhline(s["unfiltered"]["batched_qps"], color=color, ls="--", lw=0.8)
    axes[0].axhline(0.95, color="grey", ls=":", lw=1)
    axes[0].set_ylabel(f"recall@{result['k']}")
    axes[0].set_ylim(-0.02, 1.02)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("batched QPS (dashed: unfiltered)")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("selectivity (share of points that pass)")
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"{ds['name']}{' (synthetic)' if ds['synthetic'] else ''}: filtered search")
    handles, labels = axes[0].get_legend_handles_labels()
    for extra, mk in markers.items():
        if extra in filters:
            handles.append(plt.Line2D([], [], ls="", marker=mk, color="k"))
            labels.append(f"{extra}: {filters[extra]['name']}")
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=3, frameon=False)
    path = out / f"filtered-{ds['name']}.png"
    fig.tight_layout(rect=(0, 0.05 + 0.035 * math.ceil(len(labels) / 3), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = f"bench-filtered-{result['dataset']['name']}"
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1, default=_json_default))
    md = table(result)
    (out / f"{stem}.md").write_text(md + "\n")
    png = plot(result, out)
    print(md)
    print(f"wrote {out / (stem + '.json')}, {out / (stem + '.md')}, {png}")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON: {type(o).__name__}")
