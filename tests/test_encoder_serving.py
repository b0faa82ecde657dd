"""Encoder-bound collections end to end over gRPC: a registered image encoder and a text
encoder (MiniLM + adapter) served by Ray actor replicas; raw inputs in, neighbours out;
vectors from another encoder version refused; bad raw inputs refused by name, nothing lost."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import torch
from conftest import API_KEY, start_server

from simsearch import FailedPrecondition, InvalidArgument, NotFound
from simsearch.client import Client
from simsearch.encoder import TrainConfig, load, registry
from simsearch.encoder.data import digits_task
from simsearch.encoder.model import build_encoder
from simsearch.encoder.pipeline import train_and_register

pytestmark = pytest.mark.integration  # a real server and encoder replicas in Ray actors

CFG = TrainConfig(name="digits-cnn", dataset="digits", backbone="cnn", loss="proxy-anchor", width=8,
                  embedding_dim=32, epochs=2, batch_size=128, m_per_class=8, augment=False, num_threads=2)
TEXTS = ["a large cat with a mane that lives in Africa", "a machine for flying through the air with wings",
         "the frozen form of water", "a building where books are kept and lent",
         "a tool with a heavy head for driving nails", "a sweet yellow fruit that monkeys like"]


@pytest.fixture(scope="module")
def digits():
    return digits_task(CFG)


@pytest.fixture(scope="module")
def served(tmp_path_factory, digits, ray_cluster):  # encoder replicas are Ray actors
    data = tmp_path_factory.mktemp("enc-data")
    models = data / "models"  # where `simsearch serve --data-dir` looks
    train_and_register(CFG, root=models, task=digits, progress=False)  # digits-cnn@1
    train_and_register(CFG.replace(seed=1), root=models, task=digits, progress=False)  # digits-cnn@2
    # An untrained adapter is the identity, i.e. frozen MiniLM: enough to test text serving.
    adapter = build_encoder(TrainConfig(dataset="text-pairs", backbone="minilm", embedding_dim=384), (384,))
    registry.save(adapter, name="minilm-id", kind="text", input_shape=(384,), config={}, fingerprint="untrained",
                  metrics={}, root=models)
    server = start_server(data)
    # generous deadline: the first raw-input call waits for replica start-up (torch, MiniLM)
    client = Client(server.address, api_key=API_KEY, timeout=600)
    yield server, client, models
    client.close()
    server.stop()


def test_models_are_listed(served):
    _, client, _ = served
    refs = {m["ref"]: m for m in client.list_models()}
    assert set(refs) == {"digits-cnn@1", "digits-cnn@2", "minilm-id@1"}
    assert refs["digits-cnn@2"]["input_shape"] == [1, 8, 8] and refs["digits-cnn@2"]["embedding_dim"] == 32
    assert "p@1" in refs["digits-cnn@1"]["metrics"]


def test_image_collection_end_to_end(served, digits):
    _, client, models = served
    info = client.create_collection("digits", encoder="digits-cnn")  # latest version
    assert (info.encoder, info.dim, info.metric) == ("digits-cnn@2", 32, "cosine")
    ref_x = digits.test.ref_x[:, 0]  # (N, 8, 8) uint8
    assert client.upsert("digits", np.arange(len(ref_x)), images=ref_x) == len(ref_x)
    res = client.search("digits", images=digits.test.query_x, k=5)
    # congruence: the same artefact loaded locally + exact cosine search gives the same top-1
    local = load("digits-cnn@2", models)
    q, r = local.embed(digits.test.query_x), local.embed(ref_x)
    want = np.argmax(q @ r.T, axis=1)
    assert (res.ids[:, 0].astype(int) == want).mean() > 0.99
    p_at_1 = (digits.test.ref_y[res.ids[:, 0].astype(int)] == digits.test.query_y).mean()
    assert p_at_1 > 0.8
    emb = client.embed("digits-cnn@2", images=digits.test.query_x[:10])
    assert emb.model == "digits-cnn@2"
    np.testing.assert_allclose(emb.vectors, q[:10], atol=1e-5)
    # vectors embedded by the bound version are accepted, another version's are refused
    ok = client.search("digits", emb.vectors, k=1, encoder=emb.model)
    assert (ok.ids[:, 0] == res.ids[:10, 0]).all()
    old = client.embed("digits-cnn@1", images=digits.test.query_x[:10])
    with pytest.raises(FailedPrecondition, match="digits-cnn@1.*bound to digits-cnn@2") as e:
        client.search("digits", old.vectors, k=1, encoder=old.model)
    assert e.value.code == "FAILED_PRECONDITION"
    with pytest.raises(FailedPrecondition):
        client.upsert("digits", ["x"], old.vectors[:1], encoder=old.model)
    assert client.describe_collection("digits").points == len(ref_x)
    # the raw inputs are kept (issue 19: to re-embed with another version), exactly as sent
    got = client.get("digits", ["3", "0", "no-such"], with_inputs=True)
    assert got.ids == ["3", "0"] and got.missing == ["no-such"] and got.texts is None
    np.testing.assert_array_equal(got.images, ref_x[[3, 0]][:, None])
    client.upsert("digits", ["3"], q[:1], encoder="digits-cnn@2")  # now a plain vector: its kept input goes
    client.delete("digits", ["0"])
    after = client.get("digits", ["0", "1", "3"], with_inputs=True)
    assert after.ids == ["1", "3"] and after.without_inputs == ["3"]
    np.testing.assert_array_equal(after.images[0], ref_x[1][None])
    assert not after.images[1].any()
    with pytest.raises(FailedPrecondition, match="not bound to an encoder") as e:
        client.create_collection("no-inputs", dim=4)
        client.get("no-inputs", ["x"], with_inputs=True)
    assert e.value.field == "with_inputs"


def test_text_collection_end_to_end(served):
    _, client, _ = served
    client.create_collection("defs", encoder="minilm-id@1", shards=2)
    client.upsert("defs", [f"d{i}" for i in range(len(TEXTS))], texts=TEXTS)
    res = client.search("defs", texts=["ice", "a hammer", "lion", "an aeroplane"], k=2)
    assert list(res.ids[:, 0]) == ["d2", "d4", "d0", "d1"]
    got = client.get("defs", ["d4", "d0"], with_inputs=True)
    assert got.texts == [TEXTS[4], TEXTS[0]] and got.images is None


def test_bad_raw_inputs_are_refused_by_name_and_lose_nothing(served, digits):
    _, client, _ = served
    if "digits" not in client.list_collections():
        client.create_collection("digits", encoder="digits-cnn@2")
        client.upsert("digits", np.arange(50), images=digits.test.ref_x[:50, 0])
    before = client.describe_collection("digits").points
    cases = [
        (lambda: client.search("digits", images=np.zeros((2, 28, 28), np.uint8)), "inputs.images.shape", "1x8x8"),
        (lambda: client.search("digits", texts=["a digit"]), "inputs.texts", "images"),
        (lambda: client.upsert("digits", ["a", "b"], images=np.zeros((2, 9, 8), np.uint8)), "inputs.images.shape", ""),
        (lambda: client.search("defs", texts=["fine", "  "]), "inputs.texts[1]", "empty"),
        (lambda: client.search("defs", texts=["x" * 9000]), "inputs.texts[0]", "8192"),
        (lambda: client.embed("digits-cnn", texts=["x"]), "inputs.texts", "images"),
        (lambda: client.create_collection("bad", dim=16, encoder="digits-cnn"), "dim", "32"),
        (lambda: client.create_collection("bad", encoder="digits-cnn@x"), "encoder", "version"),
    ]
    for call, field, words in cases:
        with pytest.raises(InvalidArgument) as e:
            call()
        assert e.value.field == field and words in str(e.value), (field, str(e.value))
    with pytest.raises(NotFound):
        client.create_collection("bad", encoder="no-such-model")
    with pytest.raises(NotFound):
        client.embed("no-such-model", texts=["x"])
    client.create_collection("plain", dim=32)
    with pytest.raises(FailedPrecondition, match="not bound to an encoder"):
        client.search("plain", texts=["x"])
    assert "bad" not in client.list_collections()
    assert client.describe_collection("digits").points == before


def test_train_on_what_a_collection_stores(served, digits, tmp_path):
    """`simsearch train` with data.format collection: the kept raw images of a running server's collection,
    labelled by a payload field, train a new encoder (issue 19, item 1); points without a label are left out."""
    import json
    import subprocess
    import sys

    from conftest import serve_env

    server, client, _ = served
    client.create_collection("labelled", encoder="digits-cnn@2")
    x, y = digits.test.ref_x[:, 0], digits.test.ref_y
    payloads = [{"digit": int(label)} if i % 10 else {} for i, label in enumerate(y)]  # every 10th unlabelled
    client.upsert("labelled", np.arange(len(x)), images=x, payloads=payloads)
    config = tmp_path / "from-collection.json"
    config.write_text(json.dumps({**{k: v for k, v in CFG.to_dict().items() if k not in ("dataset", "data")},
                                  "name": "digits-v2", "data": {"format": "collection", "address": server.address,
                                                                "collection": "labelled", "label_field": "digit",
                                                                "split": "item"}}))
    out = subprocess.run([sys.executable, "-m", "simsearch", "train", str(config), "--models-dir", str(tmp_path)],
                         env={**serve_env(), "SIMSEARCH_API_KEY": API_KEY}, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout[out.stdout.index("{\n"):])
    assert result["model"] == "digits-v2@1" and "baseline" in result["metrics"]
    manifest = json.loads((tmp_path / "digits-v2" / "1" / "manifest.json").read_text())
    assert manifest["input_shape"] == [1, 8, 8]
    wrong = subprocess.run([sys.executable, "-m", "simsearch", "train", str(config), "--models-dir", str(tmp_path)],
                           env={**serve_env(), "SIMSEARCH_API_KEY": "wrong"}, capture_output=True, text=True,
                           timeout=600)
    assert wrong.returncode != 0 and "labelled" in wrong.stderr and "Traceback" not in wrong.stderr


def test_feedback_is_recorded_in_order_and_checked_before_anything_is_kept(served, digits):
    """Issue 19, item 5: a Feedback event (the query as one image or one vector, the ids shown, the one
    chosen) is appended durably to the collection's log; a bad one is refused naming its field."""
    from simsearch.router.feedback_store import FeedbackStore

    _, client, models = served
    if "digits" not in client.list_collections():
        client.create_collection("digits", encoder="digits-cnn@2")
    image = digits.test.query_x[0, 0]  # (8, 8) uint8
    first = client.feedback("digits", image=image, shown=["7", "3", "9"], chosen="3")
    second = client.feedback("digits", np.full(32, 0.1, np.float32), shown=[4], chosen="")
    assert second == first + 1
    for call, field in [
        (lambda: client.feedback("digits", image=image, shown=["1", "2"], chosen="5"), "chosen"),
        (lambda: client.feedback("digits", np.ones(31, np.float32), shown=["1"]), "query"),
        (lambda: client.feedback("digits", image=np.zeros((9, 9), np.uint8), shown=["1"]), "inputs.images.shape"),
        (lambda: client.feedback("digits", shown=["1"]), "query"),
        (lambda: client.feedback("digits", np.ones(32, np.float32), shown=[]), "shown"),
    ]:
        with pytest.raises(InvalidArgument) as e:
            call()
        assert e.value.field == field, (field, e.value)
    (path,) = (models.parent / "tenants" / "default").glob("digits-*/feedback.sqlite")
    log = FeedbackStore(path.parent)
    events = [e for e in log.events() if e.seq >= first]
    log.close()
    assert [(e.kind, e.shown, e.chosen) for e in events] == [("input", ["7", "3", "9"], "3"), ("vector", ["4"], "")]
    from simsearch.protos import convert

    kept = convert.decode_inputs([events[0].query]).images
    assert np.frombuffer(kept.pixels, np.uint8).reshape(8, 8).tolist() == image.tolist()
    np.testing.assert_array_equal(np.frombuffer(events[1].query, np.float32), np.full(32, 0.1, np.float32))
