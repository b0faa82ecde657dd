"""Hypothesis strategies for hostile requests to every RPC, and a raw sender.

Shared by tests/test_fuzz.py (a few hundred cases against an embedded server) and
scripts/fuzz.py (10,000+ against `simsearch serve` in a subprocess). Every case is sent as
bytes through `channel.unary_unary(path)` with no serializer, so truncated, flipped and
random bodies reach the server exactly as generated.

Field values come from the message descriptors (extreme ints, empty/huge/unicode strings,
NaN/inf floats), with domain-aware generators for the fields that matter (collection names,
ids, matrices whose headers may lie, raw inputs). Writes never name `KEEP`, the pre-made
collection whose data a run compares before and after; reads may.
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass

import grpc
import numpy as np
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import code_pb2
from hypothesis import strategies as st

from simsearch.protos.simsearch.v1 import collections_pb2, common_pb2, encoders_pb2, points_pb2

KEEP = "fuzz-keep"  # the pre-made collection: generated requests may read it, never write it
DIM = 8
KEEP_POINTS = 200
WRITE_NAMES = ("fz-a", "fz-b", "fz-c")  # collections the fuzzer may create, fill and drop
WRITES = frozenset({"CreateCollection", "DropCollection", "BuildIndex", "Upsert", "Delete", "SetPayload",
                    "CreatePayloadIndex", "DropPayloadIndex", "CreateAlias",
                    "SwitchAlias", "DeleteAlias"})
BAD_CODES = frozenset({"UNKNOWN", "INTERNAL"})
MAX_DETAILS = 320  # a status message quotes inputs by excerpt only; the longest legitimate ones are ~200
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


@dataclass(frozen=True)
class Rpc:
    service: str
    method: str
    request: type[Message]
    streaming: bool

    @property
    def name(self) -> str:
        return f"{self.service}/{self.method}"

    @property
    def path(self) -> str:
        return f"/simsearch.v1.{self.service}/{self.method}"

    @property
    def writes(self) -> bool:
        return self.method in WRITES


RPCS: tuple[Rpc, ...] = tuple(
    Rpc(service.name, m.name, GetMessageClass(m.input_type), m.client_streaming)
    for module, name in ((collections_pb2, "Collections"), (points_pb2, "Points"), (encoders_pb2, "Encoders"))
    for service in (module.DESCRIPTOR.services_by_name[name],)
    for m in service.methods
)
BY_NAME = {r.name: r for r in RPCS}


@dataclass(frozen=True)
class Case:
    rpc: Rpc
    bodies: tuple[bytes, ...]  # one for a unary call; the messages of a SearchStream call
    kind: str  # how it was made: message, truncated, flipped, appended, garbage, confused
    key: str = "valid"  # valid, wrong or missing API key

    def __repr__(self) -> str:  # Hypothesis prints failing cases: keep huge bodies out of the report
        sizes = ", ".join(f"{len(b):,}" for b in self.bodies[:4])
        return f"Case({self.rpc.name}, {self.kind}, key={self.key}, bodies=[{sizes}] bytes)"


# ---- values ----

INT32_EDGES = (0, 1, -1, 2, 3, 7, 8, 9, 63, 64, 65, 1024, 1025, 4096, 4097, 10_000, 10_001, 100_000, 100_001,
               1_000_000, 2**31 - 1, -(2**31))
INT64_EDGES = INT32_EDGES + (2**63 - 1, -(2**63), 2**32)
FLOAT_EDGES = (0.0, -0.0, 1.0, float("nan"), float("inf"), float("-inf"), 1e-45, 1e20, 3.4e38, -1e30)
HUGE = (257, 1025, 100_000)
SPECIAL_STRINGS = ("", " ", "\x00", "a\x00", "x" * 256, "🙂" * 256, "ü" * 300, "l2", "cosine", "dot",
                   "name@1", "name@latest", "name@x", "@", "../../etc", "%s%n{}", "\u202e", "\ufeff")


def ints(edges=INT32_EDGES, lo=-(2**31), hi=2**31 - 1) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(edges), st.integers(lo, hi))


def strings() -> st.SearchStrategy[str]:
    return st.one_of(st.text(max_size=16), st.sampled_from(SPECIAL_STRINGS),
                     st.builds(lambda c, n: c * n, st.sampled_from("x🙂é\x00"), st.sampled_from(HUGE)))


def names(write: bool) -> st.SearchStrategy[str]:
    """Collection names: the fuzzer's own, odd ones, and (for reads only) the pre-made one."""
    odd = strings().filter(lambda s: s != KEEP)
    return st.one_of(st.sampled_from(WRITE_NAMES), odd) if write else st.one_of(st.just(KEEP),
                                                                                 st.sampled_from(WRITE_NAMES), odd)


