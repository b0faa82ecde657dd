"""The committed generated code matches the .proto files; errors survive the trip through a status."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from simsearch.protos import convert, generate
from simsearch.contract.errors import InvalidArgument, ResourceExhausted, Unavailable
from simsearch.protos.status import error_from_status_proto, status_proto
from simsearch.protos.simsearch.v1 import points_pb2
from simsearch.router.replies import Hits, SearchReply, decode_hits, encode_hits


def test_generated_code_is_fresh(tmp_path):
    written = generate.generate(tmp_path)
    assert written, "no generated files"
    stale = [p.name for p in written if p.read_bytes() != (generate.PROTO_DIR / p.name).read_bytes()]
    assert not stale, f"regenerate with `python -m simsearch.protos.generate`: {stale} differ"
    committed = {p.name for p in generate.PROTO_DIR.iterdir() if p.name.endswith(generate.GENERATED_SUFFIXES)}
    assert committed == {p.name for p in written}, "a generated file has no .proto (or the reverse)"


def test_errors_keep_field_and_retry_hint_across_processes():
    err = pickle.loads(pickle.dumps(InvalidArgument("k: must be in [1, 1024], got 0", field="k")))
    assert isinstance(err, InvalidArgument) and err.field == "k" and "got 0" in err.message
    quota = pickle.loads(pickle.dumps(ResourceExhausted("slow down", retry_after_s=1.5)))
    assert quota.retry_after_s == 1.5


def test_a_partial_write_detail_survives_pickling_and_the_status_proto():
    info = {"reason": "PARTIAL_WRITE", "applied_shards": "0,2", "failed_shards": "1"}
    err = Unavailable("applied on shard(s) 0, 2 and not on 1", retry_after_s=1.0, info=info)
    assert pickle.loads(pickle.dumps(err)).info == info
    back = error_from_status_proto(status_proto(err))
    assert isinstance(back, Unavailable) and back.info == info and back.retry_after_s == 1.0
    assert error_from_status_proto(status_proto(Unavailable("plain"))).info == {}


@pytest.mark.parametrize("counts", [[], [0], [3, 0, 2], [10] * 50])
def test_hits_survive_the_cache_codec_and_the_wire(counts):
    rng = np.random.default_rng(len(counts))
    m = sum(counts)
    hits = Hits(np.asarray(counts, np.int32), [f"id-{i}-ü" for i in range(m)], rng.random(m).astype(np.float32))
    back = decode_hits(encode_hits(hits))
    assert back.counts.tolist() == counts and back.ids == hits.ids and np.array_equal(back.scores, hits.scores)
    reply = SearchReply(back, generation=7, cached=True, timings_s={"cache": 0.001, "total": 0.002})
    wire = points_pb2.SearchResponse.FromString(convert.search_response(reply).SerializeToString())
    assert list(wire.counts) == counts and list(wire.ids) == hits.ids and wire.generation == 7 and wire.cached
    assert np.array_equal(np.asarray(wire.scores, np.float32), hits.scores)
    assert {t.stage: t.ms for t in wire.timings} == pytest.approx({"cache": 1.0, "total": 2.0})
