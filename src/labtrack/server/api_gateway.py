"""The AI gateway over HTTP: MLflow 3.17's gateway routes, the deployments client's, OpenAI's.

* ``/api/3.0/mlflow/gateway/{secrets,model-definitions,endpoints}/...``: endpoint
  configuration, with MLflow's error JSON (``ROUTES``, in the API table);
* ``GET /api/2.0/endpoints/[<name>]`` and ``POST /endpoints/<name>/invocations``:
  what ``mlflow.deployments.get_deploy_client(uri)`` calls;
* ``POST /gateway/<name>/mlflow/invocations`` (MLflow 3's unified route);
* ``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings`` (also under
  ``/gateway/mlflow/``): OpenAI's protocol, ``model`` naming the endpoint.

Each call passes the rate limit, goes to the endpoint's model server with its
timeout (``stream: true`` is relayed as server-sent events, chunk by chunk) and
is reported to the gateway's recorders (a trace per call).  Provider keys never
appear in a reply or a log line.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from labtrack.errors import BadRequest, InvalidParameterValue
from labtrack.gateway.config import ENDPOINT_TYPES, Endpoint
from labtrack.gateway.endpoints import Gateway
from labtrack.gateway.upstream import CallRecord
from labtrack.server.args import Args
from labtrack.server.base import BaseHandler, ServerContext, request_args

GATEWAY_KEY = "gateway"
# A caller (the playground) may name the experiment and run its calls' traces belong to.
EXPERIMENT_HEADER = "X-MLflow-Experiment-Id"
RUN_HEADER = "X-Labtrack-Run-Id"
TRACE_HEADER = "X-Labtrack-Trace-Id"
SPAN_TYPES = {"llm/v1/chat": "CHAT_MODEL", "llm/v1/completions": "LLM", "llm/v1/embeddings": "EMBEDDING"}
log = logging.getLogger("labtrack.gateway")
_OPENAI_PATHS = {"chat/completions": "llm/v1/chat", "completions": "llm/v1/completions",
                 "embeddings": "llm/v1/embeddings"}


def gateway_of(ctx: ServerContext) -> Gateway:
    """The server's gateway: ``settings.gateway_config`` and what the database keeps, read at start."""
    def make() -> Gateway:
        store = None
        if ctx.store is not None:  # a tracking server keeps the endpoints made over REST
            from labtrack.store.gateway import GatewayStore

            store = GatewayStore(ctx.store)
        return Gateway.from_config(getattr(ctx.settings, "gateway_config", None), store)

    return ctx.one(GATEWAY_KEY, make)


# -- endpoint configuration (MLflow 3.17's /mlflow/gateway/ REST API) ---------------------

def _raw(a: Args, name: str) -> Any:
    value = a.data.get(name)
    if a.from_query and isinstance(value, list):
        value = value[-1] if value else None
    if isinstance(value, str) and value[:1] in "[{" and a.from_query:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def create_secret(ctx: ServerContext, a: Args) -> dict[str, Any]:
    secret = gateway_of(ctx).create_secret(_raw(a, "secret_name"), _raw(a, "provider"),
                                          _raw(a, "auth_config"), _raw(a, "secret_value"))
    return {"secret": secret.to_json()}


def get_secret(ctx: ServerContext, a: Args) -> dict[str, Any]:
    return {"secret": gateway_of(ctx).get_secret(a.str("secret_id"), a.str("secret_name")).to_json()}


def list_secrets(ctx: ServerContext, a: Args) -> dict[str, Any]:
    gw = gateway_of(ctx)
    provider = a.str("provider")
    return {"secrets": [s.to_json() for s in gw.secrets.values() if not provider or s.provider == provider]}


def delete_secret(ctx: ServerContext, a: Args) -> dict[str, Any]:
    gateway_of(ctx).delete_secret(a.req("secret_id"))
    return {}


def create_model_definition(ctx: ServerContext, a: Args) -> dict[str, Any]:
    gw = gateway_of(ctx)
    model = gw.create_model(_raw(a, "name"), _raw(a, "secret_id"), _raw(a, "provider"), _raw(a, "model_name"))
    return {"model_definition": model.to_json(gw.secrets)}


def get_model_definition(ctx: ServerContext, a: Args) -> dict[str, Any]:
    gw = gateway_of(ctx)
    return {"model_definition": gw.get_model(a.req("model_definition_id")).to_json(gw.secrets)}


def list_model_definitions(ctx: ServerContext, a: Args) -> dict[str, Any]:
    gw = gateway_of(ctx)
    return {"model_definitions": [m.to_json(gw.secrets) for m in gw.models.values()]}


def delete_model_definition(ctx: ServerContext, a: Args) -> dict[str, Any]:
    gateway_of(ctx).delete_model(a.req("model_definition_id"))
    return {}


