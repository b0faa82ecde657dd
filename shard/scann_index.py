"""A ScaNN coarse index over one shard's sealed rows: partitioning tree + asymmetric hashing.

There is no ScaNN re-ordering: the shard re-ranks the coarse candidates exactly on its
full-precision vectors, so the index only has to get the true neighbours into the
candidate set. Row i of the index is row i of the shard's storage.
"""

from __future__ import annotations

import ctypes
import logging
import math
import mmap
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scann

from simsearch._logs import absl_min_level
from simsearch.reranker import Scorer
from simsearch.shard import calibration
from simsearch.shard.calibration import Calibration
from simsearch.shard.config import DEFAULT_OVERSAMPLE, IndexParams

log = logging.getLogger(__name__)
_DISTANCE = {"l2": "squared_l2", "dot": "dot_product", "cosine": "dot_product"}
TRAINING_SAMPLE = 100_000
# absl::SetMinLogLevel(absl::LogSeverityAtLeast), mangled; the inline namespace (lts_YYYYMMDD) varies by build.
_SET_MIN_LOG_LEVEL = re.compile(rb"_ZN4absl(?:12lts_\d+)?14SetMinLogLevelENS\d?_18LogSeverityAtLeastE")


def quiet_absl() -> None:
    """Apply the configured level to ScaNN's C++ logging (absl), which otherwise prints INFO lines
    to stderr on every index build.

    Measured with scann 1.4.2: TF_CPP_MIN_LOG_LEVEL, GLOG_minloglevel and ABSL_MIN_LOG_LEVEL change
    nothing (absl reads no environment, and ScaNN never calls absl::InitializeLog). absl's own
    SetMinLogLevel does; the extension links absl statically and exports it, so it is called
    through ctypes on the already-loaded library (same handle, so the same absl state).
    """
    module = sys.modules.get("scann_pybind")
    path = getattr(module, "__file__", None)
    if not path:
        return
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            found = _SET_MIN_LOG_LEVEL.search(m)  # in the dynamic symbol names, a few MB in
            symbol = found.group().decode() if found else None
        if symbol is None:
            log.debug("absl SetMinLogLevel not found in %s; ScaNN may log to stderr", path)
            return
        getattr(ctypes.CDLL(path), symbol)(ctypes.c_int(absl_min_level()))
    except (OSError, AttributeError, ValueError) as e:
        log.debug("could not set ScaNN's absl log level: %s", e)


quiet_absl()


