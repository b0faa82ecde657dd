"""Proto <-> numpy/domain conversion, in one place (servicers and the SDK never build messages by hand)."""

from __future__ import annotations

import numpy as np

from simsearch.protos.errors import invalid
from simsearch.protos.simsearch.v1 import common_pb2


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
    counts = np.asarray(counts, dtype=np.int64)
    mask = np.arange(k)[None, :] < counts[:, None]  # (n, k)
    out_ids = np.full(mask.shape, "", dtype=object)
    out_scores = np.full(mask.shape, np.nan, dtype=np.float32)
    out_ids[mask] = np.asarray(list(ids), dtype=object)
    out_scores[mask] = np.asarray(scores, dtype=np.float32)
    return out_ids, out_scores


def flatten_results(ids: np.ndarray, scores: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, list, np.ndarray]:
    """(n, k) ids/scores with a validity mask -> (counts, flat ids, flat scores) for the wire."""
    return valid.sum(axis=1), ids[valid].tolist(), scores[valid]
