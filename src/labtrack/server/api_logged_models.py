"""MLflow 3 logged-model endpoints (reference §2.6)."""

from __future__ import annotations

from typing import Any

from labtrack.errors import InvalidParameterValue
from labtrack.server.args import Args
from labtrack.server.base import ServerContext


def create(ctx: ServerContext, a: Args) -> dict[str, Any]:
    model = ctx.logged_models.create(
        a.req("experiment_id"), name=a.str("name"), model_type=a.str("model_type"),
        source_run_id=a.str("source_run_id") or None, params=dict(a.key_values("params")),
        tags=dict(a.key_values("tags")))
    return {"model": model.to_json()}


def get(ctx: ServerContext, a: Args, model_id: str) -> dict[str, Any]:
    return {"model": ctx.logged_models.get(model_id, allow_deleted=a.bool("allow_deleted")).to_json()}


def finalize(ctx: ServerContext, a: Args, model_id: str) -> dict[str, Any]:
    status = a.data.get("status")
    if status is None:
        raise InvalidParameterValue("Missing value for required parameter 'status'")
    return {"model": ctx.logged_models.finalize(model_id, status).to_json()}


def delete(ctx: ServerContext, a: Args, model_id: str) -> dict[str, Any]:
    ctx.logged_models.delete(model_id)
    return {}



def search(ctx: ServerContext, a: Args) -> dict[str, Any]:
    order_by = a.objects("order_by")
    models, token = ctx.logged_models.search(
        a.str_list("experiment_ids"), filter_string=a.str("filter"), max_results=a.int("max_results"),
        order_by=order_by, page_token=a.str("page_token"))
    out: dict[str, Any] = {"models": [m.to_json() for m in models]}
    if token:
        out["next_page_token"] = token
    return out


def set_tags(ctx: ServerContext, a: Args, model_id: str) -> dict[str, Any]:
    ctx.logged_models.set_tags(model_id, dict(a.key_values("tags")))
    return {}


def delete_tag(ctx: ServerContext, a: Args, model_id: str, key: str) -> dict[str, Any]:
    ctx.logged_models.delete_tag(model_id, key)
    return {}


def log_params(ctx: ServerContext, a: Args, model_id: str) -> dict[str, Any]:
    ctx.logged_models.log_params(model_id, dict(a.key_values("params")))
    return {}


_ID = r"(m-[0-9a-f]{32}|[\w\-]+)"

ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("logged-models", {"POST": create}),
    ("logged-models/search", {"POST": search}),
    (f"logged-models/{_ID}", {"GET": get, "PATCH": finalize, "DELETE": delete}),
    (f"logged-models/{_ID}/tags", {"PATCH": set_tags}),
    (f"logged-models/{_ID}/tags/([^/]+)", {"DELETE": delete_tag}),
    (f"logged-models/{_ID}/params", {"POST": log_params}),
]
