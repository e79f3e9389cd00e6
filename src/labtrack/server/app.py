"""The tornado application and its route table (the one place routes live)."""

from __future__ import annotations

import hmac
import re
from pathlib import Path
from typing import Any

from tornado import web
from tornado.httputil import HTTPMessageDelegate, HTTPServerRequest

from labtrack._version import __version__
from labtrack.errors import Unauthenticated
from labtrack.server import api_jobs
from labtrack.server import api_artifacts, api_logged_models, api_registry, api_tracking, api_traces
from labtrack.server import api_eval_datasets
from labtrack.server import api_scorers
from labtrack.server import api_gateway, listener
from labtrack.server import api_gc
from labtrack.server import api_export
from labtrack.server import api_metric_summaries
from labtrack.server import api_media
from labtrack.server import api_run_table
from labtrack.server import api_views
from labtrack.server import guard
from labtrack.server.base import ApiHandler, ApiRequest, BaseHandler, ServerContext, log_access

STATIC_UI = Path(__file__).resolve().parent.parent / "static" / "ui"

# MLflow mounts every endpoint under /api/2.0 and /api/3.0; the web UI uses /ajax-api.
MLFLOW_PREFIXES = ("/api/2.0/mlflow/", "/api/3.0/mlflow/", "/ajax-api/2.0/mlflow/", "/ajax-api/3.0/mlflow/")
LABTRACK_PREFIXES = ("/api/2.0/labtrack/", "/ajax-api/2.0/labtrack/")


class HealthHandler(BaseHandler):
    open_paths = True

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.finish("OK")


# The MLflow version whose protocol this server speaks.  The mlflow client reads
# /version only to pick its trace export: 3.4 or newer sends spans by OTLP to
# /v1/traces, which labtrack stores (older ones upload them as an artifact file).
MLFLOW_PROTOCOL_VERSION = "3.17.2"


class VersionHandler(BaseHandler):
    open_paths = True

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.set_header("X-Labtrack-Version", __version__)
        self.finish(MLFLOW_PROTOCOL_VERSION)


class IndexHandler(BaseHandler):
    """The web UI's page.  ``?token=`` logs a browser in with a cookie."""

    open_paths = True

    def set_default_headers(self) -> None:
        for name, value in guard.FRAME_HEADERS:
            self.set_header(name, value)

    def get(self) -> None:
        token = self.get_query_argument("token", None)
        if token is not None and self.ctx.token:
            if not hmac.compare_digest(token.encode(), self.ctx.token.encode()):
                raise Unauthenticated("The token in the link is not this server's.")
            # Path-less cookie: behind a proxy the prefix is unknown here.  Browsers
            # send it to every port of this host, so its name names this server and
            # its value is derived from the token, never the token itself.
            self.set_cookie(guard.cookie_name(self.ctx.token), guard.cookie_value(self.ctx.token),
                            httponly=True, samesite="Strict")
            self.redirect("./", status=302)
            return
        index = STATIC_UI / "index.html"
        self.set_header("Cache-Control", "no-cache")
        if index.is_file():
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.finish(index.read_bytes())
        else:
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish("labtrack server is running; the web UI was not built into this installation.\n")


class StaticHandler(web.StaticFileHandler):
    """The UI's static files, framed by the same origin only."""

    def set_default_headers(self) -> None:
        for name, value in guard.FRAME_HEADERS:
            self.set_header(name, value)


class NotFoundHandler(BaseHandler):
    open_paths = True

    def prepare(self) -> None:
        raise web.HTTPError(404, "No such endpoint: %s" % self.request.path)


def _log_request(handler: web.RequestHandler) -> None:
    log_access(handler.get_status(), handler.request, getattr(handler.application, "access_log_all", False))