def create_endpoint(ctx: ServerContext, a: Args) -> dict[str, Any]:
    gw = gateway_of(ctx)
    name = a.str("name")
    if not name:
        raise InvalidParameterValue("Missing value for required parameter 'name'. "
                                    "See the API docs for more information about request parameters.")
    ep = gw.create_endpoint(name, _raw(a, "model_configs"), _raw(a, "endpoint_type"), _raw(a, "limit"),
                            _raw(a, "timeout"))
    return {"endpoint": gw.endpoint_json(ep)}


def get_endpoint(ctx: ServerContext, a: Args) -> dict[str, Any]:
    gw = gateway_of(ctx)
    return {"endpoint": gw.endpoint_json(gw.get_api_endpoint(a.str("endpoint_id"), a.str("name")))}


def update_endpoint(ctx: ServerContext, a: Args) -> dict[str, Any]:
    gw = gateway_of(ctx)
    ep = gw.update_endpoint(a.req("endpoint_id"), a.str("name"), _raw(a, "model_configs"), _raw(a, "limit"))
    return {"endpoint": gw.endpoint_json(ep)}


def delete_endpoint(ctx: ServerContext, a: Args) -> dict[str, Any]:
    gateway_of(ctx).delete_endpoint(a.req("endpoint_id"))
    return {}


def list_endpoints(ctx: ServerContext, a: Args) -> dict[str, Any]:
    gw = gateway_of(ctx)
    return {"endpoints": [gw.endpoint_json(e) for e in gw.api_endpoints.values()]}


ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("gateway/secrets/create", {"POST": create_secret}),
    ("gateway/secrets/get", {"GET": get_secret}),
    ("gateway/secrets/list", {"GET": list_secrets}),
    ("gateway/secrets/delete", {"DELETE": delete_secret}),
    ("gateway/model-definitions/create", {"POST": create_model_definition}),
    ("gateway/model-definitions/get", {"GET": get_model_definition}),
    ("gateway/model-definitions/list", {"GET": list_model_definitions}),
    ("gateway/model-definitions/delete", {"DELETE": delete_model_definition}),
    ("gateway/endpoints/create", {"POST": create_endpoint}),
    ("gateway/endpoints/get", {"GET": get_endpoint}),
    ("gateway/endpoints/update", {"POST": update_endpoint}),
    ("gateway/endpoints/delete", {"DELETE": delete_endpoint}),
    ("gateway/endpoints/list", {"GET": list_endpoints}),
]


# -- calls ------------------------------------------------------------------------

class _GatewayHandler(BaseHandler):
    @property
    def gateway(self) -> Gateway:
        return gateway_of(self.ctx)

    def _record(self, record: CallRecord, trace_id: str) -> None:
        """On a tracking server, store the call as a trace (off the event loop)."""
        if self.ctx.store is None:
            return
        experiment_id = self.request.headers.get(EXPERIMENT_HEADER) or None
        run_id = self.request.headers.get(RUN_HEADER) or None
        try:
            self.ctx.pool.submit(_store_trace, self.ctx, record, trace_id, experiment_id, run_id)
        except RuntimeError:  # the pool is shut down: the server is stopping; the reply still goes out
            log.warning("gateway endpoint '%s': the server is stopping; its call's trace was not stored",
                        record.endpoint)


class DeploymentsEndpointsHandler(_GatewayHandler):
    """``GET /api/2.0/endpoints/`` (a page of all) and ``/api/2.0/endpoints/<name>``."""

    def get(self, name: str | None = None) -> None:
        if name:
            self.write_json(self.gateway.endpoint(name).to_deployments_json())
            return
        self.write_json({"endpoints": [e.to_deployments_json() for e in self.gateway.list_endpoints()]})


class ModelsHandler(_GatewayHandler):
    """OpenAI's ``GET /v1/models``: the endpoints, as models a client can name."""

    def get(self) -> None:
        self.write_json({"object": "list", "data": [
            {"id": e.name, "object": "model", "owned_by": "labtrack-gateway", "endpoint_type": e.endpoint_type}
            for e in self.gateway.list_endpoints()]})


