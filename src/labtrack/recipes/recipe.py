"""``recipe.yaml``: the recipe's settings, and profiles that override them."""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labtrack.errors import LabtrackError

STEPS = ("ingest", "split", "transform", "train", "evaluate", "register")
KINDS = ("classification", "regression")


class RecipeError(LabtrackError):
    """A recipe that cannot be read or run."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "INVALID_PARAMETER_VALUE")


@dataclass(frozen=True)
class Recipe:
    folder: Path
    config: dict[str, Any]
    profile: str | None

    @property
    def kind(self) -> str:
        return str(self.config.get("recipe", "classification"))

    @property
    def experiment(self) -> str:
        return str(self.config.get("experiment") or f"recipe-{self.folder.name}")

    def step_file(self, step: str) -> Path:
        return self.folder / "steps" / f"{step}.py"


def load(folder: str | os.PathLike = ".", profile: str | None = None) -> Recipe:
    """Read ``recipe.yaml`` in ``folder``, with ``profiles.<profile>`` merged over it."""
    import yaml

    root = Path(folder).resolve()
    path = root / "recipe.yaml"
    if not path.is_file():
        raise RecipeError(f"no recipe.yaml in {root} (labtrack recipes init classification|regression)")
    try:
        config = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise RecipeError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(config, dict):
        raise RecipeError(f"{path} must be a mapping")
    if config.get("recipe", "classification") not in KINDS:
        raise RecipeError(f"{path}: recipe must be one of {', '.join(KINDS)}")
    profiles = config.pop("profiles", None) or {}
    if profile is not None:
        if profile not in profiles:
            raise RecipeError(f"{path} has no profile {profile!r} (profiles: {', '.join(profiles) or 'none'})")
        config = _merge(config, profiles[profile] or {})
    for step in STEPS:
        if not (root / "steps" / f"{step}.py").is_file():
            raise RecipeError(f"{root / 'steps' / (step + '.py')} is missing")
    return Recipe(root, config, profile)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def init(kind: str, folder: str | os.PathLike) -> Path:
    """Write the ``kind`` template (recipe.yaml and steps/) into ``folder`` (new or empty)."""
    import shutil

    if kind not in KINDS:
        raise RecipeError(f"unknown recipe {kind!r} (one of {', '.join(KINDS)})")
    target = Path(folder).resolve()
    if target.exists() and any(p.name not in (".git",) for p in target.iterdir()) and \
            (target / "recipe.yaml").exists():
        raise RecipeError(f"{target} already holds a recipe.yaml")
    templates = Path(__file__).resolve().parent / "templates"
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(templates / kind / "recipe.yaml", target / "recipe.yaml")
    (target / "steps").mkdir(exist_ok=True)
    for step in STEPS:
        # The kind's own step where it has one (evaluate), else the one both kinds share.
        source = templates / kind / "steps" / f"{step}.py"
        if not source.is_file():
            source = templates / "common" / "steps" / f"{step}.py"
        shutil.copy(source, target / "steps" / f"{step}.py")
    return target
