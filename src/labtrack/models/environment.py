"""The environment files of a model folder: ``requirements.txt``, ``python_env.yaml``, ``conda.yaml``.

Requirements name the packages a loader needs, pinned to the installed
versions, so ``mlflow models serve`` or a Docker image rebuilds the
environment the model was saved in.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from labtrack.models.mlmodel import CONDA_FILE, PYTHON_ENV_FILE, REQUIREMENTS_FILE, yaml_module


def pinned(package: str) -> str:
    """``package==<installed version>``; a local label (``+cpu``) is dropped, as MLflow does,
    so the pin stays installable from an index."""
    try:
        version = metadata.version(package)
    except metadata.PackageNotFoundError:
        return package
    return f"{package}=={version.split('+', 1)[0]}"


def _installed(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def requirements(defaults: Iterable[str], pip_requirements: Iterable[str] | None = None,
                 extra_pip_requirements: Iterable[str] | None = None) -> list[str]:
    """The model's pip requirements: the flavor's defaults, or the user's list, plus extras."""
    chosen = list(pip_requirements) if pip_requirements is not None else list(defaults)
    out: list[str] = []
    for line in chosen + list(extra_pip_requirements or []):
        if line and line not in out:
            out.append(line)
    return out


def write_environment(folder: str | Path, reqs: list[str]) -> None:
    """Write the three environment files MLflow's tools read."""
    folder = Path(folder)
    yaml = yaml_module()
    (folder / REQUIREMENTS_FILE).write_text("\n".join(reqs) + "\n", encoding="utf-8")
    python = platform.python_version()
    build = [pinned("pip"), pinned("setuptools") if _installed("setuptools") else "setuptools",
             "wheel"]
    (folder / PYTHON_ENV_FILE).write_text(yaml.safe_dump(
        {"python": python, "build_dependencies": build,
         "dependencies": [f"-r {REQUIREMENTS_FILE}"]},
        default_flow_style=False, sort_keys=False), encoding="utf-8")
    pip_version = _installed("pip")
    (folder / CONDA_FILE).write_text(yaml.safe_dump(
        {"channels": ["conda-forge"],
         "dependencies": [f"python={python}", f"pip<={pip_version}" if pip_version else "pip",
                          {"pip": reqs}],
         "name": "labtrack-env"}, default_flow_style=False), encoding="utf-8")


def read_requirements(folder: str | Path) -> list[str]:
    """The requirement lines of a model folder (comments and blanks dropped)."""
    path = Path(folder) / REQUIREMENTS_FILE
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.strip().startswith("#")]
