"""Typed access to a request's fields, whether they came as JSON or a query.

GET requests carry the message as query parameters (repeated keys for
repeated fields, booleans as ``True``/``False``); the others carry JSON.
Every getter raises InvalidParameterValue naming the field, so a malformed
request is a 400 with MLflow's error JSON, never a 500.
"""

from __future__ import annotations

from typing import Any

from labtrack.errors import InvalidParameterValue
from labtrack.store.validation import check_double, check_int

_MISSING = object()


class Args:
    """The request message as a flat mapping of field name -> value."""

    def __init__(self, data: dict[str, Any], *, from_query: bool = False) -> None:
        self.data = data
        self.from_query = from_query
        self.user: Any = None  # the signed-in user on a basic-auth server

    def _get(self, name: str) -> Any:
        value = self.data.get(name, _MISSING)
        if self.from_query and isinstance(value, list):
            value = value[-1] if value else _MISSING
        return value

    def has(self, name: str) -> bool:
        return self._get(name) is not _MISSING and self._get(name) is not None

    def str(self, name: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self._get(name)
        if value is _MISSING or value is None:
            if required:
                raise InvalidParameterValue(f"Missing value for required parameter '{name}'")
            return default
        if not isinstance(value, str):
            raise InvalidParameterValue(f"Invalid value {value!r} for parameter '{name}': expected a string")
        if required and value == "":
            raise InvalidParameterValue(f"Missing value for required parameter '{name}'")
        return value

    def req(self, name: str) -> str:
        value = self.str(name, required=True)
        assert value is not None
        return value

    def int(self, name: str, *, required: bool = False, default: int | None = None) -> int | None:
        value = self._get(name)
        if value is _MISSING or value is None or value == "":
            if required:
                raise InvalidParameterValue(f"Missing value for required parameter '{name}'")
            return default
        return check_int(name, value)

    def double(self, name: str) -> float:
        value = self._get(name)
        if value is _MISSING or value is None:
            raise InvalidParameterValue(f"Missing value for required parameter '{name}'")
        return check_double(name, value)

    def bool(self, name: str, default: bool = False) -> bool:
        value = self._get(name)
        if value is _MISSING or value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise InvalidParameterValue(f"Invalid value {value!r} for parameter '{name}': expected a boolean")

    def list(self, name: str) -> list[Any]:
        value = self.data.get(name, _MISSING)
        if value is _MISSING or value is None:
            return []
        if self.from_query:
            return value if isinstance(value, list) else [value]
        if not isinstance(value, list):
            raise InvalidParameterValue(f"Invalid value {value!r} for parameter '{name}': expected a list")
        return value

    def str_list(self, name: str) -> list[str]:
        out = self.list(name)
        for v in out:
            if not isinstance(v, str):
                raise InvalidParameterValue(f"Invalid value {v!r} in '{name}': expected strings")
        return out

    def objects(self, name: str) -> list[dict[str, Any]]:
        out = self.list(name)
        for v in out:
            if not isinstance(v, dict):
                raise InvalidParameterValue(f"Invalid value {v!r} in '{name}': expected objects")
        return out

    def key_values(self, name: str) -> list[tuple[str, str]]:
        """A repeated {key, value} field, e.g. tags or params."""
        out = []
        for item in self.objects(name):
            key, value = item.get("key"), item.get("value", "")
            if not isinstance(key, str):
                raise InvalidParameterValue(f"Invalid {name} entry {item!r}: 'key' must be a string")
            if not isinstance(value, str):
                raise InvalidParameterValue(f"Invalid {name} entry for key '{key}': 'value' must be a string")
            out.append((key, value))
        return out

    def run_id(self) -> str:
        """``run_id``, or the legacy ``run_uuid`` the client also sends."""
        value = self.str("run_id") or self.str("run_uuid")
        if not value:
            raise InvalidParameterValue("Missing value for required parameter 'run_id'")
        return value

    def view_type(self, name: str) -> str:
        value = self._get(name)
        if value is _MISSING or value is None or value == "":
            return "ACTIVE_ONLY"
        names = {1: "ACTIVE_ONLY", 2: "DELETED_ONLY", 3: "ALL"}
        if isinstance(value, int) and not isinstance(value, bool):
            if value in names:
                return names[value]
        elif isinstance(value, str):
            if value.isdigit() and int(value) in names:
                return names[int(value)]
            if value.upper() in names.values():
                return value.upper()
        raise InvalidParameterValue(f"Invalid value {value!r} for parameter '{name}'")
