"""The checks made as soon as a request's headers are parsed, before any body is read.

Every user of a login node can open a loopback connection (issue #19), so a
request is judged on its headers alone, in this order:

1. ``Host`` (TCP only): a browser page from ``evil.example`` that DNS-rebinds
   to 127.0.0.1 sends ``Host: evil.example``; only loopback names, this
   machine's own names, address literals (a rebinding needs a name) and
   ``--allowed-hosts`` are answered (403).  A unix socket sits in a private
   folder: no check.
2. ``Origin`` on a state-changing API call: same origin, or one of
   ``--cors-allowed-origins`` (MLflow's flag, wildcards allowed); others 403.
   Unlike MLflow, other ports of localhost are NOT trusted by default: on a
   login node they belong to other users.
3. Authentication: ``base.check_token`` (the one auth decision) unless the
   route is open (``/health``, ``/version``, the page and its static files).

A refused request is answered at once and its connection closed, so a body
announced by an unauthenticated client is never read into memory.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import ipaddress
import json
import socket
from typing import Any

from tornado import httputil

from labtrack.errors import LabtrackError
from labtrack.server.log_limits import refusals

INVALID_HOST_MSG = "Invalid Host header - possible DNS rebinding attack detected"
CORS_BLOCKED_MSG = "Cross-origin request blocked"
STATE_CHANGING = frozenset({"POST", "PUT", "DELETE", "PATCH"})
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]", "::1")
# A page of ours may be framed by the same origin only (JupyterLab's Lab tab is same-origin).
FRAME_HEADERS = (("X-Frame-Options", "SAMEORIGIN"), ("Content-Security-Policy", "frame-ancestors 'self'"))
COOKIE_PREFIX = "labtrack_token_"


def _split_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def allowed_hosts(settings: Any) -> list[str]:
    """Host header patterns answered over TCP: loopback and this machine, plus --allowed-hosts."""
    names = list(LOOPBACK_NAMES)
    bound = getattr(settings, "host", "") or ""
    if bound and bound not in ("0.0.0.0", "::", ""):
        names.append(f"[{bound}]" if ":" in bound else bound)
    try:  # not getfqdn(): on an offline cluster its DNS lookup may hang
        hostname = socket.gethostname()
        names += [hostname, hostname.split(".")[0]]
    except OSError:
        pass
    patterns = [n.lower() for n in names if n]
    patterns += [p.lower() for p in _split_list(getattr(settings, "allowed_hosts", None))]
    return patterns


def host_allowed(patterns: list[str], host: str) -> bool:
    """Whether a Host header (with or without its port) matches one of ``patterns``."""
    host = host.strip().lower()
    if not host:
        return False
    if "*" in patterns:
        return True
    bare = host
    if host.startswith("["):
        bare = host[: host.find("]") + 1] if "]" in host else host
    elif host.count(":") == 1:
        bare = host.split(":", 1)[0]
    if bare in patterns or host in patterns:
        return True
    if _ip_literal(bare):
        return True  # rebinding needs a name the attacker controls; an address literal is no such name
    return any("*" in p and (fnmatch.fnmatchcase(host, p) or fnmatch.fnmatchcase(bare, p)) for p in patterns)


def host_ok(ctx: Any, host: str) -> bool:
    """Whether a TCP request's Host header is answered by this server (``host_allowed``)."""
    # Made once: getfqdn may ask DNS.
    return host_allowed(ctx.one("allowed_hosts", lambda: allowed_hosts(ctx.settings)), host)


def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def origin_allowed(settings: Any, origin: str, host: str) -> bool:
    """Same origin as the Host we were reached by, or one of --cors-allowed-origins."""
    allowed = _split_list(getattr(settings, "cors_allowed_origins", None))
    if "*" in allowed:
        return True
    scheme_host = origin.split("://", 1)[-1].rstrip("/").lower()
    if scheme_host == host.strip().lower():
        return True
    return any(fnmatch.fnmatchcase(origin, a) if "*" in a else origin == a for a in allowed)