def routes(ctx: ServerContext) -> list[Any]:
    table: list[Any] = [
        (r"/health", HealthHandler, {"ctx": ctx}),
        (r"/version", VersionHandler, {"ctx": ctx}),
        (r"/", IndexHandler, {"ctx": ctx}),
        (r"/static/(.*)", StaticHandler, {"path": str(STATIC_UI)}),
    ]
    api = (api_tracking.ROUTES + api_logged_models.ROUTES + api_registry.ROUTES + api_artifacts.ROUTES
           + api_traces.ROUTES + api_gateway.ROUTES + api_eval_datasets.ROUTES + api_scorers.ROUTES)
    extra = ctx.extra.get("routes", [])
    for prefix in MLFLOW_PREFIXES:
        for path, methods in api + extra:
            table.append((prefix + path, ApiHandler, {"ctx": ctx, "methods": methods}))
    labtrack_api = (api_tracking.LABTRACK_ROUTES + listener.ROUTES + api_traces.LABTRACK_ROUTES
                    + api_gc.ROUTES + api_run_table.ROUTES + api_views.ROUTES
                    + api_metric_summaries.LABTRACK_ROUTES
                    + api_jobs.LABTRACK_ROUTES + api_media.LABTRACK_ROUTES)
    for prefix in LABTRACK_PREFIXES:
        for path, methods in labtrack_api:
            table.append((prefix + path, ApiHandler, {"ctx": ctx, "methods": methods}))
    auth = ctx.extra.get("auth")
    if auth is not None:  # a team server: each endpoint's permission rule is found by its path
        auth.learn_routes([api, extra, labtrack_api])
    for prefix in ("/api/2.0/mlflow-artifacts/artifacts", "/ajax-api/2.0/mlflow-artifacts/artifacts"):
        table.append((prefix + r"/?", api_artifacts.ArtifactHandler, {"ctx": ctx}))
        table.append((prefix + r"/(.+)", api_artifacts.ArtifactHandler, {"ctx": ctx}))
    table.append((r"/get-artifact", api_artifacts.RunArtifactHandler, {"ctx": ctx}))
    if getattr(ctx.settings, "expose_prometheus", None):
        from labtrack.server import metrics

        table.append(metrics.route(ctx))
    if getattr(ctx.settings, "app_name", None):
        from labtrack.server import signin

        table += signin.routes(ctx)
    table.append((api_traces.OTLP_PATH, api_traces.OtlpTracesHandler, {"ctx": ctx}))
    table += api_gateway.handlers(ctx)
    table += api_export.handlers(ctx, LABTRACK_PREFIXES)  # CSV/Parquet downloads: streamed, not JSON
    return table


class Application(web.Application):
    """tornado's Application, with its fixed paths found by one dict lookup.

    tornado tries its rules in order, a regex each: with four prefixes times
    every MLflow endpoint, finding a route cost more than the rest of a small
    request's handling.  Patterns (``/static/(.*)``) still go to the rules.
    """

    def __init__(self, table: list[Any], ctx: ServerContext | None = None, **settings: Any) -> None:
        super().__init__(table, **settings)
        self.ctx = ctx
        self.fixed_paths: dict[str, tuple[type[web.RequestHandler], dict[str, Any]]] = {}
        for path, handler, kwargs in table:
            if _FIXED_PATH.fullmatch(path):
                self.fixed_paths.setdefault(path, (handler, kwargs))

    def find_handler(self, request: HTTPServerRequest, **kwargs: Any) -> HTTPMessageDelegate:
        """The request's delegate, once its headers passed ``guard.screen`` (before any body)."""
        hit = self.fixed_paths.get(request.path)
        if hit is None:
            delegate = super().find_handler(request, **kwargs)
            handler_class = getattr(delegate, "handler_class", None)
            if self.ctx is not None:
                refusal = guard.screen(self.ctx, request, _is_open(handler_class))
                if refusal is not None:
                    return refusal
            return delegate
        handler, handler_kwargs = hit
        if self.ctx is not None:
            refusal = guard.screen(self.ctx, request, _is_open(handler))
            if refusal is not None:
                return refusal
        if handler is ApiHandler and request.method in handler_kwargs["methods"]:
            return ApiRequest(request, handler_kwargs["ctx"], handler_kwargs["methods"],
                              bool(getattr(self, "access_log_all", False)))
        return self.get_handler_delegate(request, handler, handler_kwargs)


def _is_open(handler_class: Any) -> bool:
    """Routes answered without a token: /health, /version, the page and its static files."""
    if handler_class is None or not issubclass(handler_class, BaseHandler):
        return handler_class is StaticHandler
    return bool(handler_class.open_paths) and handler_class is not NotFoundHandler


# Only characters that mean themselves in a URL path; '.' as a regex matches
# any character, so such a route is also left in tornado's rules for the rest.
_FIXED_PATH = re.compile(r"/[A-Za-z0-9/_.-]*")


def make_app(ctx: ServerContext) -> web.Application:
    app = Application(
        routes(ctx), ctx, default_handler_class=NotFoundHandler, default_handler_args={"ctx": ctx},
        log_function=_log_request, xsrf_cookies=False,
    )
    app.access_log_all = bool(getattr(ctx.settings, "access_log", False))  # type: ignore[attr-defined]
    return app
