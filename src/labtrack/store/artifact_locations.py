"""Confinement of an experiment's ``artifact_location`` to the artifact store this server serves.

MLflow takes any ``artifact_location`` in ``experiments/create``; every run of
the experiment then gets its artifact folder below it, and model-version
sources under a run's folder are accepted (issue #19: ``file:///etc``,
``mlflow-artifacts:/#``, which made a run's folder the whole root, relative
paths, ``..``).  Here a location must be one of:

* ``mlflow-artifacts:/<path>``: a folder below the artifact proxy's root, the
  path confined as artifact paths are;
* a URI or path below the default artifact root, compared segment by segment
  and, for a local folder, also on disk (symlinks resolved), so a link inside
  the root that leads out does not make its target a location.

Nothing with a query, a fragment or a control character, in any
percent-decoded form.  Refusals are INVALID_PARAMETER_VALUE.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from labtrack.artifacts.paths import check_relative, is_within
from labtrack.errors import InvalidParameterValue
from labtrack.store.model_sources import under_root

LOCATION_LIMIT = 4096
_FORBIDDEN = ("?", "#", "\\", "\x00")


def _refuse(location: Any, why: str) -> InvalidParameterValue:
    shown = location if not isinstance(location, str) or len(location) <= 200 else location[:200] + "..."
    return InvalidParameterValue(
        f"Invalid artifact_location {shown!r}: {why}. It must lie inside this server's artifact store "
        "(mlflow-artifacts:/<path>, or below the default artifact root); leave it out for the default.")


def local_path(uri: str) -> Path | None:
    """The local folder a ``file:`` URI or plain absolute path names; None for other schemes."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if not parts.scheme and uri.startswith("/"):
        return Path(uri)
    return None


def check_artifact_location(location: Any, default_root: str) -> str | None:
    """``location`` if it lies inside the served artifact store, None if not given; else raise."""
    if location is None or location == "":
        return None
    if not isinstance(location, str):
        raise _refuse(location, "expected a string")
    if len(location) > LOCATION_LIMIT:
        raise _refuse(location, f"longer than {LOCATION_LIMIT} characters")
    if location != location.strip() or any(ord(c) < 0x20 or ord(c) == 0x7F for c in location):
        raise _refuse(location, "control characters and surrounding whitespace are not allowed")
    decoded = location
    for _ in range(8):
        if any(c in decoded for c in _FORBIDDEN):
            raise _refuse(location, "'?', '#', backslashes and NUL are not allowed")
        step = unquote(decoded)
        if step == decoded:
            break
        decoded = step
    if location.lower().startswith("mlflow-artifacts:"):
        rest = location[len("mlflow-artifacts:"):]
        if not rest.startswith("/") or rest.startswith("//"):
            raise _refuse(location, "an mlflow-artifacts: location is mlflow-artifacts:/<path>, with no host")
        try:
            segments = check_relative(rest.lstrip("/"))
        except InvalidParameterValue as e:
            raise _refuse(location, e.message) from None
        if not segments:
            raise _refuse(location, "it names the artifact root itself")
        return location
    if not under_root(location, default_root, allow_root_itself=False):
        raise _refuse(location, "it is outside the artifact store")
    if not real_within(location, default_root):
        raise _refuse(location, "it leads outside the artifact store (symlink)")
    return location


def real_within(uri: str, root: str) -> bool:
    """For a local ``uri`` below a local ``root``: whether it stays inside once symlinks are
    resolved on disk.  True when either is not local (a bucket has no symlinks)."""
    local, base = local_path(uri), local_path(root)
    if local is None or base is None:
        return True
    return is_within(Path(os.path.realpath(base)), os.path.realpath(local))


__all__ = ["check_artifact_location", "local_path", "real_within"]
