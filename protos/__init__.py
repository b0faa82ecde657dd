"""The wire contract: generated messages and stubs, conversions and the error hierarchy."""

from simsearch.protos.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SimsearchError,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "AlreadyExists", "DeadlineExceeded", "FailedPrecondition", "Internal", "InvalidArgument",
    "NotFound", "PermissionDenied", "ResourceExhausted", "SimsearchError", "Unauthenticated",
    "Unavailable",
]
