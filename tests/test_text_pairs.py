"""The WordNet/GCIDE definition pairs: real installed files, no model (MiniLM is never loaded here)."""

from __future__ import annotations

import pytest

from simsearch.datasets import text_pairs as tp
from simsearch.datasets.gcide import GCIDE_DICT, _b64, _entry, gcide_definitions
from simsearch.datasets.wordnet import WORDNET_DIR, wordnet_definitions

# scripts/setup.sh installs Debian's wordnet-base and dict-gcide: missing files are a failure, not a skip.
assert GCIDE_DICT.exists() and (WORDNET_DIR / "data.noun").exists(), \
    "WordNet/GCIDE missing: run scripts/setup.sh (apt-get install wordnet-base dict-gcide)"

MARKUP = ("[", "]", "<", ">", "{", "}", "\\")


@pytest.fixture(scope="module")
def pairs() -> tp.TextPairs:
    return tp.definition_pairs()


def test_wordnet_parses_every_synset() -> None:
    synsets = wordnet_definitions()
    assert len(synsets) == 117_659
    lemmas = {lemma for names, _ in synsets for lemma in names}
    assert {"galore", "ready to hand", "outback"} <= lemmas  # adjective markers (ip), (p), (a) stripped
    assert not any(lemma.endswith(")") for lemma in lemmas)
    (definition,) = [d for names, d in synsets if "aardvark" in names]
    assert "termites" in definition and '"' not in definition


def test_dictd_base64_numbers() -> None:
    assert _b64("A") == 0
    assert _b64("BA") == 64
    assert _b64("Kj") == 10 * 64 + 35


def test_entry_parser_on_a_made_up_entry() -> None:
    entry = ('Widget \\Wid"get\\, Widgette \\Wid*gette"\\, n.; pl. {Widgets}. [Etym. unknown. See {Gadget}.]\n'
             "   (Mech.)\n"
             "   1. A small mechanical device; a gadget; as, a widget on the desk. [Colloq.]\n"
             "      [1913 Webster]\n\n"
             "            A quoted line about widgets.          --Somebody.\n"
             "      [1913 Webster]\n\n"
             "   2. A part of a graphical user interface. --Anon.\n"
             "      [PJC]\n\n"
             "   Syn: gizmo.\n"
             "        [PJC]\n\n"
             "   {Widget tool}, a tool for widgets.\n"
             "      [PJC]\n")
    words, senses = _entry(entry)
    assert words == ["Widget", "Widgette"]
    assert senses == ["A small mechanical device; a gadget.", "A part of a graphical user interface."]


def test_gcide_single_sense_word_is_clean() -> None:
    gcide = gcide_definitions()
    assert 100_000 < sum(map(len, gcide.values())) < 250_000
    (aardvark,) = gcide["aardvark"]
    assert aardvark.startswith("An edentate mammal") and "termites" in aardvark
    assert not any(mark in aardvark for mark in MARKUP)
    assert gcide["loadstone"][0] == gcide["lodestone"][0]  # one entry, two headwords
    ceremony = gcide["ceremony"]
    assert len(ceremony) == 4 and all(not d[0].isdigit() for d in ceremony)
    with_markup = sum(any(mark in d for mark in MARKUP) for defs in gcide.values() for d in defs)
    assert with_markup < 100  # a few source typos survive; markup otherwise never does


def test_definition_pairs(pairs: tp.TextPairs) -> None:
    assert 10_000 < len(pairs.words) < 30_000
    assert pairs.words == sorted(set(pairs.words))
    assert len(pairs.queries) == len(pairs.documents) == len(pairs.words)
    i = pairs.words.index("aardvark")
    assert "edentate" in pairs.queries[i] and "Tubulidentata" in pairs.documents[i]
    assert all(q and d for q, d in zip(pairs.queries, pairs.documents))
    assert len(set(pairs.documents)) == len(set(pairs.queries)) == len(pairs.words)  # one word per meaning


def test_split_by_word(pairs: tp.TextPairs) -> None:
    train, test = tp.split_by_word(pairs, test_size=1000, seed=0)
    assert len(test.words) == 1000 and len(train.words) == len(pairs.words) - 1000
    assert not set(train.words) & set(test.words)
    assert test.words == sorted(test.words)
    j = pairs.words.index(test.words[7])
    assert (test.queries[7], test.documents[7]) == (pairs.queries[j], pairs.documents[j])
    again_train, again_test = tp.split_by_word(pairs, test_size=1000, seed=0)
    assert again_test == test and again_train == train
    assert tp.split_by_word(pairs, test_size=1000, seed=1)[1].words != test.words
    with pytest.raises(ValueError):
        tp.split_by_word(pairs, test_size=len(pairs.words))
