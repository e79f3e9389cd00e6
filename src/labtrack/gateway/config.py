"""Gateway endpoints: what each one routes to, its key, its limits; read from gateway.yaml.

The file has MLflow's AI-gateway shape::

    endpoints:
      - name: chat
        endpoint_type: llm/v1/chat          # or llm/v1/completions, llm/v1/embeddings
        model:
          provider: openai                  # any OpenAI-compatible server (vLLM, llama.cpp...)
          name: my-model                    # the model name the provider expects
          config:
            openai_api_base: http://gpu-node-3:8000/v1
            openai_api_key: $VLLM_KEY       # an environment variable, or a file of mode 0600
        limit: {renewal_period: minute, calls: 60}
        timeout: 60                         # seconds (labtrack's own field; default 120)

A provider key is read when a call is made, from ``$NAME`` in the environment
or from a file that only its owner can read (mode 0600).  A key written into
the config file itself is refused: the file gets copied, shown and committed.
The key is never logged, returned or shown; ``KeyRef`` describes where it
comes from, never what it is.
"""

from __future__ import annotations

import os
import re
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labtrack.errors import InvalidParameterValue, LabtrackError

ENDPOINT_TYPES = ("llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings")
# The provider API path that serves each endpoint type.
UPSTREAM_PATHS = {"llm/v1/chat": "chat/completions", "llm/v1/completions": "completions",
                  "llm/v1/embeddings": "embeddings"}
PROVIDERS = ("openai",)
RENEWAL_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
DEFAULT_TIMEOUT_S = 120.0
# MLflow's rule for endpoint names (mlflow.gateway.utils.is_valid_endpoint_name).
_NAME = re.compile(r"^[a-zA-Z0-9_.-]+$")


class GatewayError(LabtrackError):
    """A gateway call that failed; ``status`` is the HTTP status it is answered with."""

    def __init__(self, message: str, error_code: str, status: int) -> None:
        super().__init__(message, error_code)
        self.status = status

    @property
    def http_status(self) -> int:  # type: ignore[override]
        return self.status


