"""simsearch: gRPC similarity search over Ray-hosted ScaNN shards with exact re-ranking.

The public surface is the SDK (`Client`, `AsyncClient`) and the error classes.
"""

from simsearch import protos as _protos
from simsearch.client import AsyncClient, Client, SearchResults
from simsearch.protos import *  # noqa: F403  (the error classes; listed in protos.__all__)

__version__ = "0.1.0"
__all__ = ["AsyncClient", "Client", "SearchResults", *_protos.__all__]