@dataclass
class CoarseIndex:
    searcher: object
    size: int
    num_leaves: int
    default_leaves: int  # what a search that names none uses: calibrated, explicit, or 7 % of the leaves
    default_oversample: int = DEFAULT_OVERSAMPLE
    calibration: Calibration | None = None  # the measured recall curve (shard/calibration.py)

    @classmethod
    def build(cls, vectors: np.ndarray, metric: str, params: IndexParams) -> "CoarseIndex":
        n = len(vectors)
        leaves = params.leaves_for(n)
        search_leaves = params.search_leaves_for(leaves)
        builder = scann.scann_ops_pybind.builder(vectors, 10, _DISTANCE[metric])
        builder = builder.tree(
            num_leaves=leaves,
            num_leaves_to_search=search_leaves,
            training_sample_size=min(n, TRAINING_SAMPLE),
        )
        # Anisotropic quantization helps inner-product search; for l2 plain AH is right.
        threshold = math.nan if metric == "l2" else 0.2
        builder = builder.score_ah(params.block_dims_for(vectors.shape[1]), anisotropic_quantization_threshold=threshold)
        return cls(builder.build(), n, leaves, search_leaves, params.oversample or DEFAULT_OVERSAMPLE)

    def calibrate(self, vectors: np.ndarray, scorer: Scorer, params: IndexParams) -> None:
        """Measure the recall curve on `vectors` (the rows this index covers) and take the cheapest setting
        that meets the collection's target for every parameter left at 0 (auto); explicit ones are kept.
        Does nothing when calibration is switched off (the uncalibrated defaults stay)."""
        if not calibration.enabled():
            return
        found = calibration.calibrate(self.search, vectors, scorer, num_leaves=self.num_leaves,
                                      target=params.recall_target,
                                      leaves=min(params.leaves_to_search, self.num_leaves), oversample=params.oversample)
        self._apply(found, params)
        log.info("index calibrated in %.2fs on %d sample queries: leaves_to_search %d, oversample %d, recall@%d %.3f "
                 "(target %.2f)", found.seconds, found.sample, self.default_leaves, self.default_oversample,
                 calibration.K, self.calibrated_recall, found.target)

    def _apply(self, found: Calibration, params: IndexParams) -> None:
        best = found.pick(params.recall_target, leaves=min(params.leaves_to_search, self.num_leaves),
                          oversample=params.oversample)
        if best is not None:
            self.default_leaves, self.default_oversample = best.leaves, best.oversample
        self.calibration = found

    @property
    def calibrated_recall(self) -> float:
        """The measured recall@10 of the default setting; 0.0 when not calibrated."""
        c = self.calibration
        return c.recall_of(self.default_leaves, self.default_oversample) if c is not None else 0.0

    def setting(self, leaves: int = 0, oversample: int = 0, target_recall: float = 0.0) -> tuple[int, int]:
        """(leaves, oversample) for a search: those it names; for the rest, the cheapest calibrated setting
        for its own target_recall when it passes one, else the defaults."""
        c = self.calibration
        if target_recall and c is not None and not (leaves and oversample):
            best = c.pick(target_recall, leaves=leaves, oversample=oversample)
            if best is not None:
                return best.leaves, best.oversample
        return min(leaves or self.default_leaves, self.num_leaves), oversample or self.default_oversample

    def search(self, queries: np.ndarray, count: int, leaves: int) -> tuple[np.ndarray, np.ndarray]:
        """Coarse candidates: rows (n, c) int64 and a validity mask (n, c)."""
        count = max(1, min(count, self.size))
        leaves = max(1, min(leaves or self.default_leaves, self.num_leaves))
        if len(queries) == 1:
            rows, dist = self.searcher.search(queries[0], final_num_neighbors=count, leaves_to_search=leaves)
            rows, dist = rows[None, :], dist[None, :]
        else:
            rows, dist = self.searcher.search_batched(queries, final_num_neighbors=count, leaves_to_search=leaves)
        return rows.astype(np.int64), ~np.isnan(dist)

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.searcher.serialize(str(directory))
        if self.calibration is not None:  # beside ScaNN's files: checksummed and reused with them
            (directory / calibration.FILE).write_text(self.calibration.to_json())

    @classmethod
    def load(cls, directory: Path, size: int, num_leaves: int, params: IndexParams) -> "CoarseIndex":
        """The saved index, with its calibration when one was saved (else calibration is None: the
        shard measures it again in the background)."""
        _relocate_assets(directory)
        searcher = scann.scann_ops_pybind.load_searcher(str(directory))
        index = cls(searcher, size, num_leaves, params.search_leaves_for(num_leaves),
                    params.oversample or DEFAULT_OVERSAMPLE)
        saved = directory / calibration.FILE
        if saved.exists() and calibration.enabled():
            try:
                index._apply(Calibration.from_json(saved.read_text()), params)
            except (ValueError, KeyError, TypeError) as e:  # measured again in the background
                log.warning("ignoring the saved calibration in %s: %s", saved, e)
        return index


def _relocate_assets(directory: Path) -> None:
    """ScaNN records absolute asset paths; point them at where the index lies now.

    Snapshots are written under a temporary name and renamed, and a shard may be restored
    from shared storage on another node, so the recorded directory is rarely the real one.
    """
    assets = directory / "scann_assets.pbtxt"
    text = assets.read_text()
    fixed = re.sub(r'asset_path: "[^"]*/([^"/]+)"', lambda m: f'asset_path: "{directory.resolve() / m.group(1)}"', text)
    if fixed != text:
        tmp = assets.with_suffix(".tmp")
        tmp.write_text(fixed)
        os.replace(tmp, assets)
