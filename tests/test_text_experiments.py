"""The text experiments' shared scores (scripts/_text_experiments.py): ranks, ties and chunking."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

_SPEC = importlib.util.spec_from_file_location(
    "_text_experiments", Path(__file__).resolve().parent.parent / "scripts" / "_text_experiments.py")
tx = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(tx)


def test_retrieval_scores_identity() -> None:
    emb = np.eye(5, dtype=np.float32)
    assert tx.retrieval_scores(emb, emb) == {"R@1": 1.0, "R@10": 1.0, "MRR": 1.0}


def test_retrieval_scores_known_ranks() -> None:
    """Query i ranks its own document exactly ranks[i]-th (0-based) among 12 one-hot documents."""
    ranks = np.array([0, 0, 1, 2, 3, 0, 11, 9, 10, 4, 0, 1])
    n = len(ranks)
    queries = np.zeros((n, n), np.float32)
    for i, rank in enumerate(ranks):
        order = [j for j in range(n) if j != i]
        order.insert(rank, i)
        queries[i, order] = np.arange(n, 0, -1)  # distinct scores, best first
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    docs = np.eye(n, dtype=np.float32)
    scores = tx.retrieval_scores(queries, docs)
    assert scores["R@1"] == pytest.approx(4 / 12)
    assert scores["R@10"] == pytest.approx(10 / 12)
    assert scores["MRR"] == pytest.approx(np.mean(1 / (ranks + 1)))
    assert tx.retrieval_scores(queries, docs, chunk=5) == scores
    with pytest.raises(ValueError):
        tx.retrieval_scores(queries, docs[:5])
