"""``GET /api/2.0/labtrack/media/images?run_id=``: a run's images logged per step, by key.

``mlflow.log_image(image, key=, step=)`` and ``lt.log_image(image, key=, step=)``
both write ``images/<key>+step+<step>+timestamp+<ms>+<uuid>.png`` and a smaller
``...+compressed.webp`` beside it (``/`` in the key written as ``~``; MLflow
before 3.x separated the parts with ``%`` and wrote ``/`` as ``#``).  One
listing of the run's ``images/`` folder answers every key and step, so the
web UI's media view needs one call per run, not one listing per folder::

    {"run_id": "...", "images": [{"key": "samples", "steps": [
        {"step": 0, "timestamp": 1700000000000, "path": "images/samples+step+0+...png",
         "compressed": "images/samples+step+0+...+compressed.webp"}, ...]}]}

Paths are relative to the run's artifact root (what ``get-artifact`` and the
artifact proxy take).  When a step was logged twice, the later image wins.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import Any

from labtrack.server.api_artifacts import run_artifact_place
from labtrack.server.args import Args
from labtrack.server.base import ServerContext

IMAGES_DIR = "images"
_NAME = re.compile(
    r"^(?P<key>.+?)[%+]step[%+](?P<step>-?\d+)[%+]timestamp[%+](?P<ts>\d+)[%+](?P<id>[^%+]+)"
    r"(?P<compressed>[%+]compressed)?\.(?:png|jpe?g|gif|webp)$", re.IGNORECASE)


def image_series(names: Iterable[str], folder: str = IMAGES_DIR) -> list[dict[str, Any]]:
    """Group file names of logged images into series: one per key, its steps ascending."""
    full: dict[tuple[str, int], dict[str, Any]] = {}
    small: dict[tuple[str, str], str] = {}  # (key, uuid) -> the compressed copy's path
    for name in names:
        m = _NAME.match(name)
        if m is None:
            continue
        key = m["key"].replace("~", "/").replace("#", "/")
        path = posixpath.join(folder, name)
        if m["compressed"]:
            small[(key, m["id"])] = path
            continue
        entry = {"step": int(m["step"]), "timestamp": int(m["ts"]), "path": path, "id": m["id"]}
        seen = full.get((key, entry["step"]))
        if seen is None or (entry["timestamp"], path) > (seen["timestamp"], seen["path"]):
            full[(key, entry["step"])] = entry
    series: dict[str, list[dict[str, Any]]] = {}
    for (key, _), entry in full.items():
        uid = entry.pop("id")
        entry["compressed"] = small.get((key, uid))
        series.setdefault(key, []).append(entry)
    return [{"key": key, "steps": sorted(steps, key=lambda e: e["step"])}
            for key, steps in sorted(series.items())]


def run_images(ctx: ServerContext, a: Args) -> dict[str, Any]:
    run_id = a.run_id()
    root, rel = run_artifact_place(ctx, run_id, IMAGES_DIR)
    listing = root.list(rel) or []
    return {"run_id": run_id, "images": image_series(posixpath.basename(f.path) for f in listing if not f.is_dir)}


LABTRACK_ROUTES: list[tuple[str, dict[str, Any]]] = [
    ("media/images", {"GET": run_images}),
]
