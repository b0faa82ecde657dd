"""Paraphrase pairs from two installed dictionaries (WordNet, GCIDE) give real text relevance labels for encoders."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from simsearch.encoder.minilm import encode


WORDNET_DIR = Path("/usr/share/wordnet")
GCIDE_INDEX = Path("/usr/share/dictd/gcide.index")
GCIDE_DICT = Path("/usr/share/dictd/gcide.dict.dz")
POS_FILES = ("noun", "verb", "adj", "adv")
B64_VALUE = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}

# --- WordNet -----------------------------------------------------------------------------------


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


# --- GCIDE -------------------------------------------------------------------------------------

ACCENT = re.compile(r"\[(?:[\"'`^=~.\-,*]([A-Za-z]{1,2})|([A-Za-z]{1,2})\^|(ae|oe|AE|OE|th)|([a-z])(?:um|mac|dd|sl))\]")
SOURCE = re.compile(r"^[ \t]*\[[^\]\n]*(?:Webster|WordNet|PJC|RDH|RHUD|MW10|MI11|Century|Suppl)", re.M)
SENSE = re.compile(r"^\s*(?:\d+\.|\([a-z]\))\s", re.M)
HEAD_TOKEN = re.compile(  # what may follow the headwords before the definition starts
    r"\s*(?:[,;.&\]]|or\b|archaic\b|(?:of|from)\s+\{[^{}]*\}"  # punctuation, `imp. of {Speak}`
    r"|\((?![a-z]\))(?:[^()]|\([^()]*\))*\)|\{[^{}]*\}"  # (pron), (Zool.) but not (a); {plural}
    r"|(?:[a-z]+|[A-Z][a-z]?)\.|\[[^\[\]]*(?:\[[^\[\]]*\][^\[\]]*)*\])"  # n., v. t., L.; [etymology]
)
HEADWORD = re.compile(r"\s*(?:or\s+)?([^\\\[\]{}();,:\n]{1,60}?)\s*\\[^\\]{0,80}\\")
SPILLED_HEADWORD = re.compile(r" {3,6}[A-Za-z][\w'-]*(?: [\w'-]+){0,2}")
NUMBERING = re.compile(r"^(?:\d+\.?|\([a-z]\))\s+")
SOURCE_TAIL = re.compile(r"\s?(?:WordNet|Webster)\s[\d.]+\]")
BRACKETED = re.compile(r"\[[^\[\]]*\]")
# cut at citations and derived forms (--), quotations, examples (; as,) and pronounced run-ons ({Ab`i*o})
CUT = re.compile(r"--|(?:^|[\s.])\"|[;:,]\s+as,\s|\{[^{}]*[*\"`]")
LABELS = re.compile(r"^(?:\s*\([^()]*\)|\s*[A-Z][a-z]+\.:)+")  # (Zool.), Fig.:
MARKUP = re.compile(r"[{}\[\]]")
CROSS_REF = re.compile(r"(?:^|(?<=\.)\s+)(?:See|Cf\.|Same as)\s.*$")
SKIP_BLOCK = re.compile(r"^\s*(?:\{|--|[A-Z][a-z]+:)")  # {Phrase}, def; -- derived forms; Note:, Syn:, Usage:


def _b64(digits: str) -> int:
    """dictd's base-64 numbers, most significant digit first."""
    n = 0
    for c in digits:
        n = n * 64 + B64_VALUE[c]
    return n


def _split_header(block: str) -> tuple[list[str], str]:
    """(headwords, rest): `Word \\pron\\, Word2 \\pron\\, n. [etym.] (Domain)` then the definition text."""
    words: list[str] = []
    pos = 0
    while True:
        if (m := HEADWORD.match(block, pos)) is not None:
            words.append(m.group(1).strip())
        elif (m := HEAD_TOKEN.match(block, pos)) is None:
            break
        pos = m.end()
    return words, block[pos:]


