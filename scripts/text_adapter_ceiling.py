"""Where MiniLM adapters top out on GCIDE -> WordNet: the experiments behind issue 3's text verdict.

The shipped adapter (`encoder.report.TEXT`) gains +3.1 R@1 over frozen MiniLM; the issue asks
for +5. This script trains the other adapter families on exactly the same split (1,000 test
words, seed 0; 1,000 validation words carved from training for early stopping) and prints
R@1 / R@10 / MRR on the held-out words, so every row of BENCHMARKS' "text adapter ceiling"
table can be re-run:

    .venv/bin/python scripts/text_adapter_ceiling.py            # pooled-vector families, ~6 min
    .venv/bin/python scripts/text_adapter_ceiling.py --tokens   # + token-level heads, ~45 min more

The loss is pytorch-metric-learning's SupConLoss, as in `encoder.losses`, over the query
tower's and the document tower's outputs together, a word's two definitions sharing a label.
This is an experiment harness, not product code: nothing in `simsearch` imports it.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from _text_experiments import fit_val_test, retrieval_scores  # scripts/, beside this file
from pytorch_metric_learning.losses import SupConLoss
from simsearch.datasets.cache import cache_dir
from simsearch.datasets.text_pairs import definition_pairs
from simsearch.encoder.backbones import TextAdapter
from simsearch.encoder.minilm import embed_texts
from sklearn.feature_extraction.text import TfidfVectorizer
from torch import nn

DIM = 384
Embed = Callable[[np.ndarray], torch.Tensor]  # word rows -> (N, D) embeddings of their queries or documents


class Split:
    """Pairs, frozen pooled embeddings and the fit / validation / test word indices."""

    def __init__(self) -> None:
        self.pairs = definition_pairs()
        self.n = len(self.pairs.words)
        self.q = embed_texts(self.pairs.queries)
        self.d = embed_texts(self.pairs.documents)
        self.fit, self.val, self.test = fit_val_test(self.n)


class LinearResidual(nn.Module):
    """x + Wx, W starting at zero: the identity."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Linear(DIM, DIM)
        nn.init.zeros_(self.w.weight)
        nn.init.zeros_(self.w.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.w(x)


def train_towers(split: Split, embed_q: Embed, embed_d: Embed, modules: list[nn.Module], *, lr: float = 3e-4,
                 batch: int = 1024, epochs: int = 20, patience: int = 5, tau: float = 0.05, seed: int = 0,
                 label: str = "") -> tuple[float, int, float]:
    """Train, early-stop on validation R@1, restore the best epoch; (best val R@1, best epoch, seconds)."""
    torch.manual_seed(seed)
    params = [p for m in modules for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    loss_fn = SupConLoss(tau)
    rng = np.random.default_rng(seed)
    best, best_epoch, best_state, bad, start = -1.0, -1, None, 0, time.perf_counter()
    for epoch in range(epochs):
        for m in modules:
            m.train()
        order = rng.permutation(split.fit)
        for i in range(0, len(order) - batch + 1, batch):
            rows = order[i:i + batch]
            labels = torch.arange(len(rows))
            loss = loss_fn(torch.cat([embed_q(rows), embed_d(rows)]), torch.cat([labels, labels]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        for m in modules:
            m.eval()
        val = scores(split.val, embed_q, embed_d)["R@1"]
        print(f"    {label} epoch {epoch}: val R@1 {val:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)
        if val > best:
            best, best_epoch, bad = val, epoch, 0
            best_state = [copy.deepcopy(m.state_dict()) for m in modules]
        elif (bad := bad + 1) >= patience:
            break
    for m, state in zip(modules, best_state or []):
        m.load_state_dict(state)
    return best, best_epoch, time.perf_counter() - start


@torch.no_grad()
def embeddings(rows: np.ndarray, embed: Embed, chunk: int = 1024) -> np.ndarray:
    return torch.cat([F.normalize(embed(rows[i:i + chunk]), dim=1) for i in range(0, len(rows), chunk)]).numpy()


def scores(rows: np.ndarray, embed_q: Embed, embed_d: Embed) -> dict[str, float]:
    return retrieval_scores(embeddings(rows, embed_q), embeddings(rows, embed_d))


def report(name: str, result: dict[str, float], frozen: float, extra: str = "") -> None:
    print(f"| {name} | {result['R@1']:.3f} | {result['R@10']:.3f} | {result['MRR']:.3f} | "
          f"{100 * (result['R@1'] - frozen):+.1f} | {extra} |", flush=True)


def pooled(split: Split, frozen: float) -> None:
    """Families that see MiniLM's pooled 384-d vector."""
    def on(x: np.ndarray, tower: Callable[[torch.Tensor], torch.Tensor] | None) -> Embed:
        return lambda rows: (tower or nn.Identity())(torch.from_numpy(x[rows]))

    def fit(name: str, tq: nn.Module | None, td: nn.Module | None, **kw: float) -> None:
        modules = [m for m in dict.fromkeys([tq, td]) if m is not None]
        val, epoch, secs = train_towers(split, on(split.q, tq), on(split.d, td), modules, label=name, **kw)
        report(name, scores(split.test, on(split.q, tq), on(split.d, td)), frozen,
               f"val {val:.3f}, best epoch {epoch}, {secs:.0f} s")

    torch.manual_seed(0)  # the first tower's initial weights, independent of what ran before
    shared = TextAdapter(512)
    fit("shared residual MLP (the shipped TEXT config)", shared, shared)
    fit("asymmetric: a residual MLP per side", TextAdapter(512), TextAdapter(512))
    fit("asymmetric: a linear residual map per side", LinearResidual(), LinearResidual())
    fit("query side only: residual MLP, documents frozen", TextAdapter(512), None)
    fit("query side only: linear residual map, documents frozen", LinearResidual(), None)

    towers = []
    for seed in range(5):
        t = TextAdapter(512)
        train_towers(split, on(split.q, t), on(split.d, t), [t], seed=seed, label=f"seed {seed}")
        towers.append(t)
    def mean_of_units(x: torch.Tensor) -> torch.Tensor:
        return sum(F.normalize(t(x), dim=1) for t in towers)

    report("ensemble of 5 shared adapters (seeds 0-4), mean of unit vectors",
           scores(split.test, on(split.q, mean_of_units), on(split.d, mean_of_units)), frozen)
    for alpha in (0.3, 0.5):
        def fused(x: torch.Tensor, a: float = alpha) -> torch.Tensor:  # dot = a cos_frozen + (1 - a) cos_adapted
            return torch.cat([a ** 0.5 * x, (1 - a) ** 0.5 * F.normalize(towers[0](x), dim=1)], 1)

        report(f"score fusion: {alpha} x frozen cosine + {1 - alpha:.1f} x adapter (seed 0)",
               scores(split.test, on(split.q, fused), on(split.d, fused)), frozen)

    texts = split.pairs
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True)
    vec.fit([texts.queries[i] for i in split.fit] + [texts.documents[i] for i in split.fit])
    tq = vec.transform([texts.queries[i] for i in split.test]).toarray().astype(np.float32)
    td = vec.transform([texts.documents[i] for i in split.test]).toarray().astype(np.float32)
    for beta in (0.3, 0.5):
        both = retrieval_scores(np.hstack([split.q[split.test], beta ** 0.5 * tq]),
                                np.hstack([split.d[split.test], beta ** 0.5 * td]))
        report(f"lexical fusion, no training: frozen cosine + {beta} x char 3-5-gram TF-IDF cosine", both, frozen)

    q, d = embeddings(split.test, on(split.q, shared)), embeddings(split.test, on(split.d, shared))
    ref = embeddings(split.fit, on(split.q, shared))
    for k in (10, 50):  # CSLS-style hub penalty: a per-document constant, so it could be a 385th dimension
        hub = np.sort(d @ ref.T, axis=1)[:, -k:].mean(1)
        r = retrieval_scores(np.hstack([q, np.ones((len(q), 1), np.float32)]),
                             np.hstack([d, -0.5 * hub[:, None]]).astype(np.float32))
        report(f"shared adapter + hubness penalty (CSLS, k={k}, against the training queries)", r, frozen)


class TokenStates:
    """Frozen MiniLM token states of every definition at one layer, cached on disk (fp16, ragged)."""

    def __init__(self, split: Split, layer: int, max_len: int = 64) -> None:
        path = cache_dir() / "text_tokens" / f"layer{layer}-{len(split.pairs.words)}.npz"
        if not path.exists():
            self._extract(split, layer, path)
        data = np.load(path)
        self.states, self.offsets, self.max_len = torch.from_numpy(data["states"]), data["offsets"], max_len

    @staticmethod
    @torch.inference_mode()
    def _extract(split: Split, layer: int, path: Path) -> None:
        from simsearch.encoder.minilm import load_minilm
        from tqdm import tqdm

        model = load_minilm()
        bert, tokenizer = model[0].auto_model.eval(), model.tokenizer
        texts = split.pairs.queries + split.pairs.documents
        order = np.argsort([len(t) for t in texts], kind="stable")  # little padding per batch
        states: list[np.ndarray] = [np.empty(0)] * len(texts)
        for i in tqdm(range(0, len(texts), 256), desc=f"MiniLM layer-{layer} token states"):
            idx = order[i:i + 256]
            enc = tokenizer([texts[j] for j in idx], padding=True, truncation=True, max_length=256, return_tensors="pt")
            hidden = bert(**enc, output_hidden_states=True).hidden_states[layer]
            for r, j in enumerate(idx):
                states[j] = hidden[r, :int(enc["attention_mask"][r].sum())].numpy().astype(np.float16)
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in states])])
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, states=np.concatenate(states), offsets=offsets)

    def padded(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        lens = np.minimum(self.offsets[rows + 1] - self.offsets[rows], self.max_len)
        x = torch.zeros(len(rows), int(lens.max()), DIM)
        mask = torch.zeros(len(rows), int(lens.max()), dtype=torch.bool)
        for r, (j, n) in enumerate(zip(rows, lens)):
            x[r, :n] = self.states[self.offsets[j]:self.offsets[j] + n].float()
            mask[r, :n] = True
        return x, mask

    def embed(self, head: nn.Module, rows: np.ndarray, chunk: int = 128) -> torch.Tensor:
        """Rows in length-sorted chunks (padding stays small), back in the caller's order."""
        order = np.argsort(self.offsets[rows + 1] - self.offsets[rows], kind="stable")
        parts = [head(*self.padded(rows[order[i:i + chunk]])) for i in range(0, len(rows), chunk)]
        return torch.cat(parts)[torch.from_numpy(np.argsort(order))]


def mean_pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).float()
    return (x * m).sum(1) / m.sum(1)


