"""``lt.log_image(image, key=..., step=...)``: images per step, in MLflow 3's artifact layout.

Each call writes ``images/<key>+step+<step>+timestamp+<ms>+<uuid>.png`` and a
smaller ``...+compressed.webp`` beside it (``/`` in the key becomes ``~``),
and tags the run ``mlflow.loggedImages=true``: MLflow's UI and labtrack's
both show such files as a series with a step slider.
"""

from __future__ import annotations

import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from labtrack.errors import InvalidParameterValue

LOGGED_IMAGES_TAG = "mlflow.loggedImages"
_KEY = re.compile(r"^[a-zA-Z0-9_\-./ ]+$")
COMPRESSED_SIDE = 256  # the longest side of the preview copy


def _pil(image: Any, folder: Path) -> Any:
    from PIL import Image

    from labtrack.client.artifact_files import write_image

    if type(image).__module__.startswith("PIL"):
        return image
    target = folder / "raw.png"
    write_image(image, target)  # numpy checks and conversion in one place
    return Image.open(target)


def log_image_step(client: Any, run_id: str, image: Any, key: str, step: int | None = None,
                   timestamp: int | None = None) -> None:
    """Log one image of the series ``key`` at ``step``."""
    if not _KEY.match(key):
        raise InvalidParameterValue(
            "The `key` parameter may only contain alphanumerics, underscores (_), dashes (-), "
            f"periods (.), spaces ( ), and slashes (/); got {key!r}")
    step = int(step or 0)
    timestamp = int(timestamp or time.time() * 1000)
    stem = f"{key.replace('/', '~')}+step+{step}+timestamp+{timestamp}+{uuid.uuid4()}"
    with tempfile.TemporaryDirectory(prefix="labtrack-image-") as tmp:
        folder = Path(tmp)
        picture = _pil(image, folder)
        out = folder / "out"
        out.mkdir()
        picture.save(out / f"{stem}.png")
        small = picture.copy()
        small.thumbnail((COMPRESSED_SIDE, COMPRESSED_SIDE))
        if small.mode not in ("RGB", "RGBA"):
            small = small.convert("RGB")
        small.save(out / f"{stem}+compressed.webp")
        client.log_artifacts(run_id, out, "images")
    client.set_tag(run_id, LOGGED_IMAGES_TAG, "True")
