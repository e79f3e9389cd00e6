"""``labtrack models serve``: a model behind MLflow's scoring protocol, on tornado.

Routes: ``POST /invocations`` (JSON or CSV in, ``{"predictions": ...}``
out), ``GET /ping`` and ``/health`` (200 once the model is loaded),
``GET /version``.  Every bad input gets a 400 ``{"error_code":
"BAD_REQUEST", "message": ...}`` that says what to send; predictions run
one at a time on a worker thread, so health checks answer during a long one.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import tornado.web

from labtrack._version import __version__
from labtrack.errors import LabtrackError
from labtrack.models.payload import as_model_input, parse_request, predictions_body
from labtrack.models.signature import input_specs

MAX_BODY = 512 * 1024 * 1024


class _Handler(tornado.web.RequestHandler):
    def initialize(self, model: Any, executor: ThreadPoolExecutor) -> None:
        self.model = model
        self.executor = executor

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # tornado's own errors (405, 413...) in the same JSON shape as ours.
        code = "BAD_REQUEST" if status_code < 500 else "INTERNAL_ERROR"
        self._json(status_code, {"error_code": code, "message": self._reason})

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        if not isinstance(value, tornado.web.HTTPError):
            super().log_exception(typ, value, tb)


class Invocations(_Handler):
    async def post(self) -> None:
        try:
            data, params = parse_request(self.request.body, self.request.headers.get("Content-Type"))
            loop = asyncio.get_running_loop()
            predictions = await loop.run_in_executor(self.executor, self._predict, data, params)
            body = predictions_body(predictions)
        except LabtrackError as err:
            self._json(400, {"error_code": "BAD_REQUEST", "message": err.message})
            return
        except Exception as err:  # the model raised on this input (as MLflow: a 400)
            self._json(400, {"error_code": "BAD_REQUEST",
                             "message": f"the model failed on this input: "
                                        f"{type(err).__name__}: {err}"})
            return
        self.set_header("Content-Type", "application/json")
        self.finish(body)

    def _predict(self, data: Any, params: dict[str, Any] | None) -> Any:
        if input_specs(self.model.signature) is None:
            data = as_model_input(data)
        return self.model.predict(data, params=params)


class Ping(_Handler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish("\n")


class Version(_Handler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(__version__)


def make_app(model: Any) -> tornado.web.Application:
    """The scoring app for a loaded model (a :class:`~labtrack.models.pyfunc.PyFuncModel`)."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="labtrack-predict")
    kw = {"model": model, "executor": executor}
    return tornado.web.Application([
        (r"/invocations", Invocations, kw),
        (r"/ping", Ping, kw),
        (r"/health", Ping, kw),
        (r"/version", Version, kw),
    ], default_handler_class=_NotFound, default_handler_args=kw)


class _NotFound(_Handler):
    def prepare(self) -> None:
        self._json(404, {"error_code": "ENDPOINT_NOT_FOUND",
                         "message": "no such route: use POST /invocations, GET /ping, /health "
                                    "or /version"})


def serve(model_uri: str, host: str = "127.0.0.1", port: int = 5000) -> None:
    """Load the model, then serve it until SIGINT/SIGTERM."""
    from labtrack.errors import require_extra
    from labtrack.models.pyfunc import load_model

    for module in ("numpy", "pandas"):  # every request's payload is parsed into them
        require_extra(module, "models", "labtrack models serve")
    model = load_model(model_uri)
    asyncio.run(_serve(model, model_uri, host, port))


async def _serve(model: Any, model_uri: str, host: str, port: int) -> None:
    app = make_app(model)
    server = app.listen(port, address=host, max_body_size=MAX_BODY, xheaders=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    shown = f"[{host}]" if ":" in host else host
    print(f"labtrack: serving {model_uri} at http://{shown}:{port}/invocations", file=sys.stderr,
          flush=True)
    await stop.wait()
    server.stop()


