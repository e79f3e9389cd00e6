"""Basic-auth users and per-resource permissions for each request (``--app-name basic-auth``).

Two steps, as MLflow's basic-auth app:

1. **Who** (``authenticate``, from ``base.check_token`` as soon as the headers
   are read): HTTP basic credentials, checked against the argon2 hash.  Failed
   sign-ins are rate-limited per user name and per client address; a verified
   password is remembered (keyed by a per-process HMAC, never the password) so
   an argon2 verification is paid once, not per request, and the row's hash is
   still compared on each request, so a changed password or deleted user takes
   effect at once in every server process.
2. **May they** (``authorize``, wrapping each API endpoint on its worker
   thread, where the request's fields are parsed): admins may do anything;
   others need the permission the endpoint names on its experiment or
   registered model: their own grant, else the server's default (READ).
   Creating an experiment or a model grants its creator MANAGE; searches
   leave out what the user cannot read.

Nothing here logs a credential: a refusal names the method, path and address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any

from tornado import httputil

from labtrack.errors import LabtrackError, ResourceDoesNotExist, Unauthenticated
from labtrack.store.auth import PERMISSIONS, AuthStore, Permission, User

log = logging.getLogger("labtrack.auth")

USER_ATTR = "labtrack_user"  # where the signed-in User rides on the tornado request
SESSION_COOKIE = "labtrack_session"  # the web UI's sign-in (server/signin.py)
SESSION_S = 12 * 3600
MAX_FAILURES = 5  # failed sign-ins per user name ...
MAX_ADDRESS_FAILURES = 20  # ... or per client address (many users may share one) ...
FAILURE_WINDOW_S = 60.0  # ... within this window, then 429 until it has passed

# Endpoint path (after /api/2.0/mlflow/ or /api/2.0/labtrack/) -> (resource, capability).
EXPERIMENT, MODEL = "experiment", "registered_model"
RULES: dict[str, tuple[str, str]] = {}
for _path in ("experiments/get", "experiments/get-by-name", "runs/get", "metrics/get-history", "artifacts/list",
              "runs/search", "metrics/get-history-bulk-interval", "metrics/history-columns",
              "metrics/history-downsampled", "experiments/search-datasets", "jobs/logs", "logged-models/search", "media/images",
              "runs/table"):
    RULES[_path] = (EXPERIMENT, "can_read")
for _path in ("runs/create", "runs/update", "runs/log-metric", "runs/log-parameter", "runs/set-tag",
              "runs/delete-tag", "runs/log-batch", "runs/log-model", "runs/log-inputs", "runs/outputs",
              "runs/log-series", "experiments/update", "experiments/set-experiment-tag",
              "experiments/delete-experiment-tag", "jobs/cancel", "logged-models"):
    RULES[_path] = (EXPERIMENT, "can_update")
for _path in ("experiments/delete", "experiments/restore", "runs/delete", "runs/restore"):
    RULES[_path] = (EXPERIMENT, "can_delete")
# Traces: each resolves to its experiment (by trace id, the search's locations, the new trace's location).
_TRACE = "([^/]+)"  # api_traces' path parameter
for _path in ("traces/search", "traces/get", "traces/batchGet", "traces/batchGetInfos", f"traces/{_TRACE}/info",
              f"GET traces/{_TRACE}/assessments/{_TRACE}", "traces/spans", "traces/link-to-run"):
    RULES[_path] = (EXPERIMENT, "can_read")
for _path in ("traces", "traces/log", f"traces/{_TRACE}/tags", f"traces/{_TRACE}/assessments",
              f"traces/{_TRACE}/assessments/{_TRACE}", "v1/traces"):
    RULES[_path] = (EXPERIMENT, "can_update")
RULES["traces/delete-traces"] = (EXPERIMENT, "can_delete")
# Registered scorers belong to their experiment; a list of every experiment's is filtered (``after``).
for _path in ("scorers/get", "scorers/versions", "scorers/list"):
    RULES[_path] = (EXPERIMENT, "can_read")
RULES["scorers/register"] = (EXPERIMENT, "can_update")
RULES["scorers/delete"] = (EXPERIMENT, "can_delete")
for _path in ("registered-models/get", "registered-models/get-latest-versions", "model-versions/get",
              "model-versions/get-download-uri", "registered-models/alias"):
    RULES[_path] = (MODEL, "can_read")
for _path in ("registered-models/update", "registered-models/rename", "registered-models/set-tag",
              "registered-models/delete-tag", "model-versions/create", "model-versions/update",
              "model-versions/transition-stage", "model-versions/set-tag", "model-versions/delete-tag"):
    RULES[_path] = (MODEL, "can_update")
for _path in ("registered-models/delete", "model-versions/delete"):
    RULES[_path] = (MODEL, "can_delete")


class PermissionDenied(LabtrackError):
    error_code = "PERMISSION_DENIED"


class TooManyFailures(LabtrackError):
    error_code = "REQUEST_LIMIT_EXCEEDED"


class FailureLimiter:
    """Failed sign-ins per key (a user name, an address) in a sliding window."""

    def __init__(self, limit: int = MAX_FAILURES, window_s: float = FAILURE_WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] > self.window_s:
            times.popleft()
        return times

    def blocked(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            return len(self._recent(key, now)) >= self.limit

    def fail(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            self._recent(key, now).append(now)
            if len(self._failures) > 10_000:  # bounded: forget keys with no recent failure
                for k in [k for k, v in self._failures.items() if not self._recent(k, now)]:
                    del self._failures[k]


class BasicAuth:
    """The per-request checks of a basic-auth server."""

    def __init__(self, users: AuthStore, tracking: Any, default_permission: str = "READ") -> None:
        self.users = users
        self.tracking = tracking
        self.default = PERMISSIONS[default_permission]
        self.limiter = FailureLimiter()
        self.address_limiter = FailureLimiter(MAX_ADDRESS_FAILURES)
        self._key = secrets.token_bytes(32)  # per process: verified-password marks mean nothing elsewhere
        self._verified: OrderedDict[tuple[str, bytes], str] = OrderedDict()
        self._run_experiments: OrderedDict[str, str] = OrderedDict()  # a run never changes experiment
        self._lock = threading.Lock()
        self._wrapped: dict[Any, Any] = {}
        self._paths: dict[Any, str] = {}
        self._methods: dict[Any, str] = {}

    # -- who -----------------------------------------------------------------

    def authenticate(self, request: httputil.HTTPServerRequest) -> User:
        """Check the request's basic credentials (or UI session); the User rides on the request."""
        username, password = _basic_credentials(request)
        if username is None or password is None:
            user = self._session_user(request)
            if user is None:
                raise Unauthenticated("You are not authenticated: sign in with a user name and password "
                                      "(MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD).")
        else:
            user = self.check_password(request, username, password)
        setattr(request, USER_ATTR, user)
        return user

    def check_password(self, request: httputil.HTTPServerRequest, username: str, password: str) -> User:
        """The user if ``password`` is theirs; failures count toward the rate limit."""
        name, address = "user:" + username, "addr:" + (request.remote_ip or "")
        if self.limiter.blocked(name) or self.address_limiter.blocked(address):
            raise TooManyFailures("Too many failed sign-ins; wait a minute and try again.")
        user = self.users.find_user(username)
        if user is None or not self._password_ok(user, password):
            self.limiter.fail(name)
            self.address_limiter.fail(address)
            log.warning("failed sign-in from %s for %s %s", request.remote_ip, request.method, request.path)
            raise Unauthenticated("Wrong user name or password.")
        return user

    def sign_in(self, request: httputil.HTTPServerRequest, username: str, password: str) -> tuple[User, str]:
        """Check a sign-in form's credentials (rate-limited as basic auth); the user and a session value."""
        user = self.check_password(request, username, password)
        return user, session_value(user, int(time.time()) + SESSION_S)

    def _session_user(self, request: httputil.HTTPServerRequest) -> User | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie is None:
            return None
        try:
            user_id, expiry, _mac = cookie.value.split(".", 2)
            if int(expiry) < time.time():
                return None
        except ValueError:
            return None
        user = self.users.find_user_by_id(int(user_id))
        if user is None or not hmac.compare_digest(session_value(user, int(expiry)), cookie.value):
            return None
        return user

    def _password_ok(self, user: User, password: str) -> bool:
        mark = (user.username, hmac.new(self._key, f"{user.username}\0{password}".encode(), hashlib.sha256).digest())
        with self._lock:
            if self._verified.get(mark) == user.password_hash:
                self._verified.move_to_end(mark)
                return True
        from labtrack.store.auth import verify_password

        if not verify_password(user.password_hash, password):
            return False
        with self._lock:
            self._verified[mark] = user.password_hash
            while len(self._verified) > 10_000:
                self._verified.popitem(last=False)
        return True

    # -- may they --------------------------------------------------------------

    def learn_routes(self, tables: list[list[tuple[str, dict[str, Any]]]]) -> None:
        """Remember each endpoint function's path (and method), so that ``authorize`` finds its rule."""
        for table in tables:
            for path, methods in table:
                for method, fn in methods.items():
                    self._paths.setdefault(fn, path)
                    self._methods.setdefault(fn, method)

    def wrap(self, fn: Any) -> Any:
        """``fn`` with the permission check before it (and MANAGE for creators, filtered searches)."""
        wrapped = self._wrapped.get(fn)
        if wrapped is None:
            path = self._paths.get(fn, "")
            method = self._methods.get(fn, "")

            def wrapped(ctx: Any, args: Any, *rest: Any) -> Any:
                user = getattr(args, "user", None)
                if user is None:
                    raise Unauthenticated("You are not authenticated.")
                if not user.is_admin:
                    self.authorize(user, path, args, rest, method)
                reply = fn(ctx, args, *rest)
                return self.after(user, path, args, reply)
            wrapped.__name__ = getattr(fn, "__name__", "endpoint")
            self._wrapped[fn] = wrapped
        return wrapped

    def permission(self, user: User, resource_type: str, resource_id: str) -> Permission:
        """The user's effective permission on one resource."""
        if user.is_admin:
            return PERMISSIONS["MANAGE"]
        return self.users.granted(user.id, resource_type, resource_id) or self.default

    def authorize(self, user: User, path: str, args: Any, path_args: tuple[Any, ...] = (), method: str = "") -> None:
        rule = RULES.get(f"{method} {path}") or RULES.get(path)
        if rule is None:
            return  # creating, searching and the rest: any signed-in user (searches are filtered)
        resource_type, capability = rule
        if resource_type != EXPERIMENT:
            ids = self._models(args)
        elif path.startswith(("traces", "v1/traces")):
            ids = self._trace_experiments(args, path_args)
        else:
            ids = self._experiments(args)
        self.require(user, resource_type, ids, capability)

    def require(self, user: User, resource_type: str, ids: Iterable[str], capability: str) -> None:
        """Refuse unless ``user`` has ``capability`` on every resource of ``ids`` (admins always may)."""
        if user.is_admin:
            return
        for rid in ids:
            if not getattr(self.permission(user, resource_type, str(rid)), capability):
                raise PermissionDenied("Permission denied")

    def after(self, user: User, path: str, args: Any, reply: Any) -> Any:
        if path == "experiments/create" and isinstance(reply, dict) and reply.get("experiment_id"):
            self.users.grant(user.username, EXPERIMENT, str(reply["experiment_id"]), "MANAGE", replace=True)
        elif path == "registered-models/create" and isinstance(reply, dict):
            name = (reply.get("registered_model") or {}).get("name")
            if name:
                self.users.grant(user.username, MODEL, name, "MANAGE", replace=True)
        elif path == "registered-models/delete":
            self.users.drop_resource(MODEL, str(args.str("name") or ""))
        elif not user.is_admin and isinstance(reply, dict):
            if path in ("experiments/search", "experiments/activity"):
                reply["experiments"] = [e for e in reply.get("experiments") or []
                                        if self.permission(user, EXPERIMENT, str(e.get("experiment_id"))).can_read]
            elif path == "registered-models/search":
                reply["registered_models"] = [m for m in reply.get("registered_models") or []
                                              if self.permission(user, MODEL, str(m.get("name"))).can_read]
            elif path == "scorers/list" and reply.get("scorers"):
                reply["scorers"] = [x for x in reply["scorers"]
                                    if self.permission(user, EXPERIMENT, str(x.get("experiment_id"))).can_read]
                if not reply["scorers"]:
                    del reply["scorers"]
            elif path == "model-versions/search":
                reply["model_versions"] = [v for v in reply.get("model_versions") or []
                                           if self.permission(user, MODEL, str(v.get("name"))).can_read]
        return reply

    def _experiments(self, args: Any) -> list[str]:
        """The experiments a request touches (its id, its run's, its name's)."""
        if args.has("experiment_id"):
            return [str(args._get("experiment_id"))]  # a string from mlflow, a number from some clients
        ids = [str(i) for i in args.list("experiment_ids")]
        if ids:
            return ids
        run_id = args.str("run_id") or args.str("run_uuid")
        if run_id:
            return [self._run_experiment(run_id)]
        name = args.str("experiment_name")
        if name:
            exp = self.tracking.get_experiment_by_name(name)
            if exp is None:
                raise ResourceDoesNotExist(f"Could not find experiment with name '{name}'")
            return [str(exp.experiment_id)]
        return []

    def _trace_experiments(self, args: Any, path_args: tuple[Any, ...]) -> list[str]:
        """The experiments a trace request touches: its traces', its search's, its new trace's."""
        ids = {str(loc.get("mlflow_experiment", {}).get("experiment_id"))
               for loc in (args.data.get("locations") or []) if isinstance(loc, dict)}
        trace = args.data.get("trace")
        if isinstance(trace, dict):  # StartTraceV3: where the new trace goes
            loc = ((trace.get("trace_info") or {}).get("trace_location") or {}).get("mlflow_experiment") or {}
            if loc.get("experiment_id") is not None:
                ids.add(str(loc["experiment_id"]))
        trace_ids = [str(t) for t in path_args[:1]]
        trace_ids += [t for t in (args.str("trace_id"), args.str("request_id")) if t]
        trace_ids += [str(t) for t in args.list("trace_ids")]
        ids.update(self._trace_experiment(t) for t in trace_ids)
        ids.update(self._experiments(args))  # experiment_id(s), run_id (link-to-run)
        ids.discard("None")
        ids.discard("")
        return sorted(ids)

    def _trace_experiment(self, trace_id: str) -> str:
        from sqlalchemy import select

        from labtrack.store.schema import traces

        exp = self.tracking.read(lambda conn: conn.execute(
            select(traces.c.experiment_id).where(traces.c.trace_id == trace_id)).scalar())
        return "" if exp is None else str(exp)  # an unknown trace: the endpoint answers 404 itself

    def _run_experiment(self, run_id: str) -> str:
        with self._lock:
            known = self._run_experiments.get(run_id)
        if known is not None:
            return known
        exp_id = str(self.tracking.get_run(run_id).info.experiment_id)
        with self._lock:
            self._run_experiments[run_id] = exp_id
            while len(self._run_experiments) > 100_000:
                self._run_experiments.popitem(last=False)
        return exp_id

    def check_trace_export(self, request: httputil.HTTPServerRequest, experiment_id: str) -> None:
        """``POST /v1/traces`` (OTLP spans): EDIT on the experiment its header names, as StartTrace."""
        user = getattr(request, USER_ATTR, None)
        if user is None:
            raise Unauthenticated("You are not authenticated.")
        if not user.is_admin:
            from labtrack.server.args import Args

            self.authorize(user, "v1/traces", Args({"experiment_id": experiment_id}))

    def check_artifact(self, request: httputil.HTTPServerRequest, rel: str = "", run_id: str = "") -> None:
        """The proxied artifact service's check: ``<experiment id>/...`` paths, or a run's artifacts.

        Reading needs READ on the experiment, uploading EDIT, deleting MANAGE
        (MLflow's rules for its artifact proxy); a path outside any experiment
        is for admins only.
        """
        user = getattr(request, USER_ATTR, None)
        if user is None:
            raise Unauthenticated("You are not authenticated.")
        if user.is_admin:
            return
        capability = {"GET": "can_read", "PUT": "can_update", "DELETE": "can_delete"}.get(
            request.method or "", "can_manage")
        if run_id:
            exp_id: str | None = self._run_experiment(run_id)
        else:
            head = rel.lstrip("/").split("/", 1)[0]
            exp_id = head if head.isdigit() else None
        if exp_id is None or not getattr(self.permission(user, EXPERIMENT, exp_id), capability):
            raise PermissionDenied("Permission denied")

    @staticmethod
    def _models(args: Any) -> list[str]:
        name = args.str("name")
        return [name] if name else []


