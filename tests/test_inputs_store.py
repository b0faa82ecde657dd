"""Kept raw inputs (issue 19, item 2): the codec gives back exactly what a request carried, the store is
private, durable across a reopen, replaces and deletes by id."""

from __future__ import annotations

import stat

import numpy as np

from simsearch.protos import convert
from simsearch.protos.simsearch.v1 import common_pb2
from simsearch.router.inputs_store import InputStore


def _images(n: int) -> np.ndarray:
    img = np.zeros((n, 1, 16, 16), np.uint8)
    img[:, :, 4:12, 6:10] = np.arange(1, n + 1, dtype=np.uint8)[:, None, None, None]  # a bar, its value per image
    return img


def test_the_codec_round_trips_texts_and_images_and_compresses_images():
    texts = common_pb2.RawInputs(texts=["a definition", "ünïcödé", "x" * 500])
    assert list(convert.decode_inputs(convert.encode_inputs(texts)).texts) == list(texts.texts)
    img = _images(5)
    raw = common_pb2.RawInputs(images=common_pb2.ImageBatch(count=5, channels=1, height=16, width=16,
                                                            pixels=img.tobytes()))
    blobs = convert.encode_inputs(raw)
    assert len(blobs) == 5 and all(len(b) < 16 * 16 for b in blobs)  # compressed
    back = convert.decode_inputs([blobs[3], None, blobs[0]]).images
    pixels = np.frombuffer(back.pixels, np.uint8).reshape(back.count, back.channels, back.height, back.width)
    np.testing.assert_array_equal(pixels[[0, 2]], img[[3, 0]])
    assert not pixels[1].any()  # no stored input: zero pixels


def test_the_store_is_private_durable_and_keyed_by_id(tmp_path):
    blobs = convert.encode_inputs(common_pb2.RawInputs(texts=["one", "two", "three"]))
    store = InputStore(tmp_path)
    assert stat.S_IMODE((tmp_path / "inputs.sqlite").stat().st_mode) == 0o600
    store.put(["a", "b", "c"], blobs)
    store.put(["b"], convert.encode_inputs(common_pb2.RawInputs(texts=["two again"])))  # replaced
    store.delete(["c", "not-there"])
    total = store.stored_bytes()
    store.close()
    again = InputStore(tmp_path)
    got = again.get(["c", "b", "a", "zz"])
    assert got[0] is None and got[3] is None
    assert list(convert.decode_inputs(got[1:3]).texts) == ["two again", "one"]
    assert again.stored_bytes() == total > 0
    many = [f"id-{i}" for i in range(1200)]  # more ids than one statement binds
    again.put(many, convert.encode_inputs(common_pb2.RawInputs(texts=many)))
    assert list(convert.decode_inputs(again.get(many)).texts) == many
    again.close()
