"""The ``MLmodel`` file: a model folder's YAML description, in MLflow's layout.

MLflow's pyfunc loader reads ``flavors.python_function.loader_module`` and
calls its ``_load_pyfunc``; a framework flavor (``sklearn``, ``pytorch``)
sits beside it.  Keys labtrack does not know are kept as they are, so a
file MLflow wrote survives a read and a write.
"""

from __future__ import annotations

import datetime
import platform
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labtrack._version import __version__
from labtrack.errors import LabtrackError, ResourceDoesNotExist

MLMODEL = "MLmodel"
PYFUNC = "python_function"
CONDA_FILE = "conda.yaml"
PYTHON_ENV_FILE = "python_env.yaml"
REQUIREMENTS_FILE = "requirements.txt"
_KNOWN = ("artifact_path", "run_id", "model_id", "model_uuid", "utc_time_created", "flavors",
          "signature", "saved_input_example_info", "metadata", "model_size_bytes")


def yaml_module() -> Any:
    """PyYAML, imported only when a model is written or read."""
    try:
        import yaml
    except ImportError as exc:  # pragma: no cover - pyyaml is a dependency
        raise LabtrackError("reading and writing models needs PyYAML (pip install pyyaml)") from exc
    return yaml


@dataclass
class ModelMeta:
    """What an ``MLmodel`` file says about a model folder."""

    flavors: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifact_path: str | None = None
    run_id: str | None = None
    model_id: str | None = None
    model_uuid: str = field(default_factory=lambda: uuid.uuid4().hex)
    utc_time_created: str = field(default_factory=lambda: str(
        datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)))
    signature: dict[str, Any] | None = None  # {"inputs": "<json>", "outputs": "<json>", "params": None}
    saved_input_example_info: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    model_size_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def add_flavor(self, name: str, **conf: Any) -> None:
        self.flavors[name] = conf

    def add_pyfunc(self, loader_module: str, **conf: Any) -> None:
        """The ``python_function`` flavor: how any pyfunc loader (MLflow's too) loads this."""
        self.flavors[PYFUNC] = {
            "loader_module": loader_module, **conf,
            "env": {"conda": CONDA_FILE, "virtualenv": PYTHON_ENV_FILE},
            "python_version": platform.python_version()}

    @property
    def pyfunc(self) -> dict[str, Any]:
        conf = self.flavors.get(PYFUNC)
        if conf is None:
            raise ResourceDoesNotExist('the model has no "python_function" flavor, so it cannot '
                                       "be loaded as a pyfunc model")
        return conf

    def flavor(self, name: str) -> dict[str, Any]:
        conf = self.flavors.get(name)
        if conf is None:
            raise ResourceDoesNotExist(
                f'the model has no "{name}" flavor (it has: {", ".join(self.flavors) or "none"})')
        return conf

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update({"artifact_path": self.artifact_path, "flavors": self.flavors,
                    "model_uuid": self.model_uuid, "utc_time_created": self.utc_time_created,
                    "labtrack_version": __version__})
        for key in ("run_id", "model_id", "signature", "saved_input_example_info", "metadata",
                    "model_size_bytes"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / MLMODEL
        path.write_text(yaml_module().safe_dump(self.to_dict(), default_flow_style=False),
                        encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> ModelMeta:
        """Read ``<folder>/MLmodel`` (or the file itself)."""
        path = Path(folder)
        if path.is_dir():
            path = path / MLMODEL
        if not path.is_file():
            raise ResourceDoesNotExist(f"no MLmodel file at {path}")
        data = yaml_module().safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise LabtrackError(f"{path} is not an MLmodel file", "INVALID_PARAMETER_VALUE")
        known = {k: data.pop(k) for k in _KNOWN if k in data}
        data.pop("labtrack_version", None)
        meta = cls(extra=data, **{k: v for k, v in known.items() if v is not None})
        meta.flavors = dict(meta.flavors or {})
        return meta


def folder_size(folder: str | Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
