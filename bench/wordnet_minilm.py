"""The benchmark's one dataset that needs an encoder, so it lives in bench/ rather than datasets/:
wordnet-minilm-384-cosine, all-MiniLM-L6-v2 embeddings of every WordNet 3.0 definition (117,659)
as the database, queried with GCIDE definitions (a seeded sample); real text."""

from __future__ import annotations

import numpy as np

from simsearch.datasets import Dataset
from simsearch.datasets.gcide import gcide_definitions
from simsearch.datasets.wordnet import wordnet_definitions

__all__ = ["wordnet_minilm"]


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
