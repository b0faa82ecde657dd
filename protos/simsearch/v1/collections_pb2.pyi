from simsearch.protos.simsearch.v1 import filter_pb2 as _filter_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PayloadIndex(_message.Message):
    __slots__ = ("field", "type", "state", "points", "invalid_points")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    INVALID_POINTS_FIELD_NUMBER: _ClassVar[int]
    field: str
    type: str
    state: str
    points: int
    invalid_points: int
    def __init__(self, field: _Optional[str] = ..., type: _Optional[str] = ..., state: _Optional[str] = ..., points: _Optional[int] = ..., invalid_points: _Optional[int] = ...) -> None: ...

class IndexParams(_message.Message):
    __slots__ = ("num_leaves", "leaves_to_search", "dims_per_block", "rebuild_threshold", "min_index_size", "oversample", "target_recall")
    NUM_LEAVES_FIELD_NUMBER: _ClassVar[int]
    LEAVES_TO_SEARCH_FIELD_NUMBER: _ClassVar[int]
    DIMS_PER_BLOCK_FIELD_NUMBER: _ClassVar[int]
    REBUILD_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MIN_INDEX_SIZE_FIELD_NUMBER: _ClassVar[int]
    OVERSAMPLE_FIELD_NUMBER: _ClassVar[int]
    TARGET_RECALL_FIELD_NUMBER: _ClassVar[int]
    num_leaves: int
    leaves_to_search: int
    dims_per_block: int
    rebuild_threshold: int
    min_index_size: int
    oversample: int
    target_recall: float
    def __init__(self, num_leaves: _Optional[int] = ..., leaves_to_search: _Optional[int] = ..., dims_per_block: _Optional[int] = ..., rebuild_threshold: _Optional[int] = ..., min_index_size: _Optional[int] = ..., oversample: _Optional[int] = ..., target_recall: _Optional[float] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "dim", "metric", "shards", "index", "encoder", "payload_indexes", "replicas", "write_quorum", "recall_slo")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_INDEXES_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    WRITE_QUORUM_FIELD_NUMBER: _ClassVar[int]
    RECALL_SLO_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: str
    shards: int
    index: IndexParams
    encoder: str
    payload_indexes: _containers.RepeatedCompositeFieldContainer[PayloadIndex]
    replicas: int
    write_quorum: int
    recall_slo: float
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[str] = ..., shards: _Optional[int] = ..., index: _Optional[_Union[IndexParams, _Mapping]] = ..., encoder: _Optional[str] = ..., payload_indexes: _Optional[_Iterable[_Union[PayloadIndex, _Mapping]]] = ..., replicas: _Optional[int] = ..., write_quorum: _Optional[int] = ..., recall_slo: _Optional[float] = ...) -> None: ...