class FreshLayer(nn.Module):
    """A new pre-LN transformer layer on MiniLM's final token states, its output projections
    at zero (so it starts as MiniLM's own mean-pooled embedding), then mean pooling."""

    def __init__(self, heads: int = 6, ffn: int = 768) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(DIM, heads, ffn, dropout=0.0, activation="gelu", batch_first=True,
                                                norm_first=True)
        for lin in (self.layer.self_attn.out_proj, self.layer.linear2):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return mean_pool(self.layer(x, src_key_padding_mask=~mask), mask)


class MiniLMTopLayer(nn.Module):
    """MiniLM's own sixth layer (post-LN BERT), copied from the packaged weights and trained,
    on frozen layer-5 token states: fine-tuning the top of MiniLM, not an adapter on it."""

    def __init__(self, dropout: float = 0.1) -> None:
        super().__init__()
        from simsearch.encoder.minilm import load_minilm

        top = load_minilm()[0].auto_model.encoder.layer[5]
        att = top.attention
        self.q, self.k, self.v = (copy.deepcopy(m) for m in (att.self.query, att.self.key, att.self.value))
        self.o, self.ln1 = copy.deepcopy(att.output.dense), copy.deepcopy(att.output.LayerNorm)
        self.up, self.down = copy.deepcopy(top.intermediate.dense), copy.deepcopy(top.output.dense)
        self.ln2 = copy.deepcopy(top.output.LayerNorm)
        self.heads, self.dropout = top.attention.self.num_attention_heads, dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        def split(t: torch.Tensor) -> torch.Tensor:  # (b, n, DIM) -> (b, heads, n, DIM / heads)
            return t.view(b, n, self.heads, DIM // self.heads).transpose(1, 2)

        p = self.dropout if self.training else 0.0
        att = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)),
                                             attn_mask=mask[:, None, None, :], dropout_p=p)
        h = self.ln1(x + F.dropout(self.o(att.transpose(1, 2).reshape(b, n, DIM)), p, self.training))
        h = self.ln2(h + F.dropout(self.down(F.gelu(self.up(h))), p, self.training))
        return mean_pool(h, mask)


