"""Prometheus metrics of a server (``--expose-prometheus DIR``), served on ``/metrics``.

As MLflow's flag, DIR is prometheus-client's multiprocess folder: every
server process (``--workers N``) writes its samples there and ``/metrics``,
answered by any of them, sums them.  What is measured:

* ``labtrack_requests_total{method,endpoint,status}`` and
  ``labtrack_request_duration_seconds{method,endpoint}``: every answered
  request (the endpoint is the route's path; artifact files share one label);
* ``labtrack_writer_queue_depth``: writes waiting for the next group commit;
* ``labtrack_group_commit_size``: how many writes each commit held;
* ``labtrack_spool_backlog_files`` / ``_bytes``: spool files not yet ingested.

``/metrics`` needs the same credentials as the API (a scraper sends the token
as ``bearer_token``).  No label ever holds a query string or a header.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from tornado import web

from labtrack.errors import LabtrackError

_ARTIFACT_PREFIXES = ("/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow-artifacts/artifacts")
SAMPLE_S = 1.0


def prepare_folder(folder: str, *, clean: bool) -> str:
    """Point prometheus-client at ``folder`` (before it is imported); ``clean`` empties it first."""
    path = Path(folder).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    if clean:
        for old in path.glob("*.db"):
            old.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    return str(path)


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise LabtrackError("--expose-prometheus needs prometheus-client: pip install 'labtrack[prometheus]'",
                            "INVALID_PARAMETER_VALUE") from None
    return prometheus_client


class Metrics:
    """This process's metric objects, written to the shared multiprocess folder."""

    def __init__(self, known_paths: set[str]) -> None:
        p = _client()
        self.known_paths = known_paths
        self.requests = p.Counter("labtrack_requests", "Answered requests.", ["method", "endpoint", "status"])
        self.latency = p.Histogram("labtrack_request_duration_seconds", "Time to answer a request.",
                                   ["method", "endpoint"],
                                   buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                            1.0, 2.5, 5.0, 10.0))
        self.queue_depth = p.Gauge("labtrack_writer_queue_depth", "Writes waiting for the next group commit.",
                                   multiprocess_mode="livesum")
        self.group_size = p.Histogram("labtrack_group_commit_size", "Writes committed together in one group.",
                                      buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self.backlog_files = p.Gauge("labtrack_spool_backlog_files", "Spool files waiting to be ingested.",
                                     multiprocess_mode="livemax")
        self.backlog_bytes = p.Gauge("labtrack_spool_backlog_bytes", "Bytes of spool files waiting to be ingested.",
                                     multiprocess_mode="livemax")

    def endpoint(self, path: str) -> str:
        """A bounded label for a request path: a route's own path, or a group."""
        if path in self.known_paths:
            return path
        for prefix in _ARTIFACT_PREFIXES:
            if path.startswith(prefix):
                return prefix + "/*"
        if path.startswith("/static/"):
            return "/static/*"
        return "other"

    def observe_request(self, status: int, request: Any) -> None:
        endpoint = self.endpoint(request.path)
        method = request.method or ""
        self.requests.labels(method, endpoint, str(status)).inc()
        self.latency.labels(method, endpoint).observe(request.request_time())

    def sample(self, writer: Any, spool: Path | None) -> None:
        """Read the gauges that change on their own (called every second)."""
        self.queue_depth.set(writer.queue_depth())
        files, size = 0, 0
        if spool is not None:
            from labtrack.spool import waiting_files

            for f in waiting_files(spool):
                try:
                    size += f.stat().st_size
                    files += 1
                except OSError:
                    pass
        self.backlog_files.set(files)
        self.backlog_bytes.set(size)


class MetricsHandler(web.RequestHandler):
    """``GET /metrics``: the samples of every process, in Prometheus' text format."""

    def initialize(self, ctx: Any) -> None:
        self.ctx = ctx

    def prepare(self) -> None:
        from labtrack.server.base import check_token

        try:
            check_token(self.ctx, self.request)
        except LabtrackError as exc:
            self.set_status(exc.http_status)
            self.finish(exc.message)

    def get(self) -> None:
        p = _client()
        from prometheus_client import multiprocess

        registry = p.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        self.set_header("Content-Type", p.CONTENT_TYPE_LATEST)
        self.finish(p.generate_latest(registry))


def install(ctx: Any, app: Any, spool: Path | None) -> asyncio.Task[None]:
    """Measure this server: the request hook, the writer's groups, and a sampling task."""
    from labtrack.server import base

    metrics = Metrics(set(getattr(app, "fixed_paths", {})))
    base.request_observer = metrics.observe_request
    ctx.store.writer.on_group = metrics.group_size.observe

    async def sampling() -> None:
        loop = asyncio.get_running_loop()
        while True:
            await loop.run_in_executor(None, metrics.sample, ctx.store.writer, spool)
            await asyncio.sleep(SAMPLE_S)
    return asyncio.create_task(sampling())


def route(ctx: Any) -> tuple[str, type[web.RequestHandler], dict[str, Any]]:
    return (r"/metrics", MetricsHandler, {"ctx": ctx})
