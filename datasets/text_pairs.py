"""Paraphrase pairs from two installed dictionaries (GCIDE query, WordNet document, same word): real
text relevance labels, and the word-disjoint splits every text experiment uses."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from simsearch.datasets.gcide import gcide_definitions
from simsearch.datasets.wordnet import wordnet_definitions


@dataclass(frozen=True)
class TextPairs:
    words: list[str]
    queries: list[str]  # GCIDE definition of words[i]
    documents: list[str]  # WordNet definition of words[i]

    def subset(self, index: np.ndarray) -> TextPairs:
        return TextPairs([self.words[i] for i in index], [self.queries[i] for i in index],
                         [self.documents[i] for i in index])


def definition_pairs() -> TextPairs:
    """Words with exactly one WordNet synset and exactly one GCIDE sense, sorted by word.

    Synonyms sharing a definition (`loadstone`, `lodestone`) keep only their first word, so that no
    meaning is on both sides of a split and a batch holds no false negatives.
    """
    senses: Counter[str] = Counter()
    wordnet: dict[str, str] = {}
    for lemmas, definition in wordnet_definitions():
        for lemma in {x.lower() for x in lemmas}:
            senses[lemma] += 1
            wordnet[lemma] = definition
    gcide = gcide_definitions()
    seen: set[str] = set()
    words = []
    for word in sorted(w for w, defs in gcide.items() if len(defs) == 1 and senses.get(w) == 1):
        if gcide[word][0] not in seen and wordnet[word] not in seen:
            seen.update((gcide[word][0], wordnet[word]))
            words.append(word)
    return TextPairs(words, [gcide[w][0] for w in words], [wordnet[w] for w in words])


def split_indices(n: int, *, test_size: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices of n pairs, disjoint, each sorted."""
    if not 0 < test_size < n:
        raise ValueError(f"test_size must be in (0, {n}), got {test_size}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[test_size:]), np.sort(perm[:test_size])


def split_by_word(pairs: TextPairs, *, test_size: int = 1000, seed: int = 0) -> tuple[TextPairs, TextPairs]:
    """(train, test) with disjoint words; test holds exactly `test_size` words, both keep the word order."""
    train, test = split_indices(len(pairs.words), test_size=test_size, seed=seed)
    return pairs.subset(train), pairs.subset(test)
