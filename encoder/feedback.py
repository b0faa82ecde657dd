"""Hard negatives from a collection's feedback log (issue 19, item 5): each event (query, ids shown, id
chosen) gives triplets (query, chosen item, an item shown and passed over), kept when the model being
fine-tuned still puts the passed-over item within the margin of the chosen one; a triplet-margin term on
them joins the training loss.

Which shown items count as negatives: by default those shown *above* the chosen one (the user looked at them
and passed them over, Joachims' "click > skip above"); items below it may never have been looked at, and are
often as relevant as the chosen one, so `negatives: all` takes them too only on request.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from pytorch_metric_learning.losses import TripletMarginLoss
from torch import nn

from simsearch.encoder.sources import FEEDBACK_NEGATIVES

TRIPLETS_PER_STEP = 64  # feedback triplets added to each training step's loss

# One event as the caller read it: (query: an image (C, H, W) uint8 or a text; None when the query was recorded
# as a vector, which no other version can embed again), the ids shown in order, the id chosen ("" = none).
RawEvent = tuple[Any, Sequence[str], str]


@dataclass(frozen=True)
class FeedbackSet:
    """Usable feedback events in the task's input form (uint8 images, or MiniLM embeddings of texts)."""

    queries: np.ndarray  # (E, *input_shape) one per usable event
    items: np.ndarray  # (M, *input_shape) the kept inputs of the chosen and passed-over items
    chosen: np.ndarray  # (E,) int64 index into items
    passed: list[np.ndarray]  # per event: indices into items of its candidate negatives
    counts: dict[str, int] = field(default_factory=dict)  # events read, used, and skipped by reason


@dataclass(frozen=True)
class Triplets:
    anchor: np.ndarray  # (T,) index into FeedbackSet.queries
    positive: np.ndarray  # (T,) index into FeedbackSet.items
    negative: np.ndarray  # (T,) index into FeedbackSet.items


def feedback_set(kind: str, input_shape: tuple[int, ...], events: Sequence[RawEvent], inputs: dict[str, Any],
                 *, negatives: str = "above") -> FeedbackSet:
    """The events that can train: a raw query of the task's shape, a chosen item with a kept input, and at least
    one candidate negative with one. `inputs`: id -> kept raw input of the items the events name."""
    if negatives not in FEEDBACK_NEGATIVES:
        raise ValueError(f"negatives must be one of {list(FEEDBACK_NEGATIVES)}, got {negatives!r}")
    counts = dict.fromkeys(("events", "used", "vector_query", "no_choice", "other_shape", "chosen_without_input",
                            "no_candidate"), 0)
    item_index: dict[str, int] = {}
    item_inputs: list[Any] = []
    queries: list[Any] = []
    chosen: list[int] = []
    passed: list[np.ndarray] = []

    def index(i: str) -> int:
        if i not in item_index:
            item_index[i] = len(item_inputs)
            item_inputs.append(inputs[i])
        return item_index[i]

    for query, shown, pick in events:
        counts["events"] += 1
        if query is None:
            counts["vector_query"] += 1
        elif not pick:
            counts["no_choice"] += 1
        elif kind == "image" and tuple(np.shape(query)) != tuple(input_shape):
            counts["other_shape"] += 1
        elif pick not in inputs:
            counts["chosen_without_input"] += 1
        else:
            shown = list(shown)
            candidates = shown[:shown.index(pick)] if negatives == "above" else [i for i in shown if i != pick]
            candidates = [i for i in candidates if i in inputs]
            if not candidates:
                counts["no_candidate"] += 1
                continue
            queries.append(query)
            chosen.append(index(pick))
            passed.append(np.array([index(i) for i in candidates], np.int64))
    counts["used"] = len(queries)
    if kind == "text":
        from simsearch.encoder.minilm import embed_texts

        q = embed_texts(list(queries)) if queries else np.zeros((0, *input_shape), np.float32)
        items = embed_texts(list(item_inputs)) if item_inputs else np.zeros((0, *input_shape), np.float32)
    else:
        q = np.stack(queries).astype(np.uint8) if queries else np.zeros((0, *input_shape), np.uint8)
        items = np.stack(item_inputs).astype(np.uint8) if item_inputs else np.zeros((0, *input_shape), np.uint8)
    return FeedbackSet(q, items, np.array(chosen, np.int64), passed, counts)


