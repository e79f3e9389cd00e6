"""labtrack's client: transport, the explicit Client, the fluent API, discovery, the sender.

It speaks MLflow's REST API over HTTP or a unix socket and never imports the
server or the store (DESIGN: one-way imports).
"""

from labtrack.client.client import Client, PagedList, ViewType

__all__ = ["Client", "PagedList", "ViewType"]
