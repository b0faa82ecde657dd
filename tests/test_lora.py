"""LoRA inside MiniLM (adapter 'lora+head'): a few real CPU steps train only the adapters and the head, the
registered artefact (merged weights, no peft) embeds texts exactly as the trained model did, and bad LoRA
settings are refused by name. The held-out-words measurement is scripts/lora_vs_head.py (BENCHMARKS.md)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from simsearch.encoder import TrainConfig, registry
from simsearch.encoder.data import Retrieval, Task
from simsearch.encoder.minilm import encode, load_transformer, tokenize
from simsearch.encoder.model import build_encoder
from simsearch.encoder.trainer import embed, seed_everything, train

THINGS = ["a hammer", "a river", "a lion", "an aeroplane", "ice", "a violin", "bread", "a mountain"]
QUERIES = [f"what people call {t}" for t in THINGS]
DOCS = [f"{t}, as a dictionary defines it" for t in THINGS]
# 4 steps of 4 texts (2 words, 2 definitions each): the one-cycle schedule has room to move every adapter
CFG = TrainConfig(name="lora-tiny", dataset="text-pairs", backbone="minilm", embedding_dim=384, adapter="lora+head",
                  lora_r=4, lora_alpha=8, loss="supcon", temperature=0.05, batch_size=4, m_per_class=2, width=32,
                  epochs=1, lr=1e-2, augment=False, device="cpu", num_threads=2)


@pytest.fixture(scope="module")
def task() -> Task:
    q, d = np.split(tokenize(QUERIES + DOCS), 2)  # one padded width for both
    y = np.arange(len(THINGS), dtype=np.int64)
    return Task("tiny-pairs", "text", np.concatenate([q, d]), np.concatenate([y, y]), Retrieval(q, y, d, y),
                Retrieval(q, y, d, y))


@pytest.fixture(scope="module")
def trained(task):
    return train(CFG, task=task, progress=False)


def test_only_the_adapters_and_the_head_train(task, trained):
    seed_everything(CFG.seed)  # what train() built before its first step
    before = build_encoder(CFG, task.input_shape).state_dict()
    after = trained.model.state_dict()
    assert before.keys() == after.keys()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("lora_" in k or k.startswith("head.") for k in changed), sorted(changed)
    assert any("lora_B" in k for k in changed) and any(k.startswith("head.") for k in changed)
    stock = load_transformer().state_dict()  # MiniLM's own weights stay the packaged ones
    base = {k.replace("backbone.transformer.base_model.model.", "").replace(".base_layer", ""): v
            for k, v in after.items() if "lora_" not in k and k.startswith("backbone.")}
    assert base.keys() == stock.keys() and all(torch.equal(base[k], stock[k]) for k in stock)


def test_registered_artefact_embeds_like_the_trained_model_without_peft(task, trained, tmp_path, monkeypatch):
    ref = registry.save(trained.model, name="lora-tiny", kind="text", input_shape=task.input_shape,
                        config=CFG.to_dict(), fingerprint=trained.fingerprint, metrics={}, root=tmp_path)
    manifest = registry.manifest(ref, tmp_path)
    assert manifest["input_shape"] == [384] and manifest["text_backbone_weights"] == "minilm.safetensors"
    texts = ["a small boat", "what people call a lion", "x"]
    want = embed(trained.model, tokenize(texts))  # the in-memory (unmerged) peft model
    monkeypatch.setitem(sys.modules, "peft", None)  # serving must not need peft
    loaded = registry.load(ref, tmp_path)
    got = loaded.embed(texts)
    assert got.shape == (3, 384)
    np.testing.assert_allclose(got, want, atol=2e-5)
    np.testing.assert_allclose(loaded.embed_array(tokenize(texts)), want, atol=2e-5)
    assert np.abs(got - encode(texts)).max() > 1e-3  # the fine-tuned weights, not the packaged MiniLM
    with pytest.raises(ValueError, match="own fine-tuned MiniLM"):
        loaded.embed_array(encode(texts))


def test_bad_lora_settings_are_refused_by_name():
    text = {"dataset": "text-pairs", "backbone": "minilm", "embedding_dim": 384}
    with pytest.raises(ValueError, match=r"lora_r must be an integer in \[1, 256\], got 0"):
        TrainConfig(**text, adapter="lora", lora_r=0)
    with pytest.raises(ValueError, match=r"lora_r must be an integer .* got 8.5"):
        TrainConfig(**text, adapter="lora", lora_r=8.5)
    with pytest.raises(ValueError, match="adapter must be one of"):
        TrainConfig(**text, adapter="prefix")
    with pytest.raises(ValueError, match="lora_targets must be a non-empty list drawn from"):
        TrainConfig(**text, adapter="lora", lora_targets=["attention"])
    with pytest.raises(ValueError, match="adapter 'lora' adapts the text transformer"):
        TrainConfig(adapter="lora")
    assert TrainConfig.from_dict({**text, "lora_targets": ["query", "key"]}).lora_targets == ("query", "key")
