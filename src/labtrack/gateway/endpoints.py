"""The gateway's endpoint table: those of gateway.yaml, plus those made over MLflow 3's REST API.

MLflow 3.17 configures its gateway through three kinds of objects: a *secret*
(a provider key and its settings), a *model definition* (a provider's model
that uses a secret) and an *endpoint* (a name whose model configs point at
model definitions).  labtrack serves the same objects with one difference: a
secret names where the key is (``auth_config.api_key_env`` or
``auth_config.api_key_file``, a 0600 file) and never holds the key itself, so
``secret_value`` is refused.  Objects made over the API: a
labtrack server keeps them in its database (``store.gateway``); a standalone
``labtrack gateway`` keeps them for as long as it runs.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from labtrack.errors import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from labtrack.gateway.config import (Endpoint, KeyRef, check_api_base, check_key_file, check_name, load_config,
                                     parse_limit, parse_timeout)
from labtrack.gateway.limits import RateLimiter

LINKAGE_TYPES = ("PRIMARY", "FALLBACK")


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Secret:
    secret_id: str
    secret_name: str
    provider: str
    key: KeyRef | None
    api_base: str
    created_at: int
    last_updated_at: int

    def to_json(self) -> dict[str, Any]:
        # Where the key is, never the key.
        masked = {"api_key": f"from {self.key.describe()}"} if self.key else {}
        return {"secret_id": self.secret_id, "secret_name": self.secret_name, "provider": self.provider,
                "masked_values": masked, "auth_config": {"api_base": self.api_base},
                "created_at": self.created_at, "last_updated_at": self.last_updated_at}


@dataclass
class ModelDefinition:
    model_definition_id: str
    name: str
    secret_id: str
    provider: str
    model_name: str
    created_at: int
    last_updated_at: int

    def to_json(self, secrets: dict[str, Secret]) -> dict[str, Any]:
        secret = secrets.get(self.secret_id)
        return {"model_definition_id": self.model_definition_id, "name": self.name,
                "secret_id": self.secret_id, "secret_name": secret.secret_name if secret else None,
                "provider": self.provider, "model_name": self.model_name,
                "created_at": self.created_at, "last_updated_at": self.last_updated_at}


@dataclass
class ApiEndpoint:
    """An endpoint made over REST: MLflow's shape, resolved to an ``Endpoint`` for calls."""

    endpoint_id: str
    name: str
    endpoint_type: str
    model_configs: list[dict[str, Any]]
    created_at: int
    last_updated_at: int
    tags: dict[str, str] = field(default_factory=dict)
    limit: Any = None
    timeout_s: float | None = None


class ObjectStore(Protocol):
    """Where objects made over REST are kept (``labtrack.store.gateway.GatewayStore``)."""

    def load(self) -> list[dict[str, Any]]: ...

    def put(self, kind: str, object_id: str, name: str, body: dict[str, Any], created_at: int,
            last_updated_at: int) -> None: ...

    def delete(self, kind: str, object_id: str) -> None: ...


