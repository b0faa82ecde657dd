"""The contract every layer shares, with no dependencies: the error hierarchy (plain status-code
names) and every request limit. Importable without grpc, numpy or anything of the server, so the
SDK, the shards and the encoders can all raise and check the same things."""

from simsearch.contract.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    ResourceExhausted,
    SimsearchError,
    Unauthenticated,
    Unavailable,
    invalid,
)

__all__ = [
    "AlreadyExists", "DeadlineExceeded", "FailedPrecondition", "Internal", "InvalidArgument",
    "NotFound", "PermissionDenied", "QuotaExceeded", "ResourceExhausted", "SimsearchError", "Unauthenticated",
    "Unavailable", "invalid",
]