def ids() -> st.SearchStrategy[list[str]]:
    one = st.one_of(st.integers(0, KEEP_POINTS + 20).map(str), strings())
    special = st.sampled_from(("empty", "dup", "nul", "long", "4-byte", "many", "too-many"))
    return st.one_of(st.lists(one, max_size=12), special.map(_special_ids))


def _special_ids(kind: str) -> list[str]:
    return {
        "empty": [], "dup": ["1", "1"], "nul": ["a", "a\x00"], "long": ["1", "x" * 257],
        "4-byte": ["🙂" * 256, "🙂" * 257], "many": [str(i) for i in range(5000)],
        "too-many": [str(i) for i in range(100_001)],
    }[kind]


@st.composite
def matrices(draw, rows_max: int = 6) -> common_pb2.Matrix:
    """Honest or lying headers, with NaN/inf/huge/zero rows mixed in."""
    rows = draw(st.one_of(st.integers(0, rows_max), st.sampled_from((-1, 10_001, 100_001, 2**31 - 1))))
    cols = draw(st.one_of(st.just(DIM), st.integers(0, 16), st.sampled_from((-1, 4097, 2**31 - 1))))
    honest = 0 <= rows <= rows_max and 0 <= cols <= 16
    shape = draw(st.sampled_from(("honest", "short", "long", "empty"))) if honest else "lie"
    if shape == "honest":
        a = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal((rows, cols)).astype("<f4")
        if a.size and draw(st.booleans()):
            a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from(FLOAT_EDGES))
        if a.size and draw(st.integers(0, 9)) == 0:
            a[draw(st.integers(0, rows - 1))] = 0.0  # a zero row (cosine cannot normalise it)
        data = a.tobytes()
    elif shape == "short":
        data = bytes(max(0, rows * cols * 4 - draw(st.integers(1, 8))))
    elif shape == "long":
        data = bytes(rows * cols * 4 + draw(st.integers(1, 8)))
    elif shape == "empty":
        data = b""
    else:
        data = draw(st.binary(max_size=64))
    return common_pb2.Matrix(rows=rows, cols=cols, data=data)


def raw_inputs() -> st.SearchStrategy[common_pb2.RawInputs]:
    texts = st.lists(strings(), max_size=5).map(lambda t: common_pb2.RawInputs(texts=t))
    many = st.sampled_from((4097, 10)).map(lambda n: common_pb2.RawInputs(texts=["t"] * n))
    images = st.builds(lambda c, ch, h, w, px: common_pb2.RawInputs(images=common_pb2.ImageBatch(
        count=c, channels=ch, height=h, width=w, pixels=px)), ints(), ints(), ints(), ints(), st.binary(max_size=64))
    return st.one_of(st.just(common_pb2.RawInputs()), texts, many, images)


# ---- messages from descriptors ----

