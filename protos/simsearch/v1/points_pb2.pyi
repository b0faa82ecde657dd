from google.rpc import status_pb2 as _status_pb2
from simsearch.protos.simsearch.v1 import common_pb2 as _common_pb2
from simsearch.protos.simsearch.v1 import filter_pb2 as _filter_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "ids", "vectors", "inputs", "encoder", "payloads")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    vectors: _common_pb2.Matrix
    inputs: _common_pb2.RawInputs
    encoder: str
    payloads: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., vectors: _Optional[_Union[_common_pb2.Matrix, _Mapping]] = ..., inputs: _Optional[_Union[_common_pb2.RawInputs, _Mapping]] = ..., encoder: _Optional[str] = ..., payloads: _Optional[_Iterable[str]] = ...) -> None: ...

class UpsertResponse(_message.Message):
    __slots__ = ("upserted", "generation")
    UPSERTED_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    upserted: int
    generation: int
    def __init__(self, upserted: _Optional[int] = ..., generation: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("collection", "ids", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    filter: _filter_pb2.Filter
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[_filter_pb2.Filter, _Mapping]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted", "generation")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    generation: int
    def __init__(self, deleted: _Optional[int] = ..., generation: _Optional[int] = ...) -> None: ...

class SetPayloadRequest(_message.Message):
    __slots__ = ("collection", "ids", "payload", "delete_keys", "replace")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DELETE_KEYS_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    payload: str
    delete_keys: _containers.RepeatedScalarFieldContainer[str]
    replace: bool
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., payload: _Optional[str] = ..., delete_keys: _Optional[_Iterable[str]] = ..., replace: _Optional[bool] = ...) -> None: ...

class SetPayloadResponse(_message.Message):
    __slots__ = ("updated", "generation")
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    updated: int
    generation: int
    def __init__(self, updated: _Optional[int] = ..., generation: _Optional[int] = ...) -> None: ...

class ScrollRequest(_message.Message):
    __slots__ = ("collection", "filter", "limit", "cursor", "with_vectors", "with_payload")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTORS_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: _filter_pb2.Filter
    limit: int
    cursor: str
    with_vectors: bool
    with_payload: bool
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[_filter_pb2.Filter, _Mapping]] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ..., with_vectors: _Optional[bool] = ..., with_payload: _Optional[bool] = ...) -> None: ...