class InvocationHandler(_GatewayHandler):
    """A call to an endpoint: by path (``kind`` is None) or OpenAI-style (``model`` names it)."""

    def initialize(self, ctx: ServerContext, kind: str | None = None, **kwargs: Any) -> None:
        super().initialize(ctx)
        self.kind = kind

    async def post(self, first: str, second: str | None = None) -> None:
        args = request_args(self.request)
        body = dict(args.data)
        if self.kind == "openai":
            wanted = _OPENAI_PATHS[first]
            name = body.get("model")
            if not isinstance(name, str) or not name:
                raise InvalidParameterValue("Missing value for required parameter 'model' (the endpoint's name).")
            endpoint = self.gateway.endpoint(name)
            if endpoint.endpoint_type != wanted:
                raise InvalidParameterValue(f"Endpoint '{name}' is of type {endpoint.endpoint_type}, "
                                            f"not {wanted}.")
        else:
            endpoint = self.gateway.endpoint(first)
        await self._call(endpoint, body)

    async def _call(self, endpoint: Endpoint, body: dict[str, Any]) -> None:
        from labtrack.gateway import upstream

        if endpoint.endpoint_type not in ENDPOINT_TYPES:
            raise BadRequest(f"Endpoint '{endpoint.name}' has an unknown type.")
        self.gateway.limiter.admit(endpoint.name, endpoint.limit)
        streaming = bool(body.get("stream")) and endpoint.endpoint_type != "llm/v1/embeddings"
        started: list[bool] = []

        def relay(chunk: bytes) -> None:
            if not started:
                started.append(True)
                self.set_header("Content-Type", "text/event-stream")
                self.set_header("Cache-Control", "no-cache")
                self.set_header("X-Accel-Buffering", "no")
            self.write(chunk)
            self.flush()

        trace_id = "tr-" + uuid.uuid4().hex
        if self.ctx.store is not None:
            self.set_header(TRACE_HEADER, trace_id)
        try:
            record, data = await upstream.call(endpoint, body, relay if streaming else None)
        except Exception as exc:  # the call failed: still recorded, then answered as an error
            rec = getattr(exc, "record", None)
            if rec is not None:
                self._record(rec, trace_id)
            raise
        self._record(record, trace_id)
        if started:
            self.finish()
            return
        self.set_status(record.status if 100 <= record.status < 600 else 502)
        self.set_header("Content-Type", "application/json")
        self.finish(data)


def _store_trace(ctx: ServerContext, record: CallRecord, trace_id: str, experiment_id: str | None,
                 run_id: str | None) -> None:
    """One call as a trace of one span: request, reply, status, token usage and latency."""
    from labtrack.server.api_traces import trace_store

    try:
        exp_id = experiment_id or _gateway_experiment(ctx, record.endpoint)
        start_ns = record.start_ms * 1_000_000
        usage = record.usage
        attributes: dict[str, Any] = {
            "labtrack.gateway.endpoint": record.endpoint, "labtrack.gateway.model": record.model,
            "labtrack.gateway.latency_ms": round(record.latency_ms, 3), "http.status_code": record.status,
            "labtrack.gateway.streamed": record.streamed}
        if usage:
            attributes["mlflow.chat.tokenUsage"] = {
                "input_tokens": usage.get("prompt_tokens", 0), "output_tokens": usage.get("completion_tokens", 0),
                "total_tokens": usage.get("total_tokens", usage.get("prompt_tokens", 0)
                                          + usage.get("completion_tokens", 0))}
        span = {"span_id": uuid.uuid4().hex[:16], "parent_span_id": None, "name": record.endpoint,
                "span_type": SPAN_TYPES.get(record.endpoint_type, "LLM"), "start_time_ns": start_ns,
                "end_time_ns": start_ns + int(record.latency_ms * 1_000_000),
                "status": "ERROR" if record.error else "OK", "status_message": record.error or "",
                "inputs": record.request, "outputs": record.response, "attributes": attributes}
        metadata = {"mlflow.sourceRun": run_id} if run_id else None
        trace_store(ctx).record_trace(exp_id, [span], trace_id=trace_id, metadata=metadata,
                                      tags={"labtrack.gateway.endpoint": record.endpoint})
    except Exception:  # noqa: BLE001 - a lost trace must not fail the call; say so in the log
        log.warning("gateway endpoint '%s': its call's trace was not stored", record.endpoint, exc_info=True)


def _gateway_experiment(ctx: ServerContext, endpoint: str) -> str:
    """The experiment ``gateway/<endpoint>`` (MLflow's name for an endpoint's traces), made if new."""
    from labtrack.errors import ResourceAlreadyExists, ResourceDoesNotExist

    cache: dict[str, str] = ctx.extra.setdefault("gateway_experiments", {})
    name = f"gateway/{endpoint}"
    if name not in cache:
        try:
            cache[name] = ctx.store.get_experiment_by_name(name).experiment_id
        except ResourceDoesNotExist:
            try:
                cache[name] = str(ctx.store.create_experiment(name))
            except ResourceAlreadyExists:
                cache[name] = ctx.store.get_experiment_by_name(name).experiment_id
    return cache[name]


def handlers(ctx: ServerContext) -> list[Any]:
    """The gateway's non-MLflow-prefixed routes; reads gateway.yaml now, so a bad one fails the start."""
    gateway_of(ctx)
    c = {"ctx": ctx}
    openai = r"(chat/completions|completions|embeddings)"
    return [
        (r"/api/2.0/endpoints/?", DeploymentsEndpointsHandler, c),
        (r"/api/2.0/endpoints/([^/]+)", DeploymentsEndpointsHandler, c),
        (r"/endpoints/([^/]+)/invocations", InvocationHandler, c),
        (r"/gateway/([^/]+)/mlflow/invocations", InvocationHandler, c),
        (r"/gateway/mlflow/v1/models", ModelsHandler, c),
        (r"/v1/models", ModelsHandler, c),
        (r"/gateway/mlflow/v1/" + openai, InvocationHandler, {"ctx": ctx, "kind": "openai"}),
        (r"/v1/" + openai, InvocationHandler, {"ctx": ctx, "kind": "openai"}),
    ]