@dataclass(frozen=True)
class KeyRef:
    """Where a provider key lives: an environment variable or a 0600 file (never the key)."""

    env: str | None = None
    file: str | None = None

    def describe(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"

    def read(self) -> str:
        """The key, read now (so a rotated key takes effect without a restart)."""
        if self.env:
            value = os.environ.get(self.env)
            if not value:
                raise GatewayError(f"The provider key's environment variable {self.env} is not set.",
                                   "TEMPORARILY_UNAVAILABLE", 503)
            return value.strip()
        assert self.file is not None
        check_key_file(self.file)
        return Path(self.file).read_text().strip()


def check_key_file(path: str) -> None:
    """Refuse a key file that others could read (it must be mode 0600 or stricter)."""
    try:
        st = os.stat(path)
    except OSError:
        raise InvalidParameterValue(f"The provider key file {path} does not exist or cannot be read.") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidParameterValue(f"The provider key file {path} is not a regular file.")
    if st.st_mode & 0o077:
        raise InvalidParameterValue(
            f"The provider key file {path} is readable by others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run: chmod 600 {path}")


def key_ref(value: Any, where: str) -> KeyRef | None:
    """A KeyRef from a config value: ``$NAME`` (environment) or a path to a 0600 file."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidParameterValue(f"{where}: the provider key must be $ENV_VAR or a file path.")
    if value.startswith("$"):
        name = value[1:].strip("{}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise InvalidParameterValue(f"{where}: {value[:40]!r} is not an environment variable name.")
        return KeyRef(env=name)
    if "/" in value or value.startswith("~"):
        path = str(Path(value).expanduser())
        check_key_file(path)
        return KeyRef(file=path)
    # Never echo it: it may be the key itself.
    raise InvalidParameterValue(
        f"{where}: put the provider key in an environment variable ($NAME) or a file of mode 0600 "
        "and name that here; a key written into the config is refused.")


@dataclass(frozen=True)
class Limit:
    """At most ``calls`` calls per ``renewal_period`` (MLflow's endpoint limit)."""

    calls: int
    renewal_period: str = "minute"

    @property
    def window_s(self) -> float:
        return float(RENEWAL_SECONDS[self.renewal_period])

    def to_json(self) -> dict[str, Any]:
        return {"calls": self.calls, "key": None, "renewal_period": self.renewal_period}


@dataclass
class Endpoint:
    """One gateway endpoint: a name that routes to a model on an OpenAI-compatible server."""

    name: str
    endpoint_type: str
    model_name: str
    api_base: str
    provider: str = "openai"
    key: KeyRef | None = None
    limit: Limit | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    endpoint_id: str = field(default_factory=lambda: "e-" + uuid.uuid4().hex)
    created_at: int = field(default_factory=lambda: int(time.time() * 1000))
    last_updated_at: int = 0
    source: str = "config"  # "config" (gateway.yaml) or "api" (created over REST)

    def upstream_url(self) -> str:
        return self.api_base.rstrip("/") + "/" + UPSTREAM_PATHS[self.endpoint_type]

    def to_deployments_json(self) -> dict[str, Any]:
        """The shape ``mlflow.deployments`` reads (its ``Endpoint`` model)."""
        return {"name": self.name, "endpoint_type": self.endpoint_type,
                "model": {"name": self.model_name, "provider": self.provider},
                "endpoint_url": f"/endpoints/{self.name}/invocations",
                "limit": self.limit.to_json() if self.limit else None}


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidParameterValue("Missing value for required parameter 'name'.")
    if not _NAME.match(name):
        raise InvalidParameterValue(f"Invalid endpoint name '{name}'. Name can only contain letters, "
                                    "numbers, underscores, hyphens, and dots.")
    return name


def check_api_base(value: Any, where: str) -> str:
    if not isinstance(value, str) or not re.match(r"^https?://[^/\s]+", value):
        raise InvalidParameterValue(f"{where}: openai_api_base must be an http(s) URL such as "
                                    "http://gpu-node-3:8000/v1.")
    return value


def parse_limit(raw: Any, where: str) -> Limit | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidParameterValue(f"{where}: limit must be a mapping with calls and renewal_period.")
    calls, period = raw.get("calls"), raw.get("renewal_period", "minute")
    if not isinstance(calls, int) or isinstance(calls, bool) or calls < 1:
        raise InvalidParameterValue(f"{where}: limit.calls must be a positive integer.")
    if period not in RENEWAL_SECONDS:
        raise InvalidParameterValue(f"{where}: limit.renewal_period must be one of "
                                    f"{', '.join(RENEWAL_SECONDS)}.")
    return Limit(calls, period)


def parse_timeout(raw: Any, where: str, default: float = DEFAULT_TIMEOUT_S) -> float:
    if raw is None:
        return default
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not 0 < raw <= 3600:
        raise InvalidParameterValue(f"{where}: timeout must be a number of seconds between 0 and 3600.")
    return float(raw)


def parse_endpoint(raw: Any, index: int, default_timeout: float) -> Endpoint:
    """One entry of ``endpoints:``."""
    where = f"endpoints[{index}]"
    if not isinstance(raw, dict):
        raise InvalidParameterValue(f"{where} must be a mapping.")
    name = check_name(raw.get("name"))
    where = f"endpoint '{name}'"
    etype = raw.get("endpoint_type", raw.get("route_type"))
    if etype not in ENDPOINT_TYPES:
        raise InvalidParameterValue(f"{where}: endpoint_type must be one of {', '.join(ENDPOINT_TYPES)}.")
    model = raw.get("model")
    if not isinstance(model, dict):
        raise InvalidParameterValue(f"{where}: model must be a mapping with provider, name and config.")
    provider = model.get("provider")
    if provider not in PROVIDERS:
        raise InvalidParameterValue(f"{where}: provider {provider!r} is not supported; labtrack routes to "
                                    "OpenAI-compatible servers: provider: openai with config.openai_api_base.")
    model_name = model.get("name")
    if not isinstance(model_name, str) or not model_name:
        raise InvalidParameterValue(f"{where}: model.name is required.")
    config = model.get("config") or {}
    if not isinstance(config, dict):
        raise InvalidParameterValue(f"{where}: model.config must be a mapping.")
    api_base = check_api_base(config.get("openai_api_base"), where)
    key = key_ref(config.get("openai_api_key"), where)
    return Endpoint(name=name, endpoint_type=etype, model_name=model_name, api_base=api_base,
                    provider=provider, key=key, limit=parse_limit(raw.get("limit"), where),
                    timeout_s=parse_timeout(raw.get("timeout"), where, default_timeout))


def load_config(path: str | os.PathLike[str]) -> list[Endpoint]:
    """The endpoints of a gateway.yaml; InvalidParameterValue (one line) when it is wrong."""
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as e:
        raise InvalidParameterValue(f"Cannot read the gateway config {path}: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise InvalidParameterValue(f"The gateway config {path} is not valid YAML{at}.") from None
    if not isinstance(data, dict):
        raise InvalidParameterValue(f"The gateway config {path} must be a mapping with 'endpoints:'.")
    entries = data.get("endpoints", data.get("routes"))
    if not isinstance(entries, list):
        raise InvalidParameterValue(f"The gateway config {path} needs a list under 'endpoints:'.")
    default_timeout = parse_timeout(data.get("timeout"), "timeout")
    endpoints = [parse_endpoint(raw, i, default_timeout) for i, raw in enumerate(entries)]
    seen: set[str] = set()
    for e in endpoints:
        if e.name in seen:
            raise InvalidParameterValue(f"The gateway config {path} names endpoint '{e.name}' twice.")
        seen.add(e.name)
    return endpoints
