"""What both text experiment scripts share: their split of the words and their scores (R@1, R@10, MRR).

Run alone, it prints the frozen all-MiniLM-L6-v2 baseline on the 1,000 held-out words (BENCHMARKS'
first text row): `.venv/bin/python scripts/_text_experiments.py`. Not product code.
"""

from __future__ import annotations

import numpy as np
from simsearch.datasets.text_pairs import definition_pairs, split_by_word, split_indices


def fit_val_test(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The experiments' split of n words: the product's 1,000 test words (seed 0), then 1,000
    validation words carved from the rest, which are fitted on."""
    train, test = split_indices(n, test_size=1000, seed=0)
    train = np.random.default_rng(0).permutation(train)
    return train[1000:], train[:1000], test


def retrieval_scores(query_emb: np.ndarray, doc_emb: np.ndarray, *, chunk: int = 1024) -> dict[str, float]:
    """R@1, R@10 and MRR when query i's only relevant document is document i (dot product = cosine).

    Extra documents past len(query_emb) are distractors; ties count in the query's favour.
    """
    if len(doc_emb) < len(query_emb):
        raise ValueError(f"{len(query_emb)} queries need at least as many documents, got {len(doc_emb)}")
    ranks = []
    for start in range(0, len(query_emb), chunk):
        sims = query_emb[start:start + chunk] @ doc_emb.T
        rows = np.arange(len(sims))
        correct = sims[rows, rows + start]
        ranks.append((sims > correct[:, None]).sum(axis=1))
    rank = np.concatenate(ranks)
    return {"R@1": float(np.mean(rank < 1)), "R@10": float(np.mean(rank < 10)), "MRR": float(np.mean(1.0 / (rank + 1)))}


def main() -> None:
    import time

    from simsearch.encoder.minilm import embed_texts

    pairs = definition_pairs()
    train, test = split_by_word(pairs)
    print(f"pairs: {len(pairs.words)}  train: {len(train.words)}  test: {len(test.words)}")
    start = time.perf_counter()
    queries, documents = embed_texts(pairs.queries), embed_texts(pairs.documents)
    print(f"embedded {len(queries) + len(documents)} texts in {time.perf_counter() - start:.1f} s")
    index = {w: i for i, w in enumerate(pairs.words)}
    rows = np.array([index[w] for w in test.words])
    scores = retrieval_scores(queries[rows], documents[rows])
    print("frozen MiniLM, GCIDE -> WordNet, 1,000 held-out words (seed 0): "
          + "  ".join(f"{k} {v:.3f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