def train_head(split: Split, frozen: float, tokens: TokenStates, name: str, model: nn.Module, **kw: float) -> None:
    def on_q(rows: np.ndarray) -> torch.Tensor:
        return tokens.embed(model, rows)

    def on_d(rows: np.ndarray) -> torch.Tensor:
        return tokens.embed(model, rows + split.n)

    model.eval()
    check = scores(split.test, on_q, on_d)["R@1"]
    print(f"  {name}: R@1 before training {check:.3f} (frozen {frozen:.3f}; definitions cut at 64 tokens)")
    val, epoch, secs = train_towers(split, on_q, on_d, [model], label=name, **kw)
    report(name, scores(split.test, on_q, on_d), frozen, f"val {val:.3f}, best epoch {epoch}, {secs:.0f} s")


def token_level(split: Split, frozen: float) -> None:
    """Families that see MiniLM's token states (cached once: about 5 minutes per layer here)."""
    train_head(split, frozen, TokenStates(split, 6), "fresh transformer layer (6 heads, FFN 768) on frozen final "
               "token states", FreshLayer(), batch=512, epochs=12, patience=3)
    train_head(split, frozen, TokenStates(split, 5), "MiniLM's top layer fine-tuned on frozen layer-5 states (drops "
               "the frozen premise)", MiniLMTopLayer(), batch=256, epochs=12, patience=3, lr=3e-5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", action="store_true", help="also train the token-level heads (~45 min on 2 cores)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    split = Split()
    frozen = retrieval_scores(split.q[split.test], split.d[split.test])
    print(f"fit {len(split.fit)}, validation {len(split.val)}, test {len(split.test)} words")
    print("| family | R@1 | R@10 | MRR | gain | notes |\n|---|---|---|---|---|---|")
    report("frozen all-MiniLM-L6-v2", frozen, frozen["R@1"])
    pooled(split, frozen["R@1"])
    if args.tokens:
        token_level(split, frozen["R@1"])


if __name__ == "__main__":
    main()
