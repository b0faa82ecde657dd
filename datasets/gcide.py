"""GCIDE definitions from Debian's `dict-gcide`: a dictd file parsed to clean one-sentence senses per headword."""

from __future__ import annotations

import gzip
import re
from functools import lru_cache
from pathlib import Path

GCIDE_INDEX = Path("/usr/share/dictd/gcide.index")
GCIDE_DICT = Path("/usr/share/dictd/gcide.dict.dz")
B64_VALUE = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}

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
