"""Writers that turn Python objects (text, dicts, figures, images) into artifact files.

matplotlib, PIL, numpy and yaml are imported only when such an object is logged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from labtrack.errors import InvalidParameterValue


def write_text(text: str, target: Path) -> None:
    target.write_text(text, encoding="utf-8")


def write_dict(dictionary: Any, target: Path) -> None:
    """JSON, or YAML for ``.yaml``/``.yml`` files (as MLflow's ``log_dict``)."""
    if target.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise InvalidParameterValue("log_dict to a .yaml file needs PyYAML") from exc
        target.write_text(yaml.safe_dump(dictionary, default_flow_style=False, sort_keys=False),
                          encoding="utf-8")
    else:
        target.write_text(json.dumps(dictionary, indent=2), encoding="utf-8")


def write_figure(figure: Any, target: Path, save_kwargs: dict[str, Any] | None = None) -> None:
    """A matplotlib figure via ``savefig``; a plotly figure as HTML or an image."""
    module = type(figure).__module__
    if module.startswith("matplotlib"):
        figure.savefig(target, **(save_kwargs or {}))
    elif module.startswith("plotly"):
        if target.suffix == ".html":
            figure.write_html(str(target), **(save_kwargs or {}))
        else:
            figure.write_image(str(target), **(save_kwargs or {}))
    else:
        raise InvalidParameterValue(
            f"log_figure expects a matplotlib or plotly figure, got {type(figure).__name__}")


def write_image(image: Any, target: Path) -> None:
    """A PIL image or a numpy array (HW, HWC with 1/3/4 channels; floats in [0, 1])."""
    module = type(image).__module__
    if module.startswith("PIL"):
        image.save(target)
        return
    if module != "numpy":
        raise InvalidParameterValue(
            f"log_image expects a PIL image or a numpy array, got {type(image).__name__}")
    import numpy as np

    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidParameterValue(f"unsupported image shape {array.shape}")
    if array.dtype.kind == "f":
        if array.min() < 0 or array.max() > 1:
            raise InvalidParameterValue("float images must have values in [0, 1]")
        array = (array * 255).round()
    elif array.dtype.kind in "iu" and (array.min() < 0 or array.max() > 255):
        raise InvalidParameterValue("integer images must have values in [0, 255]")
    array = array.astype(np.uint8)
    try:
        from PIL import Image

        Image.fromarray(array).save(target)
    except ImportError:
        import matplotlib.image

        matplotlib.image.imsave(target, array, cmap="gray" if array.ndim == 2 else None)
