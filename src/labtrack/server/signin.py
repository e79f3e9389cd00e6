"""The web UI's sign-in on a basic-auth server: a session cookie instead of a browser password prompt.

``POST labtrack/auth/sign-in`` takes ``{"username", "password"}`` as JSON (a
cross-site form cannot send it; ``guard`` refuses foreign origins), checks it
exactly as basic auth is checked (the same rate limit on failures), and sets
an HttpOnly, SameSite=Strict cookie (``auth.session_value``).  ``sign-out``
clears it; ``GET labtrack/auth/mode`` tells the UI whether to show the
sign-in page.  Nothing here logs the password.
"""

from __future__ import annotations

import json
from typing import Any

from labtrack.errors import BadRequest, LabtrackError
from labtrack.server.auth import SESSION_COOKIE, SESSION_S
from labtrack.server.base import JSON_TYPE, BaseHandler, parse_json


class SignInHandler(BaseHandler):
    """Open routes: answering them needs no credentials (they are how one gets some)."""

    open_paths = True

    def initialize(self, ctx: Any, action: str = "", **kwargs: Any) -> None:
        super().initialize(ctx)
        self.action = action

    def get(self) -> None:
        if self.action != "mode":
            self.send_error(405)
            return
        auth = self.ctx.extra.get("auth")
        user = None
        if auth is not None:
            try:
                user = auth.authenticate(self.request)
            except LabtrackError:
                user = None
        self.write_json({"basic_auth": auth is not None, "user": user.to_json() if user else None})

    def post(self) -> None:
        auth = self.ctx.extra.get("auth")
        if auth is None:
            self.send_error(404)
            return
        if self.action == "sign-out":
            self.clear_cookie(SESSION_COOKIE)
            self.write_json({})
            return
        if self.request.headers.get("Content-Type", "").split(";")[0].strip().lower() != JSON_TYPE:
            raise BadRequest("Sign in with Content-Type: application/json.")
        body = parse_json(self.request.body or b"{}")
        username, password = (body.get("username"), body.get("password")) if isinstance(body, dict) else (None, None)
        if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
            raise BadRequest("Username and password cannot be empty.")
        user, session = auth.sign_in(self.request, username, password)
        self.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Strict", expires_days=SESSION_S / 86400)
        self.write_json({"user": user.to_json()})

    def write_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", JSON_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(obj))


def routes(ctx: Any) -> list[tuple[str, type[BaseHandler], dict[str, Any]]]:
    out: list[tuple[str, type[BaseHandler], dict[str, Any]]] = []
    for prefix in ("/api/2.0/labtrack/auth/", "/ajax-api/2.0/labtrack/auth/"):
        for action in ("sign-in", "sign-out", "mode"):
            out.append((prefix + action, SignInHandler, {"ctx": ctx, "action": action}))
    return out
