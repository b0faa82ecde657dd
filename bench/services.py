"""Service peers a user would pick instead of simsearch, driven through their own Python SDKs:
Milvus Lite through pymilvus (milvus-lite 3.x runs its engine inside the caller's process,
with faiss HNSW as the index) and Chroma's server over HTTP on 127.0.0.1.

Both are tuned the same way as our library peers: HNSW with M=16 and ef_construction=200,
the knob is ef at search time, and only ids come back (no vectors, no metadata). Their
"build" is ingest until searchable: every row inserted, then (Milvus) the index built and
the collection loaded.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simsearch.datasets import Dataset
from simsearch.bench.serve_process import tree_rss
from simsearch.bench.systems import EF_SEARCH, prepare

HNSW = {"M": 16, "ef_construction": 200}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ids_to_rows(hits: list[list[Any]], k: int) -> np.ndarray:
    out = np.full((len(hits), k), -1, np.int64)
    for i, row in enumerate(hits):  # the peers' SDKs hand back Python lists; this loop is their client cost
        vals = [int(h) for h in row[:k]]
        out[i, :len(vals)] = vals
    return out


@dataclass
class MilvusLite:
    """Milvus Lite through pymilvus: HNSW index, ef swept at search time, ids only."""

    name: str = "Milvus Lite (pymilvus)"
    kind: str = "service"
    params: dict[str, Any] = field(default_factory=lambda: {"index": "HNSW", **HNSW, "batch": 5000})

    def build(self, ds: Dataset) -> None:
        from pymilvus import DataType, MilvusClient

        self.dir = Path(tempfile.mkdtemp(prefix="bench-milvus-"))
        self.client = MilvusClient(str(self.dir / "milvus.db"))
        schema = self.client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=ds.train.shape[1])
        self.add_payload_fields(schema)
        self.client.create_collection("bench", schema=schema)
        self.metric = "L2" if ds.metric == "l2" else "COSINE"
        db = prepare(ds.train, ds.metric)
        step = self.params["batch"]
        for i in range(0, len(db), step):
            self.client.insert("bench", [{"id": j, "v": v, **self.payload_of(j)}
                                         for j, v in enumerate(db[i:i + step], start=i)])
        self.client.flush("bench")
        index = self.client.prepare_index_params()
        index.add_index("v", index_type="HNSW", metric_type=self.metric,
                        params={"M": HNSW["M"], "efConstruction": HNSW["ef_construction"]})
        self.add_payload_indexes(index)
        self.client.create_index("bench", index)
        self.client.load_collection("bench")

    # hooks for payloads (bench/filtered.py): none in the plain benchmark
    def add_payload_fields(self, schema: Any) -> None:
        pass

    def payload_of(self, row: int) -> dict[str, Any]:
        return {}

    def add_payload_indexes(self, index: Any) -> None:
        pass

    def knobs(self) -> list[dict[str, Any]]:
        return [{"ef": ef} for ef in EF_SEARCH]

    def set_knob(self, knob: dict[str, Any]) -> None:
        self.ef = knob["ef"]

    def _search(self, queries: np.ndarray, k: int, expr: str = "") -> np.ndarray:
        """expr: a Milvus boolean filter expression ("" for none)."""
        res = self.client.search("bench", data=list(queries), limit=k, output_fields=[], filter=expr,
                                 search_params={"metric_type": self.metric, "params": {"ef": max(self.ef, k)}})
        return _ids_to_rows([[hit["id"] for hit in row] for row in res], k)

    def search_batch(self, queries: np.ndarray, k: int) -> np.ndarray:
        return np.concatenate([self._search(queries[i:i + 100], k) for i in range(0, len(queries), 100)])

    def search_one(self, query: np.ndarray, k: int) -> np.ndarray:
        return self._search(query[None, :], k)[0]

    def close(self) -> None:
        self.client.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class ChromaServer:
    """Chroma's own server (`chroma run`) over HTTP on 127.0.0.1: HNSW, ef_search swept, ids only."""

    name: str = "Chroma server (HTTP)"
    kind: str = "service"
    params: dict[str, Any] = field(default_factory=lambda: {"index": "HNSW", "max_neighbors": HNSW["M"],
                                                            "ef_construction": HNSW["ef_construction"]})

    def build(self, ds: Dataset) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bench-chroma-"))
        self.port = free_port()
        self._start()
        self.rss_before = tree_rss(self.proc.pid)
        space = "l2" if ds.metric == "l2" else "cosine"
        self.collection = self.client.create_collection(
            "bench", embedding_function=None,
            configuration={"hnsw": {"space": space, "max_neighbors": HNSW["M"],
                                    "ef_construction": HNSW["ef_construction"], "ef_search": 10}})
        db = prepare(ds.train, ds.metric)
        step = min(5000, self.client.get_max_batch_size())
        for i in range(0, len(db), step):
            stop = min(i + step, len(db))
            self.collection.add(ids=[str(j) for j in range(i, stop)], embeddings=db[i:stop],
                                metadatas=self.metadatas(i, stop))
        self.collection.query(query_embeddings=db[:1], n_results=1, include=[])  # searchable

    def _start(self) -> None:
        import chromadb

        chroma = Path(sys.executable).with_name("chroma")
        self.proc = subprocess.Popen([str(chroma), "run", "--path", str(self.dir / "data"), "--host", "127.0.0.1",
                                      "--port", str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.client = chromadb.HttpClient(host="127.0.0.1", port=self.port)
                self.client.heartbeat()
                return
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the Chroma server did not come up within 60 s") from None
                time.sleep(0.2)

    def _stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def memory_bytes(self) -> int:
        return tree_rss(self.proc.pid) - self.rss_before

    def metadatas(self, start: int, stop: int) -> list[dict[str, Any]] | None:
        """Rows start..stop's metadata (a hook for bench/filtered.py): none in the plain benchmark."""
        return None

    def knobs(self) -> list[dict[str, Any]]:
        return [{"ef_search": ef} for ef in EF_SEARCH]

    def set_knob(self, knob: dict[str, Any]) -> None:
        """A running Chroma server keeps the HNSW index it loaded with the old ef_search (measured: recall does
        not move after `modify`), so the new setting is persisted and the server restarted to load it."""
        self.collection.modify(configuration={"hnsw": {"ef_search": knob["ef_search"]}})
        self._stop()
        self._start()
        self.collection = self.client.get_collection("bench", embedding_function=None)

    def _search(self, queries: np.ndarray, k: int, where: dict[str, Any] | None = None) -> np.ndarray:
        """where: a Chroma metadata filter (None for none)."""
        extra = {} if where is None else {"where": where}
        res = self.collection.query(query_embeddings=queries, n_results=k, include=[], **extra)
        return _ids_to_rows(res["ids"], k)

    def search_batch(self, queries: np.ndarray, k: int) -> np.ndarray:
        return np.concatenate([self._search(queries[i:i + 100], k) for i in range(0, len(queries), 100)])

    def search_one(self, query: np.ndarray, k: int) -> np.ndarray:
        return self._search(query[None, :], k)[0]

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self.dir, ignore_errors=True)
