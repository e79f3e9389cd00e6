"""Model-registry endpoints (reference §2.4): parse, call the registry store, render.

Methods follow MLflow exactly: deletes are DELETE with a JSON body,
``get-latest-versions`` is POST (GET is the client's fallback), and
``registered-models/alias`` is POST/DELETE/GET on one path.
"""

from __future__ import annotations

from typing import Any

from labtrack.errors import InvalidParameterValue
from labtrack.server.args import Args
from labtrack.server.base import ServerContext


def _version(a: Args) -> str:
    """``version`` is a string in MLflow's protos, but a JSON number is fine too."""
    try:
        return a.req("version")
    except InvalidParameterValue:
        return str(a.int("version", required=True))


def _page(items: list[dict[str, Any]], name: str, token: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {name: items}
    if token:
        out["next_page_token"] = token
    return out


# -- registered models -----------------------------------------------------------

def create_registered_model(ctx: ServerContext, a: Args) -> dict[str, Any]:
    model = ctx.registry.create_registered_model(
        a.req("name"), tags=dict(a.key_values("tags")), description=a.str("description"))
    return {"registered_model": model.to_json()}


def get_registered_model(ctx: ServerContext, a: Args) -> dict[str, Any]:
    return {"registered_model": ctx.registry.get_registered_model(a.req("name")).to_json()}


def update_registered_model(ctx: ServerContext, a: Args) -> dict[str, Any]:
    model = ctx.registry.update_registered_model(a.req("name"), a.str("description"))
    return {"registered_model": model.to_json()}


def rename_registered_model(ctx: ServerContext, a: Args) -> dict[str, Any]:
    new_name = a.str("new_name")
    if not new_name:
        raise InvalidParameterValue("Missing value for required parameter 'new_name'")
    return {"registered_model": ctx.registry.rename_registered_model(a.req("name"), new_name).to_json()}


def delete_registered_model(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.registry.delete_registered_model(a.req("name"))
    return {}


def search_registered_models(ctx: ServerContext, a: Args) -> dict[str, Any]:
    models, token = ctx.registry.search_registered_models(
        a.str("filter"), max_results=a.int("max_results"), order_by=a.str_list("order_by"),
        page_token=a.str("page_token"))
    return _page([m.to_json() for m in models], "registered_models", token)


def get_latest_versions(ctx: ServerContext, a: Args) -> dict[str, Any]:
    versions = ctx.registry.get_latest_versions(a.req("name"), a.str_list("stages"))
    return {"model_versions": [v.to_json() for v in versions]}


def set_registered_model_tag(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.registry.set_registered_model_tag(a.req("name"), a.req("key"), a.str("value", required=True))
    return {}


def delete_registered_model_tag(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.registry.delete_registered_model_tag(a.req("name"), a.req("key"))
    return {}


# -- aliases -------------------------------------------------------------------------

def set_alias(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.registry.set_registered_model_alias(a.req("name"), a.req("alias"), _version(a))
    return {}


def delete_alias(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.registry.delete_registered_model_alias(a.req("name"), a.req("alias"))
    return {}


def get_by_alias(ctx: ServerContext, a: Args) -> dict[str, Any]:
    return {"model_version": ctx.registry.get_model_version_by_alias(a.req("name"), a.req("alias")).to_json()}


# -- model versions ----------------------------------------------------------------

def create_model_version(ctx: ServerContext, a: Args) -> dict[str, Any]:
    version = ctx.registry.create_model_version(
        a.req("name"), a.req("source"), run_id=a.str("run_id") or None, tags=dict(a.key_values("tags")),
        # MLflow stores a missing description as "" and returns it (a prompt's commit message).
        run_link=a.str("run_link") or None, description=a.str("description") or "",
        model_id=a.str("model_id") or None)
    return {"model_version": version.to_json()}


def get_model_version(ctx: ServerContext, a: Args) -> dict[str, Any]:
    return {"model_version": ctx.registry.get_model_version(a.req("name"), _version(a)).to_json()}


def update_model_version(ctx: ServerContext, a: Args) -> dict[str, Any]:
    version = ctx.registry.update_model_version(a.req("name"), _version(a), a.str("description"))
    return {"model_version": version.to_json()}


def transition_stage(ctx: ServerContext, a: Args) -> dict[str, Any]:
    version = ctx.registry.transition_model_version_stage(
        a.req("name"), _version(a), a.req("stage"), a.bool("archive_existing_versions"))
    return {"model_version": version.to_json()}


def delete_model_version(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.registry.delete_model_version(a.req("name"), _version(a))
    return {}


def search_model_versions(ctx: ServerContext, a: Args) -> dict[str, Any]:
    versions, token = ctx.registry.search_model_versions(
        a.str("filter"), max_results=a.int("max_results"), order_by=a.str_list("order_by"),
        page_token=a.str("page_token"))
    return _page([v.to_json() for v in versions], "model_versions", token)


def get_download_uri(ctx: ServerContext, a: Args) -> dict[str, Any]:
    return {"artifact_uri": ctx.registry.get_model_version_download_uri(a.req("name"), _version(a))}


def set_model_version_tag(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.registry.set_model_version_tag(a.req("name"), _version(a), a.req("key"),
                                       a.str("value", required=True))
    return {}


def delete_model_version_tag(ctx: ServerContext, a: Args) -> dict[str, Any]:
    ctx.registry.delete_model_version_tag(a.req("name"), _version(a), a.req("key"))
    return {}


ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("registered-models/create", {"POST": create_registered_model}),
    ("registered-models/get", {"GET": get_registered_model}),
    ("registered-models/search", {"GET": search_registered_models}),
    ("registered-models/update", {"PATCH": update_registered_model}),
    ("registered-models/rename", {"POST": rename_registered_model}),
    ("registered-models/delete", {"DELETE": delete_registered_model}),
    ("registered-models/get-latest-versions", {"POST": get_latest_versions, "GET": get_latest_versions}),
    ("registered-models/set-tag", {"POST": set_registered_model_tag}),
    ("registered-models/delete-tag", {"DELETE": delete_registered_model_tag}),
    ("registered-models/alias", {"POST": set_alias, "DELETE": delete_alias, "GET": get_by_alias}),
    ("model-versions/create", {"POST": create_model_version}),
    ("model-versions/get", {"GET": get_model_version}),
    ("model-versions/update", {"PATCH": update_model_version}),
    ("model-versions/transition-stage", {"POST": transition_stage}),
    ("model-versions/delete", {"DELETE": delete_model_version}),
    ("model-versions/search", {"GET": search_model_versions}),
    ("model-versions/get-download-uri", {"GET": get_download_uri}),
    ("model-versions/set-tag", {"POST": set_model_version_tag}),
    ("model-versions/delete-tag", {"DELETE": delete_model_version_tag}),
]
