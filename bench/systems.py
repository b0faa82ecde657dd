"""The in-process systems a benchmark compares: raw ScaNN (the ceiling), numpy brute force
(the floor) and the library peers hnswlib and faiss (HNSW; IVF-PQ fast scan with an exact
refine). Each is a `System`: build once, then sweep its recall knob from cheap to thorough.

Every system answers with database row numbers (int64, -1 where it found fewer than k), so
recall is computed the same way for all of them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from simsearch.datasets import Dataset
from simsearch.reranker.kernels import normalize, pairwise_distance, top_k
from simsearch.shard import IndexParams
from simsearch.shard.config import DEFAULT_OVERSAMPLE
from simsearch.shard.scann_index import TRAINING_SAMPLE

THREADS = os.cpu_count() or 1
# Fractions of the ScaNN leaves probed per query, cheap to thorough (simsearch's default,
# shard.config.DEFAULT_PROBE_FRACTION, is 0.07).
LEAF_FRACTIONS = (0.01, 0.02, 0.035, 0.05, 0.07, 0.1, 0.15, 0.25)
EF_SEARCH = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384)
NPROBE = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128)


class System(Protocol):
    """A searchable system under test. `knobs()` is ordered from fastest to most accurate."""

    name: str
    kind: str  # "ceiling", "floor", "library", "service", "simsearch"
    params: dict[str, Any]

    def build(self, ds: Dataset) -> None: ...

    def knobs(self) -> list[dict[str, Any]]: ...

    def set_knob(self, knob: dict[str, Any]) -> None: ...

    def search_batch(self, queries: np.ndarray, k: int) -> np.ndarray: ...

    def search_one(self, query: np.ndarray, k: int) -> np.ndarray: ...

    def close(self) -> None: ...


def scann_distance(metric: str) -> str:
    return "squared_l2" if metric == "l2" else "dot_product"  # cosine data is unit-norm


def prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    """float32 C-contiguous; unit rows for cosine (what simsearch does on ingest)."""
    x = np.ascontiguousarray(vectors, np.float32)
    return normalize(x) if metric == "cosine" else x


@dataclass
class RawScann:
    """One in-process ScaNN index with simsearch's parameters: the same points per leaf (leaves x shards),
    asymmetric hashing at the same dims per block, and ScaNN's exact re-order of k x oversample candidates
    (simsearch re-ranks the same number exactly). The knob is the fraction of leaves probed."""

    shards: int = 1
    fractions: tuple[float, ...] = LEAF_FRACTIONS
    name: str = "raw ScaNN (in-process)"
    kind: str = "ceiling"
    params: dict[str, Any] = field(default_factory=dict)

    def build(self, ds: Dataset) -> None:
        import scann

        p = IndexParams()
        self.leaves = p.leaves_for(len(ds.train) // self.shards) * self.shards
        self.oversample = p.oversample or DEFAULT_OVERSAMPLE  # auto (calibrated) in simsearch; the old default here
        self.params = {"num_leaves": self.leaves, "dims_per_block": p.block_dims_for(ds.train.shape[1]),
                       "reorder": f"k x {self.oversample}", "search": "search_batched_parallel / search"}
        db = prepare(ds.train, ds.metric)
        self.searcher = (scann.scann_ops_pybind.builder(db, 10, scann_distance(ds.metric))
                         .tree(num_leaves=self.leaves, num_leaves_to_search=max(1, self.leaves // 14),
                               training_sample_size=min(len(db), TRAINING_SAMPLE))
                         .score_ah(p.block_dims_for(db.shape[1]),  # the shards' choice: anisotropic for ip
                                   anisotropic_quantization_threshold=float("nan") if ds.metric == "l2" else 0.2)
                         .reorder(10 * self.oversample).build())
        self.metric = ds.metric

    def knobs(self) -> list[dict[str, Any]]:
        return [{"leaves_to_search": max(1, math.ceil(self.leaves * f))} for f in self.fractions]

    def set_knob(self, knob: dict[str, Any]) -> None:
        self.probe = knob["leaves_to_search"]

    def search_batch(self, queries: np.ndarray, k: int) -> np.ndarray:
        rows, _ = self.searcher.search_batched_parallel(prepare(queries, self.metric), final_num_neighbors=k,
                                                        pre_reorder_num_neighbors=k * self.oversample,
                                                        leaves_to_search=self.probe)
        return rows.astype(np.int64)

    def search_one(self, query: np.ndarray, k: int) -> np.ndarray:
        rows, _ = self.searcher.search(query, final_num_neighbors=k, pre_reorder_num_neighbors=k * self.oversample,
                                       leaves_to_search=self.probe)
        return rows.astype(np.int64)

    def close(self) -> None:
        self.searcher = None


@dataclass
class NumpyBruteForce:
    """Exact search with one BLAS matmul per chunk of queries (float32, the shards' exact kernels): the floor
    every index must beat."""

    name: str = "numpy brute force"
    kind: str = "floor"
    params: dict[str, Any] = field(default_factory=lambda: {"chunk": 256, "dtype": "float32"})

    def build(self, ds: Dataset) -> None:
        self.metric = ds.metric
        self.db = prepare(ds.train, ds.metric)

    def knobs(self) -> list[dict[str, Any]]:
        return [{"exact": True}]

    def set_knob(self, knob: dict[str, Any]) -> None:
        pass

    def search_batch(self, queries: np.ndarray, k: int) -> np.ndarray:
        q = prepare(queries, self.metric)
        return np.concatenate([top_k(pairwise_distance(q[i:i + 256], self.db, self.metric), k)[0]
                               for i in range(0, len(q), 256)])

    def search_one(self, query: np.ndarray, k: int) -> np.ndarray:
        return self.search_batch(query[None, :], k)[0]

    def close(self) -> None:
        self.db = None


@dataclass
class Hnswlib:
    """hnswlib HNSW (M=16, ef_construction=200); the knob is ef."""

    name: str = "hnswlib HNSW"
    kind: str = "library"
    params: dict[str, Any] = field(default_factory=lambda: {"M": 16, "ef_construction": 200})

    def build(self, ds: Dataset) -> None:
        import hnswlib

        self.metric = ds.metric
        db = prepare(ds.train, ds.metric)
        self.index = hnswlib.Index(space="l2" if ds.metric == "l2" else "ip", dim=db.shape[1])
        self.index.init_index(max_elements=len(db), M=self.params["M"], ef_construction=self.params["ef_construction"])
        self.index.add_items(db, np.arange(len(db)), num_threads=THREADS)

    def knobs(self) -> list[dict[str, Any]]:
        return [{"ef": ef} for ef in EF_SEARCH]

    def set_knob(self, knob: dict[str, Any]) -> None:
        self.index.set_ef(knob["ef"])

    def search_batch(self, queries: np.ndarray, k: int) -> np.ndarray:
        labels, _ = self.index.knn_query(prepare(queries, self.metric), k=k, num_threads=THREADS)
        return labels.astype(np.int64)

    def search_one(self, query: np.ndarray, k: int) -> np.ndarray:
        labels, _ = self.index.knn_query(prepare(query[None, :], self.metric), k=k, num_threads=1)
        return labels[0].astype(np.int64)

    def close(self) -> None:
        self.index = None


def _faiss_metric(metric: str) -> int:
    import faiss

    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


def faiss_search(index: Any, queries: np.ndarray, k: int, threads: int) -> np.ndarray:
    """One query at a time runs on one OpenMP thread (as every other system's single-query loop does)."""
    import faiss

    faiss.omp_set_num_threads(threads)
    _, labels = index.search(queries, k)
    return labels.astype(np.int64)


@dataclass
class FaissHNSW:
    """faiss IndexHNSWFlat (M=16, efConstruction=200); the knob is efSearch."""

    name: str = "faiss HNSW"
    kind: str = "library"
    params: dict[str, Any] = field(default_factory=lambda: {"M": 16, "efConstruction": 200})

    def build(self, ds: Dataset) -> None:
        import faiss

        self.metric = ds.metric
        db = prepare(ds.train, ds.metric)
        self.index = faiss.IndexHNSWFlat(db.shape[1], self.params["M"], _faiss_metric(ds.metric))
        self.index.hnsw.efConstruction = self.params["efConstruction"]
        self.index.add(db)

    def knobs(self) -> list[dict[str, Any]]:
        return [{"efSearch": ef} for ef in EF_SEARCH]

    def set_knob(self, knob: dict[str, Any]) -> None:
        self.index.hnsw.efSearch = knob["efSearch"]

    def search_batch(self, queries: np.ndarray, k: int) -> np.ndarray:
        return faiss_search(self.index, prepare(queries, self.metric), k, THREADS)

    def search_one(self, query: np.ndarray, k: int) -> np.ndarray:
        return faiss_search(self.index, prepare(query[None, :], self.metric), k, 1)[0]

    def close(self) -> None:
        self.index = None


def pq_factory(n: int, dim: int) -> str:
    """IVF with ~4*sqrt(n) lists, 4-bit fast-scan PQ at 2 dims per sub-quantizer (or 4 on wide data), then an
    exact refine on the float vectors: faiss's recommended recipe for high recall from a small code."""
    nlist = max(16, min(65536, int(4 * math.sqrt(n))))
    sub = 2 if dim <= 256 else 4
    m = dim // sub if dim % sub == 0 else dim
    return f"IVF{nlist},PQ{m}x4fs,RFlat"


@dataclass
class FaissIVFPQ:
    """faiss IVF-PQ fast scan with an exact refine of k x 10 candidates; the knob is nprobe."""

    name: str = "faiss IVF-PQ fast-scan"
    kind: str = "library"
    params: dict[str, Any] = field(default_factory=dict)

    def build(self, ds: Dataset) -> None:
        import faiss

        self.metric = ds.metric
        db = prepare(ds.train, ds.metric)
        factory = pq_factory(len(db), db.shape[1])
        self.params = {"factory": factory, "k_factor": 10}
        self.index = faiss.index_factory(db.shape[1], factory, _faiss_metric(ds.metric))
        faiss.downcast_index(self.index).k_factor = self.params["k_factor"]  # candidates refined exactly, / k
        self.index.train(db)
        self.index.add(db)
        self.ivf = faiss.extract_index_ivf(self.index)
        self.nlist = self.ivf.nlist

    def knobs(self) -> list[dict[str, Any]]:
        return [{"nprobe": p} for p in NPROBE if p <= self.nlist]

    def set_knob(self, knob: dict[str, Any]) -> None:
        self.ivf.nprobe = knob["nprobe"]

    def search_batch(self, queries: np.ndarray, k: int) -> np.ndarray:
        return faiss_search(self.index, prepare(queries, self.metric), k, THREADS)

    def search_one(self, query: np.ndarray, k: int) -> np.ndarray:
        return faiss_search(self.index, prepare(query[None, :], self.metric), k, 1)[0]

    def close(self) -> None:
        self.index = self.ivf = None
