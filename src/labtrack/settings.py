"""One table of settings: name, default, environment variable, help.

The only module that reads the environment for server settings.  The CLI
turns flags into a ``Settings``; a flag wins over its variable, which wins
over the default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    env: str
    help: str
    # Non-empty while the setting is declared but not built yet: a value other than
    # the default is refused with this one line (it names what to use instead).
    pending: str = ""


TABLE: tuple[Setting, ...] = (
    Setting("backend_store_uri", "sqlite:///mlruns.db", "LABTRACK_BACKEND_STORE_URI",
            "SQLAlchemy URL of the database (default: mlruns.db in the working directory)."),
    Setting("artifacts_destination", "./mlruns", "LABTRACK_ARTIFACTS_DESTINATION",
            "Folder where the server stores artifacts it serves."),
    Setting("default_artifact_root", None, "LABTRACK_DEFAULT_ARTIFACT_ROOT",
            "Artifact location given to new experiments (default: mlflow-artifacts:/ when serving artifacts)."),
    Setting("serve_artifacts", True, "LABTRACK_SERVE_ARTIFACTS", "Proxy artifact uploads and downloads."),
    Setting("host", "127.0.0.1", "LABTRACK_HOST", "Address to listen on for TCP."),
    Setting("port", 5000, "LABTRACK_PORT", "TCP port (0 picks a free one)."),
    Setting("unix_socket", None, "LABTRACK_UNIX_SOCKET", "Listen on this unix socket instead of TCP."),
    Setting("token", None, "LABTRACK_SERVER_TOKEN",
            "Token that TCP clients must send (Bearer, Basic password, or ?token= in a browser)."),
    Setting("no_token", False, "LABTRACK_NO_TOKEN", "Serve TCP without a token (anyone on this host can write)."),
    Setting("idle_timeout", 0, "LABTRACK_IDLE_TIMEOUT", "Exit after this many idle seconds (0 = never)."),
    Setting("parent_pid", 0, "LABTRACK_PARENT_PID", "Exit when this process dies (set by the Jupyter proxy)."),
    Setting("static_prefix", "", "LABTRACK_STATIC_PREFIX",
            "Public path prefix when behind a proxy that strips it (e.g. /user/alice/labtrack)."),
    Setting("access_log", False, "LABTRACK_ACCESS_LOG", "Log each request's method, path and status."),
    Setting("log_file", None, "LABTRACK_LOG_FILE",
            "Log to this file instead of stderr, rotated at 5 MB with 2 old copies (server/log_limits.py)."),
    Setting("gateway_config", None, "LABTRACK_GATEWAY_CONFIG",
            "gateway.yaml of the AI gateway's endpoints (OpenAI-compatible model servers)."),
    # mlflow server's flags that labtrack answers with its own settings.
    Setting("workers", 1, "LABTRACK_WORKERS",
            "Server processes sharing one PostgreSQL database (SQLite: always one writer)."),
    Setting("app_name", None, "LABTRACK_APP_NAME",
            "mlflow's --app-name: 'basic-auth' turns on users and permissions."),
    Setting("expose_prometheus", None, "LABTRACK_EXPOSE_PROMETHEUS",
            "Folder for Prometheus metrics; serves them on /metrics."),
    Setting("allowed_hosts", None, "LABTRACK_ALLOWED_HOSTS",
            "Comma-separated Host headers answered over TCP besides loopback and this machine's own "
            "names (guards against DNS rebinding; wildcards as in mlflow)."),
    Setting("cors_allowed_origins", None, "LABTRACK_CORS_ALLOWED_ORIGINS",
            "Comma-separated origins allowed to call the API from a browser (default: same origin only)."),
    Setting("search_cache", True, "LABTRACK_SEARCH_CACHE",
            "Answer a repeated identical run search from memory while nothing has been committed to the "
            "SQLite file since (server/search_cache.py); 0 reads the database for every search."),
    # MLflow's own variable: its refusal of a scorer with code tells the user to set it.
    Setting("enable_custom_scorers", False, "MLFLOW_SERVER_ENABLE_CUSTOM_SCORERS",
            "Register @scorer (decorator) scorers, whose serialized form carries code; off as in mlflow server."),
)

_TRUE = {"1", "true", "yes", "on"}


def _coerce(value: str, default: Any) -> Any:
    if isinstance(default, bool):
        return value.strip().lower() in _TRUE
    if isinstance(default, int):
        return int(value)
    return value


@dataclass
class Settings:
    backend_store_uri: str = "sqlite:///mlruns.db"
    artifacts_destination: str = "./mlruns"
    default_artifact_root: str | None = None
    serve_artifacts: bool = True
    host: str = "127.0.0.1"
    port: int = 5000
    unix_socket: str | None = None
    token: str | None = None
    no_token: bool = False
    idle_timeout: int = 0
    parent_pid: int = 0
    static_prefix: str = ""
    access_log: bool = False
    log_file: str | None = None
    gateway_config: str | None = None
    workers: int = 1
    app_name: str | None = None
    expose_prometheus: str | None = None
    allowed_hosts: str | None = None
    cors_allowed_origins: str | None = None
    search_cache: bool = True
    enable_custom_scorers: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_sources(cls, flags: dict[str, Any]) -> Settings:
        """Flags (None = not given) over environment variables over defaults."""
        values: dict[str, Any] = {}
        for s in TABLE:
            flag = flags.get(s.name)
            if flag is not None:
                values[s.name] = flag
            elif s.env in os.environ:
                values[s.name] = _coerce(os.environ[s.env], s.default)
            else:
                values[s.name] = s.default
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def not_built(self) -> str | None:
        """The one-line refusal for a setting that is given but not built yet, else None."""
        for s in TABLE:
            if s.pending and getattr(self, s.name, s.default) != s.default:
                return s.pending
        return None
