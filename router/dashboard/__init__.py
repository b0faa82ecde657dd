"""A read-only web dashboard served from the server process (`simsearch serve --dashboard-port`), behind the
server's API keys: collections and their state, live charts, a query page, an embedding map and distance
histograms."""

from simsearch.router.dashboard.runner import DashboardServer, bind

__all__ = ["DashboardServer", "bind"]