def session_value(user: User, expiry: int) -> str:
    """A browser session: the user, its expiry, and a MAC keyed by the user's password hash.

    Every server process on the database can check it without a shared secret,
    and changing the password (or deleting the user) ends every session at once.
    """
    mac = hmac.new(user.password_hash.encode(), f"labtrack-session:{user.id}:{expiry}".encode(),
                   hashlib.sha256).hexdigest()
    return f"{user.id}.{expiry}.{mac}"


def _basic_credentials(request: httputil.HTTPServerRequest) -> tuple[str | None, str | None]:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None, None
    try:
        username, password = base64.b64decode(header[6:], validate=True).decode("utf-8").split(":", 1)
    except (ValueError, UnicodeDecodeError):
        return None, None
    return username, password


def install(ctx: Any, default_permission: str = "READ") -> BasicAuth:
    """Turn on basic auth for the server of ``ctx``: its routes, and the checks ``base`` calls."""
    from labtrack.server import (api_artifacts, api_auth, api_jobs, api_logged_models, api_media, api_registry,
                                 api_tracking)

    store = ctx.store
    users = AuthStore(store.read, store.write)
    auth = BasicAuth(users, store, default_permission)
    # app.routes() teaches it the rest: every table it serves, so that no rule waits on a
    # route it never learned.
    auth.learn_routes([api_tracking.ROUTES, api_tracking.LABTRACK_ROUTES, api_registry.ROUTES,
                       api_logged_models.ROUTES, api_artifacts.ROUTES, api_jobs.LABTRACK_ROUTES,
                       api_media.LABTRACK_ROUTES])
    ctx.extra["auth"] = auth
    ctx.extra.setdefault("routes", []).extend(api_auth.ROUTES)
    return auth


def current_user(args: Any) -> User:
    user = getattr(args, "user", None)
    if user is None:
        raise Unauthenticated("You are not authenticated.")
    return user  # type: ignore[no-any-return]

