"""The committed generated code matches the .proto files; errors survive the trip through a status."""

from __future__ import annotations

import pickle

from simsearch.protos import generate
from simsearch.protos.errors import InvalidArgument, ResourceExhausted


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
