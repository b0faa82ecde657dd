"""The committed generated code matches the .proto files; errors survive the trip through a status."""

from __future__ import annotations

import pickle

import pytest

from simsearch.protos import convert, generate
from simsearch.contract.errors import InvalidArgument, ResourceExhausted
from simsearch.protos.simsearch.v1 import points_pb2


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


@pytest.mark.parametrize("n", [0, 1, 42, 127, 128, 16_383, 16_384, 300_000])
def test_wrapping_serialized_bytes_is_what_protobuf_writes(n):
    found = points_pb2.SearchResponse(ids=["x" * n] if n else [], counts=[1] if n else [])
    own = points_pb2.SearchResponse(cached=True, generation=7)
    own.timings.add(stage="total", ms=0.5)
    body = found.SerializeToString() + own.SerializeToString()  # concatenated messages merge
    merged = points_pb2.SearchResponse()
    merged.CopyFrom(found)
    merged.MergeFrom(own)
    field = points_pb2.SearchStreamResponse.DESCRIPTOR.fields_by_name["result"].number
    wrapped = convert.length_delimited(field, body)
    assert wrapped == points_pb2.SearchStreamResponse(result=merged).SerializeToString()
    assert points_pb2.SearchStreamResponse.FromString(wrapped).result == merged
    with pytest.raises(ValueError, match="field_number"):
        convert.length_delimited(16, body)