class ReplicaInfo(_message.Message):
    __slots__ = ("replica", "state", "in_sync", "node", "position", "lag", "error")
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    IN_SYNC_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    replica: int
    state: str
    in_sync: bool
    node: str
    position: int
    lag: int
    error: str
    def __init__(self, replica: _Optional[int] = ..., state: _Optional[str] = ..., in_sync: _Optional[bool] = ..., node: _Optional[str] = ..., position: _Optional[int] = ..., lag: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class ShardInfo(_message.Message):
    __slots__ = ("shard", "available", "points", "indexed", "fresh", "deleted", "index_state", "num_leaves", "builds", "error", "leaves_to_search", "dims_per_block", "oversample", "rebuild_threshold", "payload_bytes", "replicas", "calibrated_recall", "target_recall")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    INDEXED_FIELD_NUMBER: _ClassVar[int]
    FRESH_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    INDEX_STATE_FIELD_NUMBER: _ClassVar[int]
    NUM_LEAVES_FIELD_NUMBER: _ClassVar[int]
    BUILDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    LEAVES_TO_SEARCH_FIELD_NUMBER: _ClassVar[int]
    DIMS_PER_BLOCK_FIELD_NUMBER: _ClassVar[int]
    OVERSAMPLE_FIELD_NUMBER: _ClassVar[int]
    REBUILD_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATED_RECALL_FIELD_NUMBER: _ClassVar[int]
    TARGET_RECALL_FIELD_NUMBER: _ClassVar[int]
    shard: int
    available: bool
    points: int
    indexed: int
    fresh: int
    deleted: int
    index_state: str
    num_leaves: int
    builds: int
    error: str
    leaves_to_search: int
    dims_per_block: int
    oversample: int
    rebuild_threshold: int
    payload_bytes: int
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaInfo]
    calibrated_recall: float
    target_recall: float
    def __init__(self, shard: _Optional[int] = ..., available: _Optional[bool] = ..., points: _Optional[int] = ..., indexed: _Optional[int] = ..., fresh: _Optional[int] = ..., deleted: _Optional[int] = ..., index_state: _Optional[str] = ..., num_leaves: _Optional[int] = ..., builds: _Optional[int] = ..., error: _Optional[str] = ..., leaves_to_search: _Optional[int] = ..., dims_per_block: _Optional[int] = ..., oversample: _Optional[int] = ..., rebuild_threshold: _Optional[int] = ..., payload_bytes: _Optional[int] = ..., replicas: _Optional[_Iterable[_Union[ReplicaInfo, _Mapping]]] = ..., calibrated_recall: _Optional[float] = ..., target_recall: _Optional[float] = ...) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("name", "dim", "metric", "shards", "index", "points", "generation", "index_state", "shard_info", "created_at", "encoder", "payload_indexes", "replicas", "write_quorum", "embedding_generation", "reindex", "target_recall", "drift", "live_recall")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    INDEX_STATE_FIELD_NUMBER: _ClassVar[int]
    SHARD_INFO_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_INDEXES_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    WRITE_QUORUM_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_GENERATION_FIELD_NUMBER: _ClassVar[int]
    REINDEX_FIELD_NUMBER: _ClassVar[int]
    TARGET_RECALL_FIELD_NUMBER: _ClassVar[int]
    DRIFT_FIELD_NUMBER: _ClassVar[int]
    LIVE_RECALL_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: str
    shards: int
    index: IndexParams
    points: int
    generation: int
    index_state: str
    shard_info: _containers.RepeatedCompositeFieldContainer[ShardInfo]
    created_at: float
    encoder: str
    payload_indexes: _containers.RepeatedCompositeFieldContainer[PayloadIndex]
    replicas: int
    write_quorum: int
    embedding_generation: int
    reindex: _containers.RepeatedCompositeFieldContainer[ReindexStatus]
    target_recall: float
    drift: DriftInfo
    live_recall: LiveRecall
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[str] = ..., shards: _Optional[int] = ..., index: _Optional[_Union[IndexParams, _Mapping]] = ..., points: _Optional[int] = ..., generation: _Optional[int] = ..., index_state: _Optional[str] = ..., shard_info: _Optional[_Iterable[_Union[ShardInfo, _Mapping]]] = ..., created_at: _Optional[float] = ..., encoder: _Optional[str] = ..., payload_indexes: _Optional[_Iterable[_Union[PayloadIndex, _Mapping]]] = ..., replicas: _Optional[int] = ..., write_quorum: _Optional[int] = ..., embedding_generation: _Optional[int] = ..., reindex: _Optional[_Iterable[_Union[ReindexStatus, _Mapping]]] = ..., target_recall: _Optional[float] = ..., drift: _Optional[_Union[DriftInfo, _Mapping]] = ..., live_recall: _Optional[_Union[LiveRecall, _Mapping]] = ...) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ("dropped",)
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    dropped: bool
    def __init__(self, dropped: _Optional[bool] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class DescribeCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class BuildIndexRequest(_message.Message):
    __slots__ = ("name", "wait")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    wait: bool
    def __init__(self, name: _Optional[str] = ..., wait: _Optional[bool] = ...) -> None: ...

class Alias(_message.Message):
    __slots__ = ("alias", "collection")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    alias: str
    collection: str
    def __init__(self, alias: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class CreateAliasRequest(_message.Message):
    __slots__ = ("alias", "collection")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    alias: str
    collection: str
    def __init__(self, alias: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class SwitchAliasRequest(_message.Message):
    __slots__ = ("alias", "collection")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    alias: str
    collection: str
    def __init__(self, alias: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class SwitchAliasResponse(_message.Message):
    __slots__ = ("alias", "collection", "previous")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    alias: str
    collection: str
    previous: str
    def __init__(self, alias: _Optional[str] = ..., collection: _Optional[str] = ..., previous: _Optional[str] = ...) -> None: ...

class DeleteAliasRequest(_message.Message):
    __slots__ = ("alias",)
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    alias: str
    def __init__(self, alias: _Optional[str] = ...) -> None: ...

class DeleteAliasResponse(_message.Message):
    __slots__ = ("deleted", "collection")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    deleted: bool
    collection: str
    def __init__(self, deleted: _Optional[bool] = ..., collection: _Optional[str] = ...) -> None: ...

class CreatePayloadIndexRequest(_message.Message):
    __slots__ = ("collection", "field", "type", "wait")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    field: str
    type: str
    wait: bool
    def __init__(self, collection: _Optional[str] = ..., field: _Optional[str] = ..., type: _Optional[str] = ..., wait: _Optional[bool] = ...) -> None: ...

class DropPayloadIndexRequest(_message.Message):
    __slots__ = ("collection", "field")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    collection: str
    field: str
    def __init__(self, collection: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class ListAliasesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAliasesResponse(_message.Message):
    __slots__ = ("aliases",)
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    aliases: _containers.RepeatedCompositeFieldContainer[Alias]
    def __init__(self, aliases: _Optional[_Iterable[_Union[Alias, _Mapping]]] = ...) -> None: ...

class ReindexRequest(_message.Message):
    __slots__ = ("collection", "encoder", "label_field", "eval_filter", "eval_size", "k", "min_gain", "min_overlap", "canary_fraction", "canary_seconds", "max_latency_ratio", "batch", "skip_gate")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_FIELD_NUMBER: _ClassVar[int]
    EVAL_FILTER_FIELD_NUMBER: _ClassVar[int]
    EVAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    MIN_GAIN_FIELD_NUMBER: _ClassVar[int]
    MIN_OVERLAP_FIELD_NUMBER: _ClassVar[int]
    CANARY_FRACTION_FIELD_NUMBER: _ClassVar[int]
    CANARY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    MAX_LATENCY_RATIO_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    SKIP_GATE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    encoder: str
    label_field: str
    eval_filter: _filter_pb2.Filter
    eval_size: int
    k: int
    min_gain: float
    min_overlap: float
    canary_fraction: float
    canary_seconds: float
    max_latency_ratio: float
    batch: int
    skip_gate: bool
    def __init__(self, collection: _Optional[str] = ..., encoder: _Optional[str] = ..., label_field: _Optional[str] = ..., eval_filter: _Optional[_Union[_filter_pb2.Filter, _Mapping]] = ..., eval_size: _Optional[int] = ..., k: _Optional[int] = ..., min_gain: _Optional[float] = ..., min_overlap: _Optional[float] = ..., canary_fraction: _Optional[float] = ..., canary_seconds: _Optional[float] = ..., max_latency_ratio: _Optional[float] = ..., batch: _Optional[int] = ..., skip_gate: _Optional[bool] = ...) -> None: ...

class GetReindexRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class CancelReindexRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class ReindexStatus(_message.Message):
    __slots__ = ("collection", "generation", "encoder", "from_encoder", "state", "copied", "total", "started_at", "updated_at", "error", "decision", "passed", "reason")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    FROM_ENCODER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COPIED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    collection: str
    generation: int
    encoder: str
    from_encoder: str
    state: str
    copied: int
    total: int
    started_at: float
    updated_at: float
    error: str
    decision: str
    passed: bool
    reason: str
    def __init__(self, collection: _Optional[str] = ..., generation: _Optional[int] = ..., encoder: _Optional[str] = ..., from_encoder: _Optional[str] = ..., state: _Optional[str] = ..., copied: _Optional[int] = ..., total: _Optional[int] = ..., started_at: _Optional[float] = ..., updated_at: _Optional[float] = ..., error: _Optional[str] = ..., decision: _Optional[str] = ..., passed: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class ResetDriftReferenceRequest(_message.Message):
    __slots__ = ("collection", "kind")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    collection: str
    kind: str
    def __init__(self, collection: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class DriftStream(_message.Message):
    __slots__ = ("score", "threshold", "alarm", "exceeded", "reference", "recent")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    ALARM_FIELD_NUMBER: _ClassVar[int]
    EXCEEDED_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    score: float
    threshold: float
    alarm: bool
    exceeded: int
    reference: int
    recent: int
    def __init__(self, score: _Optional[float] = ..., threshold: _Optional[float] = ..., alarm: _Optional[bool] = ..., exceeded: _Optional[int] = ..., reference: _Optional[int] = ..., recent: _Optional[int] = ...) -> None: ...

class EmbeddingHealthInfo(_message.Message):
    __slots__ = ("measured", "collapsed", "spread", "effective_rank", "norm_mean", "norm_std", "norm_min", "norm_max", "reasons")
    MEASURED_FIELD_NUMBER: _ClassVar[int]
    COLLAPSED_FIELD_NUMBER: _ClassVar[int]
    SPREAD_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_RANK_FIELD_NUMBER: _ClassVar[int]
    NORM_MEAN_FIELD_NUMBER: _ClassVar[int]
    NORM_STD_FIELD_NUMBER: _ClassVar[int]
    NORM_MIN_FIELD_NUMBER: _ClassVar[int]
    NORM_MAX_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    measured: bool
    collapsed: bool
    spread: float
    effective_rank: float
    norm_mean: float
    norm_std: float
    norm_min: float
    norm_max: float
    reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, measured: _Optional[bool] = ..., collapsed: _Optional[bool] = ..., spread: _Optional[float] = ..., effective_rank: _Optional[float] = ..., norm_mean: _Optional[float] = ..., norm_std: _Optional[float] = ..., norm_min: _Optional[float] = ..., norm_max: _Optional[float] = ..., reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class DriftInfo(_message.Message):
    __slots__ = ("queries", "writes", "health", "checks", "checked_at")
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    WRITES_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    queries: DriftStream
    writes: DriftStream
    health: EmbeddingHealthInfo
    checks: int
    checked_at: float
    def __init__(self, queries: _Optional[_Union[DriftStream, _Mapping]] = ..., writes: _Optional[_Union[DriftStream, _Mapping]] = ..., health: _Optional[_Union[EmbeddingHealthInfo, _Mapping]] = ..., checks: _Optional[int] = ..., checked_at: _Optional[float] = ...) -> None: ...

class UpdateCollectionRequest(_message.Message):
    __slots__ = ("name", "leaves_to_search", "oversample", "target_recall", "recall_slo")
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEAVES_TO_SEARCH_FIELD_NUMBER: _ClassVar[int]
    OVERSAMPLE_FIELD_NUMBER: _ClassVar[int]
    TARGET_RECALL_FIELD_NUMBER: _ClassVar[int]
    RECALL_SLO_FIELD_NUMBER: _ClassVar[int]
    name: str
    leaves_to_search: int
    oversample: int
    target_recall: float
    recall_slo: float
    def __init__(self, name: _Optional[str] = ..., leaves_to_search: _Optional[int] = ..., oversample: _Optional[int] = ..., target_recall: _Optional[float] = ..., recall_slo: _Optional[float] = ...) -> None: ...

class LiveRecall(_message.Message):
    __slots__ = ("recall", "samples", "slo", "breached", "sampled_requests", "skipped", "fraction", "tuned_target", "updated_at", "by_filter", "rerun_seconds")
    class ByFilterEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FilterRecall
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FilterRecall, _Mapping]] = ...) -> None: ...
    RECALL_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SLO_FIELD_NUMBER: _ClassVar[int]
    BREACHED_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    TUNED_TARGET_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    BY_FILTER_FIELD_NUMBER: _ClassVar[int]
    RERUN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    recall: float
    samples: int
    slo: float
    breached: bool
    sampled_requests: int
    skipped: int
    fraction: float
    tuned_target: float
    updated_at: float
    by_filter: _containers.MessageMap[str, FilterRecall]
    rerun_seconds: float
    def __init__(self, recall: _Optional[float] = ..., samples: _Optional[int] = ..., slo: _Optional[float] = ..., breached: _Optional[bool] = ..., sampled_requests: _Optional[int] = ..., skipped: _Optional[int] = ..., fraction: _Optional[float] = ..., tuned_target: _Optional[float] = ..., updated_at: _Optional[float] = ..., by_filter: _Optional[_Mapping[str, FilterRecall]] = ..., rerun_seconds: _Optional[float] = ...) -> None: ...

class FilterRecall(_message.Message):
    __slots__ = ("recall", "samples")
    RECALL_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    recall: float
    samples: int
    def __init__(self, recall: _Optional[float] = ..., samples: _Optional[int] = ...) -> None: ...