class ScrollResponse(_message.Message):
    __slots__ = ("ids", "vectors", "payloads", "next_cursor")
    IDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    vectors: _common_pb2.Matrix
    payloads: _containers.RepeatedScalarFieldContainer[str]
    next_cursor: str
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., vectors: _Optional[_Union[_common_pb2.Matrix, _Mapping]] = ..., payloads: _Optional[_Iterable[str]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("collection", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: _filter_pb2.Filter
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[_filter_pb2.Filter, _Mapping]] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("collection", "ids", "with_inputs")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    WITH_INPUTS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    with_inputs: bool
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., with_inputs: _Optional[bool] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("ids", "vectors", "missing", "payloads", "inputs", "without_inputs")
    IDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    WITHOUT_INPUTS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    vectors: _common_pb2.Matrix
    missing: _containers.RepeatedScalarFieldContainer[str]
    payloads: _containers.RepeatedScalarFieldContainer[str]
    inputs: _common_pb2.RawInputs
    without_inputs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., vectors: _Optional[_Union[_common_pb2.Matrix, _Mapping]] = ..., missing: _Optional[_Iterable[str]] = ..., payloads: _Optional[_Iterable[str]] = ..., inputs: _Optional[_Union[_common_pb2.RawInputs, _Mapping]] = ..., without_inputs: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchParams(_message.Message):
    __slots__ = ("leaves_to_search", "oversample", "exact", "timeout_ms", "allow_partial", "no_cache", "with_payload", "payload_fields", "target_recall")
    LEAVES_TO_SEARCH_FIELD_NUMBER: _ClassVar[int]
    OVERSAMPLE_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELDS_FIELD_NUMBER: _ClassVar[int]
    TARGET_RECALL_FIELD_NUMBER: _ClassVar[int]
    leaves_to_search: int
    oversample: int
    exact: bool
    timeout_ms: int
    allow_partial: bool
    no_cache: bool
    with_payload: bool
    payload_fields: _containers.RepeatedScalarFieldContainer[str]
    target_recall: float
    def __init__(self, leaves_to_search: _Optional[int] = ..., oversample: _Optional[int] = ..., exact: _Optional[bool] = ..., timeout_ms: _Optional[int] = ..., allow_partial: _Optional[bool] = ..., no_cache: _Optional[bool] = ..., with_payload: _Optional[bool] = ..., payload_fields: _Optional[_Iterable[str]] = ..., target_recall: _Optional[float] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "queries", "k", "params", "inputs", "encoder", "filter")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    collection: str
    queries: _common_pb2.Matrix
    k: int
    params: SearchParams
    inputs: _common_pb2.RawInputs
    encoder: str
    filter: _filter_pb2.Filter
    def __init__(self, collection: _Optional[str] = ..., queries: _Optional[_Union[_common_pb2.Matrix, _Mapping]] = ..., k: _Optional[int] = ..., params: _Optional[_Union[SearchParams, _Mapping]] = ..., inputs: _Optional[_Union[_common_pb2.RawInputs, _Mapping]] = ..., encoder: _Optional[str] = ..., filter: _Optional[_Union[_filter_pb2.Filter, _Mapping]] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("stage", "ms")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    MS_FIELD_NUMBER: _ClassVar[int]
    stage: str
    ms: float
    def __init__(self, stage: _Optional[str] = ..., ms: _Optional[float] = ...) -> None: ...

class SearchStreamResponse(_message.Message):
    __slots__ = ("result", "error")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    result: SearchResponse
    error: _status_pb2.Status
    def __init__(self, result: _Optional[_Union[SearchResponse, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("counts", "ids", "scores", "timings", "missing_shards", "partial", "cached", "generation", "payloads", "shard_paths", "unindexed_fields")
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    CACHED_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    SHARD_PATHS_FIELD_NUMBER: _ClassVar[int]
    UNINDEXED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedScalarFieldContainer[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    scores: _containers.RepeatedScalarFieldContainer[float]
    timings: _containers.RepeatedCompositeFieldContainer[StageTiming]
    missing_shards: _containers.RepeatedScalarFieldContainer[int]
    partial: bool
    cached: bool
    generation: int
    payloads: _containers.RepeatedScalarFieldContainer[str]
    shard_paths: _containers.RepeatedScalarFieldContainer[str]
    unindexed_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, counts: _Optional[_Iterable[int]] = ..., ids: _Optional[_Iterable[str]] = ..., scores: _Optional[_Iterable[float]] = ..., timings: _Optional[_Iterable[_Union[StageTiming, _Mapping]]] = ..., missing_shards: _Optional[_Iterable[int]] = ..., partial: _Optional[bool] = ..., cached: _Optional[bool] = ..., generation: _Optional[int] = ..., payloads: _Optional[_Iterable[str]] = ..., shard_paths: _Optional[_Iterable[str]] = ..., unindexed_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class FeedbackRequest(_message.Message):
    __slots__ = ("collection", "query", "inputs", "shown", "chosen")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    SHOWN_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    collection: str
    query: _common_pb2.Matrix
    inputs: _common_pb2.RawInputs
    shown: _containers.RepeatedScalarFieldContainer[str]
    chosen: str
    def __init__(self, collection: _Optional[str] = ..., query: _Optional[_Union[_common_pb2.Matrix, _Mapping]] = ..., inputs: _Optional[_Union[_common_pb2.RawInputs, _Mapping]] = ..., shown: _Optional[_Iterable[str]] = ..., chosen: _Optional[str] = ...) -> None: ...

class FeedbackResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: int
    def __init__(self, event: _Optional[int] = ...) -> None: ...

class ListFeedbackRequest(_message.Message):
    __slots__ = ("collection", "after", "limit")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    after: int
    limit: int
    def __init__(self, collection: _Optional[str] = ..., after: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class FeedbackEvent(_message.Message):
    __slots__ = ("seq", "at", "query", "inputs", "shown", "chosen")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    SHOWN_FIELD_NUMBER: _ClassVar[int]
    CHOSEN_FIELD_NUMBER: _ClassVar[int]
    seq: int
    at: float
    query: _common_pb2.Matrix
    inputs: _common_pb2.RawInputs
    shown: _containers.RepeatedScalarFieldContainer[str]
    chosen: str
    def __init__(self, seq: _Optional[int] = ..., at: _Optional[float] = ..., query: _Optional[_Union[_common_pb2.Matrix, _Mapping]] = ..., inputs: _Optional[_Union[_common_pb2.RawInputs, _Mapping]] = ..., shown: _Optional[_Iterable[str]] = ..., chosen: _Optional[str] = ...) -> None: ...

class ListFeedbackResponse(_message.Message):
    __slots__ = ("events", "next_after")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[FeedbackEvent]
    next_after: int
    def __init__(self, events: _Optional[_Iterable[_Union[FeedbackEvent, _Mapping]]] = ..., next_after: _Optional[int] = ...) -> None: ...
