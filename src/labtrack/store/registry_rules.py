"""Input rules of the model registry: names, versions, stages, aliases, tags.

MLflow's ``validation.py`` rules for the registry (reference §2.4, §5); each
check raises InvalidParameterValue naming what to fix, before anything is
written.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from labtrack.errors import InvalidParameterValue
from labtrack.registry_entities import STAGES
from labtrack.store.validation import LIMITS, check_key, check_value_length

NAME_LIMIT = 256  # the column width of registered_models.name
# Versions live in an INTEGER column; a number past it cannot name a stored version.
MAX_VERSION = 2**31 - 1

_ALIAS_RE = re.compile(r"^[\w\-]*$")
_VERSION_ALIAS_RE = re.compile(r"^[vV]\d+$")
_CANONICAL_STAGE = {stage.lower(): stage for stage in STAGES}


def check_model_name(name: Any, field: str = "name") -> str:
    """A registered model's name: non-blank, no '/' or ':', path-safe, at most 256 chars."""
    if not isinstance(name, str) or name.strip() == "":
        raise InvalidParameterValue(f"Missing value for required parameter '{field}'")
    if "/" in name or ":" in name:
        raise InvalidParameterValue(f"Invalid model name '{name[:300]}'. Names cannot contain '/' or ':'.")
    if len(name) > NAME_LIMIT:
        raise InvalidParameterValue(
            f"Model name had length {len(name)}, which exceeded length limit of {NAME_LIMIT}")
    if "\x00" in name:
        raise InvalidParameterValue("Model names cannot contain NUL characters.")
    norm = posixpath.normpath(name)
    if norm != name or norm == "." or norm.startswith(".."):
        raise InvalidParameterValue(
            f"Invalid value '{name}' for parameter '{field}': names may be treated as files in "
            "certain cases, and must not resolve to other names when treated as such.")
    return name


def parse_version(version: Any) -> int:
    """A version number sent as a string ("3") or a number; not an integer is a 400.

    A number outside 1..2**31-1 is returned as 0, which names no version, so a
    lookup answers RESOURCE_DOES_NOT_EXIST as it would for any unknown version.
    """
    if version is None or version == "":
        raise InvalidParameterValue("Missing value for required parameter 'version'")
    if isinstance(version, bool):
        raise InvalidParameterValue(f"Parameter 'version' must be an integer, got {version!r}.")
    if isinstance(version, int):
        n = version
    elif isinstance(version, str):
        try:
            n = int(version.strip())
        except ValueError:
            raise InvalidParameterValue(
                f"Parameter 'version' must be an integer, got '{version[:80]}'.") from None
    else:
        raise InvalidParameterValue(f"Parameter 'version' must be an integer, got {version!r}.")
    return n if 1 <= n <= MAX_VERSION else 0


def canonical_stage(stage: Any) -> str:
    """'production' -> 'Production'; anything but the four stages is a 400."""
    if isinstance(stage, str) and stage.lower() in _CANONICAL_STAGE:
        return _CANONICAL_STAGE[stage.lower()]
    raise InvalidParameterValue(
        f"Invalid Model Version stage: {stage}. Value must be one of {', '.join(STAGES)}.")


def check_alias(alias: Any, *, reserved_ok: bool = False) -> str:
    """An alias: ``[\\w-]``, 1..255 chars; ``latest`` and ``v<digits>`` are reserved for setting."""
    if not isinstance(alias, str) or alias == "":
        raise InvalidParameterValue("Registered model alias name cannot be empty.")
    if not _ALIAS_RE.match(alias):
        raise InvalidParameterValue(
            f"Invalid alias name: '{alias[:300]}'. Names may only contain alphanumerics, "
            "underscores (_) and dashes (-).")
    if len(alias) > LIMITS["alias"]:
        raise InvalidParameterValue(
            f"Registered model alias name had length {len(alias)}, which exceeded length limit "
            f"of {LIMITS['alias']}")
    if not reserved_ok:
        if alias.lower() == "latest":
            raise InvalidParameterValue("'latest' alias name (case insensitive) is reserved.")
        if _VERSION_ALIAS_RE.match(alias):
            raise InvalidParameterValue(f"Version alias name '{alias}' is reserved.")
    return alias


def check_tag(key: Any, value: Any) -> tuple[str, str]:
    """A registry tag: a path-safe key of at most 250 chars, a string value of at most 100000."""
    key = check_key("tag", key, LIMITS["registry_tag_key"])
    if not isinstance(value, str):
        raise InvalidParameterValue(f"Invalid value {value!r} for tag '{key}': expected a string")
    check_value_length("tag", key, value, LIMITS["registry_tag_value"])
    return key, value


def check_tags(tags: Any) -> dict[str, str]:
    """A ``{key: value}`` mapping of registry tags, each checked by :func:`check_tag`."""
    out: dict[str, str] = {}
    for key, value in dict(tags or {}).items():
        k, v = check_tag(key, value)
        out[k] = v
    return out


def check_description(description: Any) -> str | None:
    if description is not None and not isinstance(description, str):
        raise InvalidParameterValue(
            f"Invalid value {description!r} for parameter 'description': expected a string")
    return description
