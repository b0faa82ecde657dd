"""Exact scoring of candidates on full-precision vectors, and the pluggable scorer interface."""

from simsearch.reranker.kernels import METRICS, normalize, pairwise_distance, to_score, top_k
from simsearch.reranker.scorer import ExactScorer, Scorer

__all__ = ["METRICS", "ExactScorer", "Scorer", "normalize", "pairwise_distance", "to_score", "top_k"]
