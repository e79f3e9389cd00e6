"""Saved views of an experiment's runs page (``/api/2.0/labtrack/views/...``); see store/views.py.

On a team server (``--app-name basic-auth``) a view follows its experiment's
permission: reading the experiment lets one list and open its views, editing
it lets one save, rename and delete them.
"""

from __future__ import annotations

from typing import Any

from labtrack.server.args import Args
from labtrack.server.auth import EXPERIMENT
from labtrack.server.base import ServerContext
from labtrack.store.validation import check_experiment_id
from labtrack.store.views import ViewStore


def view_store(ctx: ServerContext) -> ViewStore:
    return ctx.one("views", lambda: ViewStore(ctx.store))


def _may(ctx: ServerContext, a: Args, experiment_id: str, capability: str) -> None:
    """Refuse unless the signed-in user has ``capability`` on the experiment (basic-auth only)."""
    auth = ctx.extra.get("auth")
    if auth is not None and a.user is not None:
        auth.require(a.user, EXPERIMENT, [experiment_id], capability)


def _experiment_id(a: Args) -> str:
    value = a.data.get("experiment_id")
    if isinstance(value, int) and not isinstance(value, bool):  # some clients send a number
        return str(check_experiment_id(value))
    return str(check_experiment_id(a.req("experiment_id")))


def _experiment_of(ctx: ServerContext, a: Args) -> str:
    return view_store(ctx).experiment_of(a.req("view_id"))


def create(ctx: ServerContext, a: Args) -> dict[str, Any]:
    exp_id = _experiment_id(a)
    _may(ctx, a, exp_id, "can_update")
    user = a.user.username if a.user is not None else None
    return {"view": view_store(ctx).create(exp_id, a.data.get("name"), a.data.get("state"), user)}


def get(ctx: ServerContext, a: Args) -> dict[str, Any]:
    _may(ctx, a, _experiment_of(ctx, a), "can_read")
    return {"view": view_store(ctx).get(a.req("view_id"))}


def list_views(ctx: ServerContext, a: Args) -> dict[str, Any]:
    exp_id = _experiment_id(a)
    _may(ctx, a, exp_id, "can_read")
    return {"views": view_store(ctx).list(exp_id)}


def update(ctx: ServerContext, a: Args) -> dict[str, Any]:
    _may(ctx, a, _experiment_of(ctx, a), "can_update")
    return {"view": view_store(ctx).update(a.req("view_id"), a.data.get("name"), a.data.get("state"))}


def delete(ctx: ServerContext, a: Args) -> dict[str, Any]:
    _may(ctx, a, _experiment_of(ctx, a), "can_update")
    view_store(ctx).delete(a.req("view_id"))
    return {}


ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("views/create", {"POST": create}),
    ("views/get", {"GET": get}),
    ("views/list", {"GET": list_views}),
    ("views/update", {"POST": update, "PATCH": update}),
    ("views/delete", {"POST": delete, "DELETE": delete}),
]
