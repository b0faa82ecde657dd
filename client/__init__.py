"""The SDK: `Client` (blocking) and `AsyncClient` (asyncio), numpy in and out."""

from simsearch.client._requests import CollectionInfo, Points, SearchResults
from simsearch.client.admin import AdminClient, AsyncAdminClient, KeyInfo, NewKey
from simsearch.client.aio import AsyncClient
from simsearch.client.sync import Client

__all__ = ["AdminClient", "AsyncAdminClient", "AsyncClient", "Client", "CollectionInfo", "KeyInfo", "NewKey", "Points",
           "SearchResults"]
