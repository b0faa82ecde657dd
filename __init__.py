"""simsearch: gRPC similarity search over sharded ScaNN indexes with exact re-ranking.

The public surface is the SDK (`Client`, `AsyncClient`, `AdminClient`, `AsyncAdminClient`) and the
error classes. Importing it
loads the SDK and the contract only: no ScaNN, Ray or torch.
"""

from simsearch import contract as _contract
from simsearch.client import AdminClient, AsyncAdminClient, AsyncClient, Client, SearchResults
from simsearch.contract import *  # noqa: F403  (the error classes; listed in contract.__all__)

__version__ = "0.1.0"
__all__ = ["AdminClient", "AsyncAdminClient", "AsyncClient", "Client", "SearchResults", *(n for n in _contract.__all__ if n != "invalid")]
