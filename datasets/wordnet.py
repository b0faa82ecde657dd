"""WordNet 3.0 definitions from Debian's `wordnet-base`: every synset's lemmas and gloss."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

WORDNET_DIR = Path("/usr/share/wordnet")
POS_FILES = ("noun", "verb", "adj", "adv")


def _wordnet_line(line: str) -> tuple[tuple[str, ...], str]:
    """`offset lex ss_type w_cnt(hex) word lex_id ... | gloss`; the definition is the gloss minus its "examples"."""
    fields, _, gloss = line.partition(" | ")
    parts = fields.split()
    count = int(parts[3], 16)
    lemmas = tuple(re.sub(r"\([a-z]+\)$", "", w).replace("_", " ") for w in parts[4:4 + 2 * count:2])
    definition = gloss.split('; "')[0].strip().strip(";").strip()
    return lemmas, definition


@lru_cache(maxsize=1)
def wordnet_definitions() -> list[tuple[tuple[str, ...], str]]:
    """Every WordNet 3.0 synset (nouns, verbs, adjectives, adverbs) as (lemmas, definition); cached, do not mutate."""
    out = []
    for pos in POS_FILES:
        with open(WORDNET_DIR / f"data.{pos}", encoding="latin-1") as f:
            out.extend(_wordnet_line(line) for line in f if not line.startswith("  "))
    return out
