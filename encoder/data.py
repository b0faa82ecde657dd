"""Labelled datasets in one shape for training and evaluation: what to fit on, what to
validate on (carved out of the train split, never the test split), and the test protocol
(queries against a reference set)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from simsearch.datasets import Dataset, digits, fashion_mnist
from simsearch.datasets.text_pairs import definition_pairs, split_indices
from simsearch.encoder.config import TrainConfig
from simsearch.encoder.minilm import embed_texts, tokenize


@dataclass(frozen=True)
class Retrieval:
    """Queries against a reference set; a reference item is relevant when labels match."""

    query_x: np.ndarray
    query_y: np.ndarray
    ref_x: np.ndarray
    ref_y: np.ndarray


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "image" (uint8 pixels, (N, C, H, W)) or "text" (MiniLM embeddings (N, 384), or token ids (N, L))
    fit_x: np.ndarray
    fit_y: np.ndarray
    val: Retrieval
    test: Retrieval
    pixel_mean: float = 0.0
    pixel_std: float = 1.0

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.fit_x.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(self.fit_y.max()) + 1

    def fingerprint(self) -> str:
        """sha256 of the exact training inputs and labels: two models with the same print
        were fit on the same data."""
        h = hashlib.sha256(self.name.encode())
        for a in (self.fit_x, self.fit_y):
            h.update(str((a.shape, a.dtype.str)).encode())
            h.update(np.ascontiguousarray(a))
        return h.hexdigest()


def _image_task(name: str, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                cfg: TrainConfig) -> Task:
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(train_x))
    if cfg.max_train:
        order = order[: cfg.max_train]
    n_val = max(1, int(len(order) * cfg.val_fraction))
    val_idx, fit_idx = order[:n_val], order[n_val:]
    # validation ranks 2,000 held-out items against 10,000 training items: stable enough to
    # pick the best epoch, a few seconds per epoch on 2 cores
    val_idx, ref_idx = val_idx[:2000], fit_idx[:10_000]
    scaled = train_x[fit_idx].astype(np.float32) / 255.0
    return Task(name, "image", train_x[fit_idx], train_y[fit_idx].astype(np.int64),
                Retrieval(train_x[val_idx], train_y[val_idx], train_x[ref_idx], train_y[ref_idx]),
                Retrieval(test_x, test_y.astype(np.int64), train_x, train_y.astype(np.int64)),
                float(scaled.mean()), float(scaled.std()))


def _images(name: str, ds: Dataset, side: int, cfg: TrainConfig) -> Task:
    """A labelled image dataset (float32 rows of integral pixel values) as uint8 (N, 1, side, side) images."""
    to_img = lambda a: a.reshape(-1, 1, side, side).astype(np.uint8)  # noqa: E731
    return _image_task(name, to_img(ds.train), ds.train_labels, to_img(ds.test), ds.test_labels, cfg)


def fashion_mnist_task(cfg: TrainConfig) -> Task:
    return _images("fashion-mnist", fashion_mnist(), 28, cfg)


def digits_task(cfg: TrainConfig) -> Task:
    """scikit-learn's 1,797 8x8 digits (0..16 scaled to 0..255), 30 % held out as queries."""
    return _images("digits", digits(), 8, cfg)


def text_pairs_task(cfg: TrainConfig) -> Task:
    """GCIDE definitions (queries) and WordNet definitions (documents) of the same word,
    embedded by frozen MiniLM (adapter 'head') or as MiniLM's token ids (LoRA); label = word, so each query
    has exactly one relevant document.
    Test words (1,000) are never seen in training; validation words are carved from training."""
    pairs = definition_pairs()
    if cfg.adapter == "head":
        q_all, d_all = embed_texts(pairs.queries), embed_texts(pairs.documents)  # cached once for every split
    else:  # LoRA trains inside MiniLM: the task holds token ids (one padded width), embedded at every step
        q_all, d_all = np.split(tokenize(pairs.queries + pairs.documents), 2)
    train_idx, test_idx = split_indices(len(pairs.words), test_size=1000, seed=cfg.seed)
    if cfg.max_train:
        train_idx = train_idx[: cfg.max_train]
    n = len(train_idx)
    q, d = q_all[train_idx], d_all[train_idx]
    labels = np.arange(n, dtype=np.int64)
    n_val = min(1000, max(1, int(n * cfg.val_fraction)))
    perm = np.random.default_rng(cfg.seed).permutation(n)
    val, fit = perm[:n_val], perm[n_val:]
    fit_labels = np.searchsorted(np.sort(fit), fit)  # dense 0..n_fit-1 (proxy losses need dense labels)
    tq, td = q_all[test_idx], d_all[test_idx]
    tl = np.arange(len(test_idx), dtype=np.int64)
    return Task("text-pairs", "text", np.concatenate([q[fit], d[fit]]), np.concatenate([fit_labels, fit_labels]),
                Retrieval(q[val], labels[val], d[val], labels[val]), Retrieval(tq, tl, td, tl))


def load_task(cfg: TrainConfig) -> Task:
    if cfg.data is not None:
        from simsearch.encoder.sources import DataSource, load_source  # it builds on this module's Task

        return load_source(DataSource.from_dict(cfg.data), val_fraction=cfg.val_fraction, seed=cfg.seed)
    loaders = {"fashion-mnist": fashion_mnist_task, "digits": digits_task, "text-pairs": text_pairs_task}
    return loaders[cfg.dataset](cfg)