def _unaccent(text: str) -> str:
    return ACCENT.sub(lambda m: next(g for g in m.groups() if g), text)


def _clean(text: str) -> str:
    """One sense's raw text to a plain definition sentence."""
    text = _unaccent(" ".join(text.split()))
    text = NUMBERING.sub("", SOURCE_TAIL.sub("", text) if "]" in text else text)
    while "[" in text and (cut := BRACKETED.sub("", text)) != text:  # [Obs.], [Written also ...], nested
        text = cut
    text = CUT.split(text, maxsplit=1)[0]
    text = MARKUP.sub("", LABELS.sub("", text))
    if "See " in text or "Cf. " in text or "Same as " in text:
        text = CROSS_REF.sub("", text)
    text = text.strip(" .;,:")
    return text + "." if text else ""


def _senses(text: str) -> list[str]:
    """Raw definition text to cleaned senses: split on `1.` / `(a)` markers, cut at the source tag."""
    starts = [m.start() for m in SENSE.finditer(text)]
    pieces = [text[a:b] for a, b in zip([0, *starts], [*starts, len(text)])]
    out = []
    for piece in pieces:
        if (source := SOURCE.search(piece)) is not None:
            piece = piece[:source.start()]
        if (sense := _clean(piece)):
            out.append(sense)
    return out


def _entry(entry: str) -> tuple[list[str], list[str]]:
    """(headwords, senses) of one entry; drops notes, synonyms, phrases (`{Phrase}, ...`) and quotations."""
    head, _, last = entry.rstrip().rpartition("\n")
    if head.endswith((".", "]")) and SPILLED_HEADWORD.fullmatch(last):
        entry = head  # the next entry's headword, spilled over
    blocks = re.split(r"\n[ \t]*\n", entry.strip("\n"))
    words, rest = _split_header(blocks[0])
    body = [rest]
    for block in blocks[1:]:  # numbered senses are at indent 3, quotations deeper
        indent = len(block) - len(block.lstrip(" "))
        if indent <= 6 and not SKIP_BLOCK.match(block):
            body.append(block)
    return words, _senses("\n".join(body))


@lru_cache(maxsize=1)
def gcide_definitions() -> dict[str, list[str]]:
    """Lowercase headword -> cleaned definitions, one per sense, across all its GCIDE entries; cached, do not mutate."""
    with gzip.open(GCIDE_DICT) as f:
        raw = f.read()
    spans = set()
    with open(GCIDE_INDEX, encoding="utf-8") as f:
        for line in f:
            head, offset, length = line.rstrip("\n").split("\t")
            if not head.startswith("00-"):
                spans.add((_b64(offset), _b64(length)))
    out: dict[str, list[str]] = {}
    for offset, length in sorted(spans):
        words, senses = _entry(raw[offset:offset + length].decode("utf-8", "replace"))
        for word in dict.fromkeys(_unaccent(w).lower() for w in words):
            out[word] = list(dict.fromkeys([*out.get(word, []), *senses]))
    return out


# --- Pairs, embeddings, scores -----------------------------------------------------------------


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


def _cache_path(texts: list[str]) -> Path:
    from simsearch.bench.datasets import cache_dir

    digest = hashlib.sha256()
    for text in texts:
        data = text.encode("utf-8")
        digest.update(len(data).to_bytes(8, "little") + data)
    return cache_dir() / "text_embeddings" / f"all-minilm-l6-v2-{digest.hexdigest()[:24]}.npy"


def embed_texts(texts: list[str], *, batch_size: int = 128, progress: bool = True) -> np.ndarray:
    """Frozen MiniLM embeddings, float32 (N, 384), unit norm; cached on disk by a hash of the texts."""
    path = _cache_path(texts)
    if path.exists():
        return np.load(path)
    emb = encode(texts, batch_size=batch_size, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, emb)
    os.replace(tmp, path)
    return emb


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
