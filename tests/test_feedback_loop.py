"""The feedback loop closed (issue 19, item 5): a glyph collection served on a weak encoder v1, a synthetic
user's feedback recorded through Points.Feedback and read back through ListFeedback, then the fine-tune
`simsearch train` runs (init_from v1, data: collection with feedback: true) mines hard negatives from it; v2
retrieves held-out queries (never used for feedback) better than v1 on the same items, and the reindex's quality
gate, evaluating those held-out images in the collection through the serving path, promotes it.

Measured by scripts/feedback_loop.py with this test's settings (16 classes, 15 epochs, 3 seeds): v2 over v1
P@1 +0.115 to +0.135, MAP@R +0.019 to +0.032; the thresholds below sit at about half of the smallest gain."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import API_KEY, start_server

from simsearch import InvalidArgument
from simsearch.client import Client
from simsearch.datasets.glyphs import write_glyph_folder
from simsearch.encoder import registry
from simsearch.encoder.config import TrainConfig
from simsearch.encoder.metrics import retrieval_metrics
from simsearch.encoder.pipeline import train_and_register
from simsearch.encoder.sources import read_image_folder, task_from_arrays

pytestmark = pytest.mark.integration  # a real server and encoder replicas in Ray actors

NETWORK = {"backbone": "cnn", "width": 16, "embedding_dim": 32, "loss": "proxy-anchor", "batch_size": 64,
           "m_per_class": 4, "augment": False, "num_threads": 2, "patience": 1000}
ITEMS, FEEDBACK_QUERIES = 16, 8  # per class; the other 6 of each class are held out


def held_out(ref: str, models, x, y, items, queries) -> dict[str, float]:
    model = registry.load(ref, models)
    return retrieval_metrics(model.embed(x[queries]), y[queries], model.embed(x[items]), y[items], metric="cosine")


def test_feedback_mined_into_hard_negatives_improves_the_encoder(tmp_path, ray_cluster, monkeypatch):
    from simsearch.cli import _collection_feedback, _collection_task  # what `simsearch train` runs

    write_glyph_folder(tmp_path / "glyphs", classes=16, per_class=30, size=24, seed=0)
    x, y, _ = read_image_folder(tmp_path / "glyphs")  # (480, 1, 24, 24) uint8
    rng = np.random.default_rng(0)
    per_class = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    items = np.concatenate([p[:ITEMS] for p in per_class])
    fb_queries = np.concatenate([p[ITEMS:ITEMS + FEEDBACK_QUERIES] for p in per_class])
    held = np.concatenate([p[ITEMS + FEEDBACK_QUERIES:] for p in per_class])
    models = tmp_path / "data" / "models"
    weak = TrainConfig(name="glyphs", **NETWORK, epochs=1, max_steps_per_epoch=10)  # v1: ten steps
    v1, _, _ = train_and_register(weak, root=models, task=task_from_arrays("items", x[items], y[items], "item", 0.2,
                                                                           0.1, 0), progress=False)
    server = start_server(tmp_path / "data")
    try:
        with Client(server.address, api_key=API_KEY, timeout=600) as client:
            client.create_collection("glyphs", encoder=v1)
            client.upsert("glyphs", [str(i) for i in range(len(items))], images=x[items][:, 0],
                          payloads=[{"label": int(c)} for c in y[items]])
            # the synthetic user: shown = the top 10, chosen = the first shown of the query's class, or none
            res = client.search("glyphs", images=x[fb_queries][:, 0], k=10)
            for q, shown in zip(fb_queries, res.ids):
                hit = [i for i in shown if y[items[int(i)]] == y[q]]
                client.feedback("glyphs", image=x[q, 0], shown=list(shown), chosen=hit[0] if hit else "")
            client.feedback("glyphs", np.ones(32, np.float32), shown=["1", "2"], chosen="2")  # a vector: skipped
            # read back in pages, as recorded
            first = client.list_feedback("glyphs", limit=100)
            rest = client.list_feedback("glyphs", after=first.next_after, limit=100)
            events = first.events + rest.events
            assert len(events) == len(fb_queries) + 1 and rest.next_after == 0
            assert [e.seq for e in events] == sorted(e.seq for e in events)
            np.testing.assert_array_equal(events[0].image, x[fb_queries[0]])
            assert events[0].shown == list(res.ids[0]) and events[-1].vector is not None
            for kw, field in [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"after": -1}, "after")]:
                with pytest.raises(InvalidArgument, match=field) as e:
                    client.list_feedback("glyphs", **kw)
                assert e.value.field == field
        monkeypatch.setenv("SIMSEARCH_API_KEY", API_KEY)
        cfg = TrainConfig(name="glyphs", **NETWORK, epochs=15, init_from=v1,
                          data={"format": "collection", "address": server.address, "collection": "glyphs",
                                "label_field": "label", "split": "item", "feedback": True})
        task = _collection_task(cfg.data, cfg.val_fraction, cfg.seed)
        v2, metrics, _ = train_and_register(cfg, root=models, task=task, feedback=_collection_feedback(cfg.data, task),
                                            progress=False)
        # promoted through the gate: the held-out images join the collection (after training: v2 never saw them)
        # and are the gate's evaluation queries
        with Client(server.address, api_key=API_KEY, timeout=600) as client:
            client.upsert("glyphs", [f"held-{i}" for i in held], images=x[held][:, 0],
                          payloads=[{"label": int(y[i]), "split": "held-out"} for i in held])
            client.reindex("glyphs", v2, label_field="label", eval_filter={"split": "held-out"}, eval_size=len(held))
            gate = client.wait_reindex("glyphs", timeout=300)
            assert client.describe_collection("glyphs").encoder == (v2 if gate.state == "promoted" else v1)
    finally:
        server.stop()
    mined = metrics["feedback"]
    assert mined["events"] == len(fb_queries) + 1 and mined["vector_query"] == 1
    assert mined["used"] >= len(fb_queries) // 4 and mined["hard_negatives"] >= mined["used"]  # others: top-1 or none
    assert registry.checkpoint(v2, models)[1]["init_from"] == v1
    before, after = held_out(v1, models, x, y, items, held), held_out(v2, models, x, y, items, held)
    print(f"held-out P@1 {before['p@1']:.3f} -> {after['p@1']:.3f}, MAP@R {before['map@r']:.3f} -> {after['map@r']:.3f}")
    assert after["p@1"] >= before["p@1"] + 0.06 and after["map@r"] >= before["map@r"] + 0.01, (before, after)
    g = gate.decision
    print(f"gate: {gate.state}; P@1 {g['current']['p_at_1']:.3f} -> {g['candidate']['p_at_1']:.3f}, "
          f"MAP@R {g['current']['map_at_r']:.3f} -> {g['candidate']['map_at_r']:.3f} on {g['eval_queries']} held-out")
    assert gate.state == "promoted" and g["eval_queries"] == len(held), gate
    assert g["candidate"]["map_at_r"] > g["current"]["map_at_r"]