class Gateway:
    """Endpoints by name (gateway.yaml's and those made over REST) and the rate limiter."""

    def __init__(self, endpoints: list[Endpoint] | None = None, store: ObjectStore | None = None) -> None:
        self.config_endpoints = {e.name: e for e in endpoints or []}
        self.secrets: dict[str, Secret] = {}
        self.models: dict[str, ModelDefinition] = {}
        self.api_endpoints: dict[str, ApiEndpoint] = {}
        self.limiter = RateLimiter()
        self._lock = threading.RLock()
        self.store = store
        if store is not None:
            self._load(store)

    @classmethod
    def from_config(cls, path: str | None, store: ObjectStore | None = None) -> Gateway:
        return cls(load_config(path) if path else [], store)

    # -- what the database keeps -------------------------------------------------------
    def _load(self, store: ObjectStore) -> None:
        for row in store.load():
            b, oid, created, updated = row["body"], row["id"], row["created_at"], row["last_updated_at"]
            if row["kind"] == "secret":
                key = KeyRef(env=b.get("key_env"), file=b.get("key_file")) if (b.get("key_env") or b.get("key_file")) else None
                self.secrets[oid] = Secret(oid, row["name"], b["provider"], key, b["api_base"], created, updated)
            elif row["kind"] == "model_definition":
                self.models[oid] = ModelDefinition(oid, row["name"], b["secret_id"], b["provider"], b["model_name"],
                                                   created, updated)
            elif row["kind"] == "endpoint":
                self.api_endpoints[oid] = ApiEndpoint(
                    oid, row["name"], b["endpoint_type"], b["model_configs"], created, updated, tags=b.get("tags", {}),
                    limit=parse_limit(b.get("limit"), f"endpoint '{row['name']}'"), timeout_s=b.get("timeout_s"))

    def _save(self, obj: Secret | ModelDefinition | ApiEndpoint) -> None:
        if self.store is None:
            return
        if isinstance(obj, Secret):
            key = obj.key or KeyRef()
            self.store.put("secret", obj.secret_id, obj.secret_name,
                           {"provider": obj.provider, "api_base": obj.api_base, "key_env": key.env,
                            "key_file": key.file}, obj.created_at, obj.last_updated_at)
        elif isinstance(obj, ModelDefinition):
            self.store.put("model_definition", obj.model_definition_id, obj.name,
                           {"secret_id": obj.secret_id, "provider": obj.provider, "model_name": obj.model_name},
                           obj.created_at, obj.last_updated_at)
        else:
            self.store.put("endpoint", obj.endpoint_id, obj.name,
                           {"endpoint_type": obj.endpoint_type, "model_configs": obj.model_configs, "tags": obj.tags,
                            "limit": obj.limit.to_json() if obj.limit else None, "timeout_s": obj.timeout_s},
                           obj.created_at, obj.last_updated_at)

    def _forget(self, kind: str, object_id: str) -> None:
        if self.store is not None:
            self.store.delete(kind, object_id)

    # -- calls ---------------------------------------------------------------------
    def endpoint(self, name: Any) -> Endpoint:
        """The endpoint called ``name``; RESOURCE_DOES_NOT_EXIST if there is none."""
        with self._lock:
            if isinstance(name, str) and name in self.config_endpoints:
                return self.config_endpoints[name]
            api = next((e for e in self.api_endpoints.values() if e.name == name), None)
            if api is not None:
                return self._resolve(api)
        raise ResourceDoesNotExist(f"The endpoint '{name}' is not present or active on the server. "
                                   "Please verify the endpoint name.")

    def list_endpoints(self) -> list[Endpoint]:
        with self._lock:
            names = sorted(set(self.config_endpoints) | {e.name for e in self.api_endpoints.values()})
        return [self.endpoint(n) for n in names]

    def _resolve(self, api: ApiEndpoint) -> Endpoint:
        primary = next((c for c in api.model_configs if c["linkage_type"] == "PRIMARY"), api.model_configs[0])
        model = self.models[primary["model_definition_id"]]
        secret = self.secrets[model.secret_id]
        return Endpoint(name=api.name, endpoint_type=api.endpoint_type, model_name=model.model_name,
                        api_base=secret.api_base, provider=model.provider, key=secret.key, limit=api.limit,
                        timeout_s=api.timeout_s or 120.0, endpoint_id=api.endpoint_id,
                        created_at=api.created_at, last_updated_at=api.last_updated_at, source="api")

    # -- secrets -------------------------------------------------------------------
    def create_secret(self, secret_name: Any, provider: Any, auth_config: Any, secret_value: Any) -> Secret:
        if not isinstance(secret_name, str) or not secret_name:
            raise InvalidParameterValue("Missing value for required parameter 'secret_name'.")
        if secret_value:
            raise InvalidParameterValue(
                "labtrack keeps provider keys out of its database: put the key in an environment "
                "variable or a file of mode 0600 and name it in auth_config.api_key_env or "
                "auth_config.api_key_file (secret_value is refused).")
        provider = _check_provider(provider)
        auth = auth_config if isinstance(auth_config, dict) else {}
        key: KeyRef | None = None
        if auth.get("api_key_env"):
            key = KeyRef(env=str(auth["api_key_env"]))
        elif auth.get("api_key_file"):
            check_key_file(str(auth["api_key_file"]))
            key = KeyRef(file=str(auth["api_key_file"]))
        api_base = check_api_base(auth.get("api_base"), f"secret '{secret_name}'")
        with self._lock:
            if any(s.secret_name == secret_name for s in self.secrets.values()):
                raise ResourceAlreadyExists(f"A secret named '{secret_name}' already exists.")
            now = _now_ms()
            secret = Secret("s-" + uuid.uuid4().hex, secret_name, provider, key, api_base, now, now)
            self._save(secret)
            self.secrets[secret.secret_id] = secret
        return secret

    def get_secret(self, secret_id: Any = None, secret_name: Any = None) -> Secret:
        with self._lock:
            for s in self.secrets.values():
                if (secret_id and s.secret_id == secret_id) or (secret_name and s.secret_name == secret_name):
                    return s
        raise ResourceDoesNotExist(f"GatewaySecret not found ({_which(secret_id, secret_name, 'secret')})")

    def delete_secret(self, secret_id: Any) -> None:
        with self._lock:
            secret = self.get_secret(secret_id=secret_id)
            if any(m.secret_id == secret.secret_id for m in self.models.values()):
                raise InvalidParameterValue(f"Secret '{secret.secret_name}' is used by a model definition.")
            self._forget("secret", secret.secret_id)
            del self.secrets[secret.secret_id]

    # -- model definitions -----------------------------------------------------------
    def create_model(self, name: Any, secret_id: Any, provider: Any, model_name: Any) -> ModelDefinition:
        for field_name, value in (("name", name), ("secret_id", secret_id), ("provider", provider),
                                  ("model_name", model_name)):
            if not isinstance(value, str) or not value:
                raise InvalidParameterValue(f"Missing value for required parameter '{field_name}'.")
        provider = _check_provider(provider)
        with self._lock:
            self.get_secret(secret_id=secret_id)
            if any(m.name == name for m in self.models.values()):
                raise ResourceAlreadyExists(f"A model definition named '{name}' already exists.")
            now = _now_ms()
            model = ModelDefinition("d-" + uuid.uuid4().hex, name, secret_id, provider, model_name, now, now)
            self._save(model)
            self.models[model.model_definition_id] = model
        return model

    def get_model(self, model_definition_id: Any) -> ModelDefinition:
        with self._lock:
            if model_definition_id in self.models:
                return self.models[model_definition_id]
        raise ResourceDoesNotExist(f"GatewayModelDefinition not found (model_definition_id='{model_definition_id}')")

    def delete_model(self, model_definition_id: Any) -> None:
        with self._lock:
            model = self.get_model(model_definition_id)
            if any(c["model_definition_id"] == model.model_definition_id
                   for e in self.api_endpoints.values() for c in e.model_configs):
                raise InvalidParameterValue(f"Model definition '{model.name}' is used by an endpoint.")
            self._forget("model_definition", model.model_definition_id)
            del self.models[model.model_definition_id]

    # -- endpoints -------------------------------------------------------------------
    def _model_configs(self, raw: Any) -> list[dict[str, Any]]:
        if not isinstance(raw, list) or not raw:
            raise InvalidParameterValue("Missing value for required parameter 'model_configs'.")
        configs = []
        for i, c in enumerate(raw):
            if not isinstance(c, dict):
                raise InvalidParameterValue(f"model_configs[{i}] must be an object.")
            if c.get("linkage_type") not in LINKAGE_TYPES:
                raise InvalidParameterValue(
                    f"Invalid or missing value for required parameter 'linkage_type' in model_configs[{i}]. "
                    f"Must be one of: {', '.join(LINKAGE_TYPES)}.")
            configs.append({"model_definition_id": c.get("model_definition_id"), "linkage_type": c["linkage_type"],
                            "weight": float(c.get("weight", 1.0)), "fallback_order": c.get("fallback_order")})
        missing = [str(c["model_definition_id"]) for c in configs if c["model_definition_id"] not in self.models]
        if missing:
            raise ResourceDoesNotExist(f"Model definitions not found: {', '.join(missing)}")
        return configs

    def create_endpoint(self, name: Any, model_configs: Any, endpoint_type: Any = None, limit: Any = None,
                        timeout: Any = None) -> ApiEndpoint:
        name = check_name(name)
        etype = endpoint_type or "llm/v1/chat"
        with self._lock:
            configs = self._model_configs(model_configs)
            if name in self.config_endpoints or any(e.name == name for e in self.api_endpoints.values()):
                raise ResourceAlreadyExists(f"GatewayEndpoint with name '{name}' already exists.")
            now = _now_ms()
            ep = ApiEndpoint("e-" + uuid.uuid4().hex, name, _check_type(etype), configs, now, now,
                             limit=parse_limit(limit, f"endpoint '{name}'"),
                             timeout_s=parse_timeout(timeout, f"endpoint '{name}'") if timeout else None)
            self._save(ep)
            self.api_endpoints[ep.endpoint_id] = ep
        return ep

    def get_api_endpoint(self, endpoint_id: Any = None, name: Any = None) -> ApiEndpoint:
        with self._lock:
            for e in self.api_endpoints.values():
                if (endpoint_id and e.endpoint_id == endpoint_id) or (name and e.name == name):
                    return e
        raise ResourceDoesNotExist(f"GatewayEndpoint not found ({_which(endpoint_id, name, 'endpoint')})")

    def update_endpoint(self, endpoint_id: Any, name: Any = None, model_configs: Any = None,
                        limit: Any = None) -> ApiEndpoint:
        with self._lock:
            ep = self.get_api_endpoint(endpoint_id=endpoint_id)
            if name:
                name = check_name(name)
                if name != ep.name and (name in self.config_endpoints or
                                        any(e.name == name for e in self.api_endpoints.values())):
                    raise ResourceAlreadyExists(f"GatewayEndpoint with name '{name}' already exists.")
            configs = self._model_configs(model_configs) if model_configs else None
            new_limit = parse_limit(limit, f"endpoint '{ep.name}'") if limit is not None else ep.limit
            updated = ApiEndpoint(ep.endpoint_id, name or ep.name, ep.endpoint_type,
                                  configs if configs is not None else ep.model_configs, ep.created_at, _now_ms(),
                                  tags=ep.tags, limit=new_limit, timeout_s=ep.timeout_s)
            self._save(updated)  # the database first: a failed write leaves the endpoint as it was
            if updated.name != ep.name:
                self.limiter.forget(ep.name)
            self.api_endpoints[ep.endpoint_id] = updated
            return updated

    def delete_endpoint(self, endpoint_id: Any) -> None:
        with self._lock:
            ep = self.get_api_endpoint(endpoint_id=endpoint_id)
            self._forget("endpoint", ep.endpoint_id)
            del self.api_endpoints[ep.endpoint_id]
            self.limiter.forget(ep.name)

    def endpoint_json(self, ep: ApiEndpoint) -> dict[str, Any]:
        """MLflow 3's GatewayEndpoint JSON."""
        mappings = []
        for c in ep.model_configs:
            model = self.models.get(c["model_definition_id"])
            mappings.append({"mapping_id": f"{ep.endpoint_id}:{c['model_definition_id']}",
                             "endpoint_id": ep.endpoint_id, "model_definition_id": c["model_definition_id"],
                             "model_definition": model.to_json(self.secrets) if model else None,
                             "weight": c["weight"], "linkage_type": c["linkage_type"],
                             "fallback_order": c["fallback_order"], "created_at": ep.created_at})
        out: dict[str, Any] = {"endpoint_id": ep.endpoint_id, "name": ep.name, "created_at": ep.created_at,
                               "last_updated_at": ep.last_updated_at, "model_mappings": mappings,
                               "tags": [{"key": k, "value": v} for k, v in ep.tags.items()],
                               "usage_tracking": True, "endpoint_type": ep.endpoint_type}
        if ep.limit:
            out["limit"] = ep.limit.to_json()
        return out


def _check_provider(provider: Any) -> str:
    if provider != "openai":
        raise InvalidParameterValue(f"Provider {provider!r} is not supported; labtrack routes to "
                                    "OpenAI-compatible servers (provider 'openai' with auth_config.api_base).")
    return provider


def _check_type(etype: Any) -> str:
    from labtrack.gateway.config import ENDPOINT_TYPES

    if etype not in ENDPOINT_TYPES:
        raise InvalidParameterValue(f"endpoint_type must be one of {', '.join(ENDPOINT_TYPES)}.")
    return str(etype)


def _which(the_id: Any, name: Any, noun: str) -> str:
    return f"{noun}_id='{the_id}'" if the_id else f"name='{name}'"