_SCALARS = {
    FieldDescriptor.TYPE_INT32: lambda: ints(),
    FieldDescriptor.TYPE_INT64: lambda: ints(INT64_EDGES, -(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_BOOL: st.booleans,
    FieldDescriptor.TYPE_STRING: strings,
    FieldDescriptor.TYPE_BYTES: lambda: st.binary(max_size=64),
    FieldDescriptor.TYPE_DOUBLE: lambda: st.one_of(st.sampled_from(FLOAT_EDGES), st.floats()),
    FieldDescriptor.TYPE_FLOAT: lambda: st.one_of(st.sampled_from(FLOAT_EDGES), st.floats(width=32)),
}


def _field(f: FieldDescriptor, write: bool, depth: int) -> st.SearchStrategy:
    """The strategy for one field: by meaning where it matters, else by type."""
    if f.name in ("collection", "name") and f.type == FieldDescriptor.TYPE_STRING:
        return names(write)
    if f.name == "ids":
        return ids()
    if f.name == "k":
        return st.one_of(st.integers(1, 20), ints())
    if f.message_type is not None:
        if f.message_type.full_name == "simsearch.v1.Matrix":
            return matrices()
        if f.message_type.full_name == "simsearch.v1.RawInputs":
            return raw_inputs()
        one = message(f.message_type, write, depth + 1)
        return st.lists(one, max_size=3) if f.is_repeated else one
    if f.type == FieldDescriptor.TYPE_ENUM:  # known values, and numbers no enum value has (proto3 keeps them)
        value = st.one_of(st.sampled_from([v.number for v in f.enum_type.values]), st.integers(-5, 50))
    else:
        value = _SCALARS[f.type]()
    return st.lists(value, max_size=4) if f.is_repeated else value


def message(desc: Descriptor, write: bool, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of `desc` with any subset of fields set to generated values."""
    cls = GetMessageClass(desc)
    if depth > 3:
        return st.just(cls())
    fields = {f.name: _field(f, write, depth) for f in desc.fields}
    return st.fixed_dictionaries({}, optional=fields).map(lambda kw: _build(cls, kw))


def _build(cls: type[Message], values: dict) -> Message:
    msg = cls()
    for name, value in values.items():
        f = cls.DESCRIPTOR.fields_by_name[name]
        if f.message_type is not None and not f.is_repeated:
            getattr(msg, name).CopyFrom(value)
        elif f.is_repeated:
            getattr(msg, name).extend(value)
        else:
            setattr(msg, name, value)
    return msg


@st.composite
def honest_matrix(draw, rows: int) -> common_pb2.Matrix:
    """rows x DIM of the right size, sometimes with one NaN/inf/huge/zero value."""
    a = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal((rows, DIM)).astype("<f4")
    if draw(st.integers(0, 3)) == 0:
        a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from(FLOAT_EDGES))
    return common_pb2.Matrix(rows=rows, cols=DIM, data=a.tobytes())


def _short_ids(max_size: int = 6) -> st.SearchStrategy[list[str]]:
    return st.lists(st.one_of(st.integers(0, KEEP_POINTS + 20).map(str), st.text(min_size=1, max_size=8)),
                    min_size=1, max_size=max_size, unique=True)


@st.composite
def _upsert(draw) -> points_pb2.UpsertRequest:
    batch = draw(_short_ids())
    return points_pb2.UpsertRequest(collection=draw(st.sampled_from(WRITE_NAMES)), ids=batch,
                                    vectors=draw(honest_matrix(len(batch))))


@st.composite
def _search(draw) -> points_pb2.SearchRequest:
    params = points_pb2.SearchParams(
        leaves_to_search=draw(st.sampled_from((0, 0, 1, 5))), oversample=draw(st.sampled_from((0, 0, 1, 64))),
        exact=draw(st.booleans()), timeout_ms=draw(st.sampled_from((0, 0, 1, 5000))),
        allow_partial=draw(st.booleans()), no_cache=draw(st.booleans()))
    return points_pb2.SearchRequest(collection=draw(st.sampled_from((KEEP, KEEP) + WRITE_NAMES)),
                                    k=draw(st.integers(1, 50)), queries=draw(honest_matrix(draw(st.integers(1, 4)))),
                                    params=params)


# Mostly valid requests, so the fuzz also reaches the paths behind validation.
PLAUSIBLE: dict[str, st.SearchStrategy[Message]] = {
    "CreateCollection": st.builds(
        lambda name, dim, metric, shards: collections_pb2.CreateCollectionRequest(name=name, dim=dim, metric=metric,
                                                                                  shards=shards),
        st.sampled_from(WRITE_NAMES), st.sampled_from((DIM, DIM, 1, 64)), st.sampled_from(("", "l2", "dot", "cosine")),
        st.integers(0, 4)),
    "DropCollection": st.sampled_from(WRITE_NAMES).map(lambda n: collections_pb2.DropCollectionRequest(name=n)),
    "DescribeCollection": st.sampled_from((KEEP,) + WRITE_NAMES).map(
        lambda n: collections_pb2.DescribeCollectionRequest(name=n)),
    "BuildIndex": st.sampled_from(WRITE_NAMES).map(lambda n: collections_pb2.BuildIndexRequest(name=n, wait=True)),
    "Upsert": _upsert(),
    "Delete": st.builds(lambda n, i: points_pb2.DeleteRequest(collection=n, ids=i), st.sampled_from(WRITE_NAMES),
                        _short_ids()),
    "Get": st.builds(lambda n, i: points_pb2.GetRequest(collection=n, ids=i), st.sampled_from((KEEP,) + WRITE_NAMES),
                     _short_ids()),
    "Search": _search(),
    "SearchStream": _search(),
    "Embed": st.builds(lambda m, t: encoders_pb2.EmbedRequest(model=m, inputs=common_pb2.RawInputs(texts=t)),
                       st.sampled_from(("minilm", "none@1", "")), st.lists(st.text(max_size=8), max_size=3)),
}


def requests(rpc: Rpc) -> st.SearchStrategy[Message]:
    """Plausible-to-hostile requests for `rpc`; writes always target the fuzzer's own names."""
    generic = message(rpc.request.DESCRIPTOR, rpc.writes)
    return st.one_of(PLAUSIBLE[rpc.method], generic) if rpc.method in PLAUSIBLE else generic


# ---- bodies ----


@st.composite
def _mutated(draw, body: bytes) -> tuple[str, bytes]:
    how = draw(st.sampled_from(("message", "message", "truncated", "flipped", "appended")))
    if how == "truncated" and body:
        return how, body[:draw(st.integers(0, len(body) - 1))]
    if how == "flipped" and body:
        b = bytearray(body)
        for _ in range(draw(st.integers(1, 4))):
            b[draw(st.integers(0, len(b) - 1))] ^= draw(st.integers(1, 255))
        return how, bytes(b)
    if how == "appended":
        return how, body + draw(st.binary(min_size=1, max_size=16))
    return "message", body


@st.composite
def cases(draw, rpcs: tuple[Rpc, ...] = RPCS) -> Case:
    """One call: an RPC, its body (or a stream's bodies) and the key it is sent with."""
    rpc = draw(st.sampled_from(rpcs))
    source = draw(st.sampled_from(("own", "own", "own", "own", "garbage", "confused")))
    key = draw(st.sampled_from(("valid",) * 18 + ("wrong", "missing")))
    bodies = []
    for _ in range(draw(st.integers(1, 4)) if rpc.streaming else 1):
        if source == "garbage":
            kind, body = "garbage", draw(st.binary(max_size=256))
        elif source == "confused":  # another RPC's body: written with write-safe names, whatever the target
            other = draw(st.sampled_from(RPCS))
            kind, body = "confused", draw(message(other.request.DESCRIPTOR, write=True)).SerializeToString()
        else:
            kind, body = draw(_mutated(draw(requests(rpc)).SerializeToString()))
        bodies.append(body)
    return Case(rpc, tuple(bodies), kind, key)


# ---- the amplification cases measured in issue 14: each must be refused before any work ----


def amplification_cases() -> list[tuple[str, Case, int]]:
    """(label, case, concurrent copies)."""
    get = BY_NAME["Points/Get"]
    search = BY_NAME["Points/Search"]
    huge_id = points_pb2.GetRequest(collection=KEEP, ids=[str(i) for i in range(99_999)] + ["x" * 10_000_000])
    # 114 KB: a 100,000-character id among 2,500 short ones (numpy would pad all 2,501 to 100,000)
    long_id = points_pb2.GetRequest(collection=KEEP, ids=[str(i) for i in range(2_500)] + ["y" * 100_000])
    q = np.random.default_rng(0).standard_normal((10_000, DIM)).astype("<f4")
    wide = points_pb2.SearchRequest(collection=KEEP, k=1024, queries=common_pb2.Matrix(
        rows=len(q), cols=DIM, data=q.tobytes()), params=points_pb2.SearchParams(exact=True, no_cache=True))
    return [
        ("Get: 99,999 ids + one 10 MB id", Case(get, (huge_id.SerializeToString(),), "amplification"), 1),
        (f"Get: one {len(long_id.SerializeToString()) // 1000} KB request with a 100,000-char id, x4 at once",
         Case(get, (long_id.SerializeToString(),), "amplification"), 4),
        ("Search: k=1024 x 10,000 queries", Case(search, (wide.SerializeToString(),), "amplification"), 1),
        ("SearchStream: k=1024 x 10,000 queries in one message",
         Case(BY_NAME["Points/SearchStream"], (wide.SerializeToString(),), "amplification"), 1),
    ]


def answers(outcomes: list[Outcome]) -> set[str]:
    """The codes a case's requests got: a stream's per-message statuses, else the call's."""
    in_band = {o.code for o in outcomes if o.in_band}
    return in_band or {o.code for o in outcomes}


# ---- sending ----


@dataclass(frozen=True)
class Outcome:
    code: str  # the status code's name ("OK", "INVALID_ARGUMENT", ...)
    details: str  # the status message (truncated to 2,000 characters)
    in_band: bool = False  # a SearchStream message's own status, not the call's


def _metadata(key: str, api_key: str) -> tuple[tuple[str, str], ...]:
    return {"valid": (("x-api-key", api_key),), "wrong": (("x-api-key", api_key + "x"),), "missing": ()}[key]


def send(channel: grpc.Channel, case: Case, api_key: str, timeout: float = 60.0) -> list[Outcome]:
    """Send a case's bytes as they are; the call's status (and, for a stream, each message's)."""
    md = _metadata(case.key, api_key)
    out: list[Outcome] = []
    try:
        if case.rpc.streaming:
            call = channel.stream_stream(case.rpc.path, request_serializer=None, response_deserializer=None)
            for raw in call(iter(case.bodies), metadata=md, timeout=timeout):
                reply = points_pb2.SearchStreamResponse.FromString(raw)
                if reply.HasField("error"):
                    out.append(Outcome(code_pb2.Code.Name(reply.error.code), reply.error.message[:2000], True))
                else:
                    out.append(Outcome("OK", "", True))
        else:
            call = channel.unary_unary(case.rpc.path, request_serializer=None, response_deserializer=None)
            call(case.bodies[0], metadata=md, timeout=timeout)
        out.append(Outcome("OK", ""))
    except grpc.RpcError as e:
        out.append(Outcome(e.code().name, (e.details() or "")[:2000]))
    return out


def send_concurrently(channel: grpc.Channel, case: Case, api_key: str, copies: int) -> list[Outcome]:
    with concurrent.futures.ThreadPoolExecutor(copies) as pool:
        results = list(pool.map(lambda _: send(channel, case, api_key), range(copies)))
    return [o for r in results for o in r]


# ---- the pre-made collection ----


def keep_vectors() -> np.ndarray:
    return np.random.default_rng(7).standard_normal((KEEP_POINTS, DIM)).astype(np.float32)


def prepare_keep(client) -> None:
    """The collection generated requests may read but never write (an SDK `Client`)."""
    client.create_collection(KEEP, DIM, metric="l2", shards=2)
    client.upsert(KEEP, np.arange(KEEP_POINTS), keep_vectors())


def snapshot(client) -> tuple:
    """What must not change: the point count, exact top-5 of a few queries, a sample of vectors."""
    info = client.describe_collection(KEEP)
    found = client.search(KEEP, keep_vectors()[:5] + 0.01, 5, exact=True, no_cache=True)
    got = client.get(KEEP, [str(i) for i in range(0, KEEP_POINTS + 20, 10)])
    return (info.points, found.ids.tolist(), found.scores.tolist(), got.ids, got.missing,
            got.vectors.tobytes())
