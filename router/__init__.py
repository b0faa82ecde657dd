"""The async gRPC front door: auth, validation, catalog, fan-out, merge, cache."""

from simsearch.router.app import EmbeddedServer, ServeConfig, serve
from simsearch.router.server import SERVICE_NAMES, Server, create_server

__all__ = ["SERVICE_NAMES", "EmbeddedServer", "ServeConfig", "Server", "create_server", "serve"]
