"""Remove the artifact folders of runs, experiments and models that ``store.gc`` removed.

Only what lies inside the served artifact root is touched: an
``mlflow-artifacts:/`` URI, or a path (or ``s3://`` key) under the root.
Anything else, an artifact location elsewhere on disk or another bucket, is
left in place and reported, never followed: gc must not become a way to
delete arbitrary folders through a crafted artifact location.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from labtrack.errors import LabtrackError, ResourceDoesNotExist


@dataclass
class ArtifactsRemoved:
    folders: int = 0
    bytes: int = 0
    left: list[str] = field(default_factory=list)  # URIs outside the root, or that failed


def relative_path(root: Any, uri: str) -> str | None:
    """``uri`` as a path under the artifact root ``root``, or None if it lies elsewhere."""
    parts = urlsplit(uri)
    scheme = parts.scheme if len(parts.scheme) > 1 else ""
    if scheme == "mlflow-artifacts":
        rel = parts.path.strip("/")
    elif scheme in ("", "file") and hasattr(root, "root"):
        path = Path(os.path.realpath(parts.path if scheme == "file" else uri))
        base = Path(root.root)
        if path != base and base not in path.parents:
            return None
        rel = path.relative_to(base).as_posix()
    elif scheme == "s3" and getattr(root, "uri", None):
        base = root.uri.rstrip("/") + "/"
        if not uri.startswith(base):
            return None
        rel = uri[len(base):].strip("/")
    else:
        return None
    return rel or None  # never the root itself


def _folder_bytes(root: Any, rel: str) -> int:
    if not hasattr(root, "root"):
        return 0  # a bucket: sizes would cost a listing per object
    total = 0
    for folder, _dirs, files in os.walk(Path(root.root) / rel):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total


def remove_artifacts(root: Any, uris: Iterable[str]) -> ArtifactsRemoved:
    """Delete each URI's folder under ``root`` (a run's ``<run>/artifacts``: the run's folder)."""
    out = ArtifactsRemoved()
    rels: list[tuple[str, str]] = []
    for uri in dict.fromkeys(u for u in uris if u):
        rel = relative_path(root, uri) if root is not None else None
        if rel is None:
            out.left.append(uri)
            continue
        head, _, last = rel.rpartition("/")
        # <exp>/<run>/artifacts and <exp>/models/<id>/artifacts: the whole folder goes.
        rels.append((uri, head if last == "artifacts" and head else rel))
    # Parents first, so a run inside a removed experiment's folder is not counted twice.
    done: list[str] = []
    for uri, rel in sorted(rels, key=lambda x: x[1].count("/")):
        if any(rel == d or rel.startswith(d + "/") for d in done):
            continue
        size = _folder_bytes(root, rel)
        try:
            root.delete(rel)
        except ResourceDoesNotExist:
            continue  # never had artifacts
        except (LabtrackError, OSError):
            out.left.append(uri)
            continue
        done.append(rel)
        out.folders += 1
        out.bytes += size
    return out