def cors_headers(settings: Any, origin: str | None) -> list[tuple[str, str]]:
    """Access-Control-* headers for a configured origin (none for same-origin or others)."""
    if not origin:
        return []
    allowed = _split_list(getattr(settings, "cors_allowed_origins", None))
    if "*" in allowed:  # as MLflow: a wildcard never carries credentials
        return [("Access-Control-Allow-Origin", "*")]
    if any(fnmatch.fnmatchcase(origin, a) if "*" in a else origin == a for a in allowed):
        return [("Access-Control-Allow-Origin", origin), ("Access-Control-Allow-Credentials", "true"),
                ("Vary", "Origin")]
    return []


def cookie_name(token: str) -> str:
    """The browser cookie of the server holding ``token``: its name names that server.

    Browsers do not scope cookies by port, so every labtrack server on
    127.0.0.1 would share one ``labtrack_token`` cookie (and overwrite it).
    """
    return COOKIE_PREFIX + hashlib.sha256(b"labtrack-server-id:" + token.encode()).hexdigest()[:12]


def cookie_value(token: str) -> str:
    """What the cookie holds: a credential derived from the token, valid for this server only."""
    return hmac.new(token.encode(), b"labtrack-browser-cookie", hashlib.sha256).hexdigest()


class Refusal(httputil.HTTPMessageDelegate):
    """Answers a request from its headers alone, then closes; its body is never read."""

    def __init__(self, request: httputil.HTTPServerRequest, status: int, body: bytes, ctype: str,
                 extra: list[tuple[str, str]] | None = None) -> None:
        self.request = request
        self.status = status
        self.body = body
        self.ctype = ctype
        self.extra = extra or []

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> None:
        connection = self.request.connection
        assert connection is not None
        h = httputil.HTTPHeaders({"Content-Type": self.ctype, "Content-Length": str(len(self.body))})
        for name, value in self.extra:
            h[name] = value
        if self.status >= 400:
            h["Connection"] = "close"
        connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", self.status, httputil.responses.get(self.status, "")),
            h, self.body)
        connection.finish()

    def data_received(self, chunk: bytes) -> None:
        return None

    def finish(self) -> None:
        return None


def _json(request: httputil.HTTPServerRequest, exc: LabtrackError) -> Refusal:
    body = json.dumps(exc.to_json()).encode()
    return Refusal(request, exc.http_status, body, "application/json")


def _is_api(path: str) -> bool:
    return path.startswith(("/api/", "/ajax-api/"))


def screen(ctx: Any, request: httputil.HTTPServerRequest, open_route: bool) -> Refusal | None:
    """The refusal for a request judged on its headers (Host, Origin, token), or None to go on."""
    from labtrack.server.base import check_token, via_unix_socket

    settings = ctx.settings
    tcp = not via_unix_socket(request)
    host = request.headers.get("Host", "")
    if tcp and not host_ok(ctx, host):
        refusals.note("refused a request with a Host header not allowed, from %s: %s %s",
                      request.remote_ip, request.method, request.path)
        return Refusal(request, 403, INVALID_HOST_MSG.encode(), "text/plain")
    origin = request.headers.get("Origin")
    if origin and _is_api(request.path):
        if request.method == "OPTIONS":
            cors = cors_headers(settings, origin)
            if cors:
                cors += [("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS, PATCH"),
                         ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
                         ("Access-Control-Max-Age", "600")]
                return Refusal(request, 204, b"", "text/plain", cors)
        elif request.method in STATE_CHANGING and not origin_allowed(settings, origin, host):
            refusals.note("refused a cross-origin %s %s from %s", request.method, request.path,
                          request.remote_ip)
            return Refusal(request, 403, CORS_BLOCKED_MSG.encode(), "text/plain")
    if not open_route:
        try:
            check_token(ctx, request)
        except LabtrackError as exc:
            refusals.note("refused an unauthenticated %s %s from %s", request.method, request.path,
                          request.remote_ip)
            return _json(request, exc)
    return None


__all__ = ["FRAME_HEADERS", "Refusal", "allowed_hosts", "cookie_name", "cookie_value", "cors_headers",
           "host_allowed", "host_ok", "origin_allowed", "screen"]