@torch.no_grad()
def mine(embed: Callable[[np.ndarray], np.ndarray], fb: FeedbackSet, margin: float) -> Triplets:
    """Hard negatives under the model given (the starting one): a candidate n of an event is kept when it is
    within `margin` of the chosen item p, d(q, n) < d(q, p) + margin, i.e. when it still violates the margin
    the triplet term asks for (it is ranked above the chosen one, or close behind). Embeddings are unit
    vectors, distances Euclidean, as in the triplet term."""
    if not len(fb.queries):
        return Triplets(*(np.zeros(0, np.int64) for _ in range(3)))
    q, items = embed(fb.queries), embed(fb.items)  # (E, D), (M, D)
    a, p, n = [], [], []
    for e, cands in enumerate(fb.passed):
        d_pos = np.linalg.norm(q[e] - items[fb.chosen[e]])
        d_neg = np.linalg.norm(items[cands] - q[e], axis=1)  # (len(cands),)
        hard = cands[d_neg < d_pos + margin]
        a += [e] * len(hard)
        p += [int(fb.chosen[e])] * len(hard)
        n += hard.tolist()
    return Triplets(np.array(a, np.int64), np.array(p, np.int64), np.array(n, np.int64))


class FeedbackTerm:
    """weight * TripletMarginLoss over a random draw of the mined triplets at each step."""

    def __init__(self, fb: FeedbackSet, triplets: Triplets, *, margin: float, weight: float, seed: int,
                 per_step: int = TRIPLETS_PER_STEP):
        self.fb, self.triplets, self.weight, self.per_step = fb, triplets, weight, per_step
        self.loss = TripletMarginLoss(margin=margin)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.triplets.anchor)

    def __call__(self, model: nn.Module, device: torch.device,
                 prepare: Callable[[torch.Tensor], torch.Tensor] = lambda x: x) -> torch.Tensor:
        t = self.rng.choice(len(self), size=min(self.per_step, len(self)), replace=False)
        b = len(t)
        x = np.concatenate([self.fb.queries[self.triplets.anchor[t]], self.fb.items[self.triplets.positive[t]],
                            self.fb.items[self.triplets.negative[t]]])  # (3B, *input_shape)
        emb = model(prepare(torch.from_numpy(x).to(device)))  # (3B, D)
        r = torch.arange(b, device=emb.device)
        labels = torch.arange(3 * b, device=emb.device)  # unused: the triplets are given
        return self.weight * self.loss(emb, labels, indices_tuple=(r, r + b, r + 2 * b))


def feedback_term(fb: FeedbackSet, embed: Callable[[np.ndarray], np.ndarray], *, margin: float, weight: float,
                  negatives: str, seed: int) -> tuple[FeedbackTerm | None, dict[str, Any]]:
    """Mine under `embed` (the starting model) and build the term; the figures the registry records with the
    new version: events read, used and skipped by reason, hard negatives kept."""
    triplets = mine(embed, fb, margin)
    stats: dict[str, Any] = {**fb.counts, "candidates": int(sum(len(c) for c in fb.passed)),
                             "hard_negatives": len(triplets.anchor),
                             "events_with_hard_negatives": len(np.unique(triplets.anchor)),
                             "margin": margin, "weight": weight, "negatives": negatives}
    if not len(triplets.anchor):
        return None, stats
    return FeedbackTerm(fb, triplets, margin=margin, weight=weight, seed=seed), stats
