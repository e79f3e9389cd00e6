"""MLflow's basic-auth REST endpoints (``mlflow.server.get_app_client("basic-auth")``).

Users: ``users/create|get|current|list|update-password|update-admin|delete``;
per-resource grants: ``users/permissions/grant|revoke|get`` (API 3.0, also
served under 2.0).  Who may call what follows MLflow's validators: admins
anything; a user may read themselves, their own permissions, and change
their password (giving the current one); granting and revoking a permission
on a resource needs MANAGE on it.
Mounted only with ``--app-name basic-auth`` (``server/auth.install``).
"""

from __future__ import annotations

from typing import Any

from labtrack.errors import BadRequest, InvalidParameterValue
from labtrack.server.args import Args
from labtrack.server.auth import PermissionDenied, current_user
from labtrack.store.auth import check_resource_type, verify_password


def _auth(ctx: Any) -> Any:
    return ctx.extra["auth"]


def _admin(args: Args) -> Any:
    user = current_user(args)
    if not user.is_admin:
        raise PermissionDenied("Permission denied")
    return user


def _self_or_admin(args: Args, username: str) -> Any:
    user = current_user(args)
    if not (user.is_admin or user.username == username):
        raise PermissionDenied("Permission denied")
    return user


def create_user(ctx: Any, a: Args) -> dict[str, Any]:
    _admin(a)
    username, password = a.str("username"), a.str("password")
    if not username or not password:
        raise BadRequest("Username and password cannot be empty.")
    return {"user": _auth(ctx).users.create_user(username, password).to_json()}


def get_user(ctx: Any, a: Args) -> dict[str, Any]:
    username = a.req("username")
    _self_or_admin(a, username)
    return {"user": _auth(ctx).users.get_user(username).to_json()}


def get_current_user(ctx: Any, a: Args) -> dict[str, Any]:
    user = current_user(a)
    return {"user": user.to_json(), "is_basic_auth": True}


def list_users(ctx: Any, a: Args) -> dict[str, Any]:
    current_user(a)
    return {"users": [dict(u.to_json(), roles=[]) for u in _auth(ctx).users.list_users()]}


def update_user_password(ctx: Any, a: Args) -> dict[str, Any]:
    username, password = a.req("username"), a.str("password")
    user = _self_or_admin(a, username)
    users = _auth(ctx).users
    if user.username == username:
        current = a.str("current_password")
        if not current:
            raise InvalidParameterValue("Current password is required when changing your own password.")
        if not verify_password(users.get_user(username).password_hash, current):
            raise InvalidParameterValue("Current password does not match.")
        if password == current:
            raise InvalidParameterValue("New password must differ from the current password.")
    users.update_password(username, password)
    return {}


def update_user_admin(ctx: Any, a: Args) -> dict[str, Any]:
    _admin(a)
    _auth(ctx).users.update_admin(a.req("username"), a.bool("is_admin"))
    return {}


def delete_user(ctx: Any, a: Args) -> dict[str, Any]:
    user = _admin(a)
    username = a.req("username")
    if username == user.username:
        raise BadRequest("Users cannot delete their own account. Ask another admin to delete this user instead.")
    _auth(ctx).users.delete_user(username)
    return {}


def _may_manage(ctx: Any, a: Args, resource_type: str, resource_id: str) -> None:
    user = current_user(a)
    if not _auth(ctx).permission(user, resource_type, resource_id).can_manage:
        raise PermissionDenied("Permission denied")


def grant_user_permission(ctx: Any, a: Args) -> dict[str, Any]:
    rtype, rid = check_resource_type(a.str("resource_type")), a.req("resource_id")
    _may_manage(ctx, a, rtype, rid)
    _auth(ctx).users.grant(a.req("username"), rtype, rid, a.str("permission"))
    return {}


def revoke_user_permission(ctx: Any, a: Args) -> dict[str, Any]:
    rtype, rid = check_resource_type(a.str("resource_type")), a.req("resource_id")
    _may_manage(ctx, a, rtype, rid)
    _auth(ctx).users.revoke(a.req("username"), rtype, rid)
    return {}


def get_user_permission(ctx: Any, a: Args) -> dict[str, Any]:
    rtype, rid = check_resource_type(a.str("resource_type")), a.req("resource_id")
    username = a.req("username")
    _self_or_admin(a, username)
    auth = _auth(ctx)
    perm = auth.permission(auth.users.get_user(username), rtype, rid)
    # "allowed" is MLflow's can_use: USE, EDIT and MANAGE (READ alone is not enough).
    return {"allowed": perm.can_use, "permission": perm.name}


ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("users/create", {"POST": create_user}),
    ("users/get", {"GET": get_user}),
    ("users/current", {"GET": get_current_user}),
    ("users/list", {"GET": list_users}),
    ("users/update-password", {"PATCH": update_user_password}),
    ("users/update-admin", {"PATCH": update_user_admin}),
    ("users/delete", {"DELETE": delete_user}),
    ("users/permissions/grant", {"POST": grant_user_permission}),
    ("users/permissions/revoke", {"POST": revoke_user_permission}),
    ("users/permissions/get", {"GET": get_user_permission}),
]
