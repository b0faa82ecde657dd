"""The datasets `simsearch bench` runs on, by the names its runner uses: the shared loaders of
`simsearch.datasets`, plus WordNet-MiniLM, the one that needs an encoder to exist.

- fashion-mnist-784-euclidean: Debian's `dataset-fashion-mnist` (ann-benchmarks' split, l2).
- wordnet-minilm-384-cosine: all-MiniLM-L6-v2 embeddings of every WordNet 3.0 definition
  (117,659) as the database, queried with GCIDE definitions (a seeded sample); real text.
- synthetic-gmm-128-<n>: a seeded Gaussian mixture, 128-d, l2, for scale (synthetic, and says so).
"""

from __future__ import annotations

import numpy as np

from simsearch.datasets import Dataset, fashion_mnist, ground_truth, parse_size, synthetic_gmm
from simsearch.datasets.gcide import gcide_definitions
from simsearch.datasets.wordnet import wordnet_definitions

__all__ = ["Dataset", "fashion_mnist", "ground_truth", "parse_size", "synthetic_gmm", "wordnet_minilm"]


def wordnet_minilm(queries: int = 10_000, seed: int = 0) -> Dataset:
    """MiniLM (cosine) embeddings of all WordNet definitions, queried by a seeded sample of GCIDE definitions.
    Embedding ~130k texts takes ~7 minutes on 2 cores the first time; the arrays are cached."""
    from simsearch.encoder.minilm import embed_texts  # torch and sentence-transformers: only this dataset needs them

    documents = [definition for _, definition in wordnet_definitions()]
    gcide = sorted({d for defs in gcide_definitions().values() for d in defs if len(d) >= 12})
    pick = np.sort(np.random.default_rng(seed).choice(len(gcide), queries, replace=False))
    train = embed_texts(documents)
    test = embed_texts([gcide[i] for i in pick])
    return Dataset("wordnet-minilm-384-cosine", train, test, "cosine")
