"""simsearch: gRPC similarity search over Ray-hosted ScaNN shards with exact re-ranking.

The public surface is the SDK (`Client`, `AsyncClient`) and the error classes.
"""

from simsearch.client import AsyncClient, Client, SearchResults
from simsearch.protos.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    SimsearchError,
    Unauthenticated,
    Unavailable,
)

__version__ = "0.1.0"
__all__ = [
    "AlreadyExists", "AsyncClient", "Client", "DeadlineExceeded", "FailedPrecondition", "Internal",
    "InvalidArgument", "NotFound", "ResourceExhausted", "SearchResults", "SimsearchError",
    "Unauthenticated", "Unavailable",
]
