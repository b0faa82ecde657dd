"""Every dataset simsearch trains or benchmarks on, in one place that depends on no other simsearch package.

Vector benchmarks (`Dataset`: a database, queries and a metric) with exact ground truth, the
labelled images the encoders train on, and the dictionary text pairs (`text_pairs`).
Embedding text is the encoder's job: `simsearch.encoder.minilm.embed_texts`.
"""

from simsearch.datasets.cache import cache_dir
from simsearch.datasets.dataset import Dataset
from simsearch.datasets.digits import digits
from simsearch.datasets.fashion_mnist import fashion_mnist
from simsearch.datasets.ground_truth import exact_neighbors, ground_truth, recall_at
from simsearch.datasets.synthetic import parse_size, synthetic_gmm

__all__ = ["Dataset", "cache_dir", "digits", "exact_neighbors", "fashion_mnist", "ground_truth", "parse_size",
           "recall_at", "synthetic_gmm"]
