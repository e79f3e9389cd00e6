"""The Python environment an entry point runs in: ``--env-manager local|virtualenv|uv|conda``.

Environments are built once per (manager, environment file, interpreter) in
labtrack's cache and reused.  labtrack itself is made importable in them
through a ``.pth`` file that exposes only its own package, so a project's
``import labtrack`` logs to the same server without installing anything.
Docker is refused: HPC sites run Apptainer instead (see ``launcher`` in the
SLURM backend configuration).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labtrack.projects.sources import cache_dir
from labtrack.projects.spec import Project, ProjectError

ENV_MANAGERS = ("local", "virtualenv", "uv", "conda")


@dataclass(frozen=True)
class Environment:
    """How to run a command inside the environment: a bin folder first on PATH, and variables."""

    manager: str
    bin_dir: Path | None = None
    variables: dict[str, str] = field(default_factory=dict)

    def apply(self, env: dict[str, str]) -> dict[str, str]:
        out = dict(env)
        if self.bin_dir is not None:
            out["PATH"] = f"{self.bin_dir}{os.pathsep}{out.get('PATH', '')}"
            out["VIRTUAL_ENV"] = str(self.bin_dir.parent)
            out.pop("PYTHONHOME", None)
        out.update(self.variables)
        return out

    def shell_lines(self) -> list[str]:
        """The same as ``apply``, as lines of a job script."""
        import shlex

        lines = [f"export {k}={shlex.quote(v)}" for k, v in self.variables.items()]
        if self.bin_dir is not None:
            lines += [f"export PATH={shlex.quote(str(self.bin_dir))}:\"$PATH\"",
                      f"export VIRTUAL_ENV={shlex.quote(str(self.bin_dir.parent))}",
                      "unset PYTHONHOME"]
        return lines


def prepare(project: Project, manager: str | None) -> Environment:
    """Build (or reuse) the environment ``manager`` makes for ``project``."""
    if project.env_type == "docker_env":
        raise ProjectError(
            "this project declares a docker_env; Docker does not run on HPC clusters. Run it with "
            "--env-manager local inside Apptainer instead (the SLURM backend's `launcher: "
            f"apptainer exec {project.docker_image or 'IMAGE.sif'}`)")
    manager = manager or ("virtualenv" if project.env_type else "local")
    if manager not in ENV_MANAGERS:
        raise ProjectError(f"unknown --env-manager {manager!r} (one of {', '.join(ENV_MANAGERS)})")
    if manager == "local":
        return Environment("local")
    python, deps = _requirements(project)
    if manager == "conda":
        return _conda(project)
    if manager == "uv":
        return _uv(python, deps)
    return _virtualenv(python, deps)


def _requirements(project: Project) -> tuple[str | None, list[str]]:
    """(python version, pip requirements) from python_env.yaml or conda.yaml."""
    import yaml

    if project.env_file is None:
        return None, []
    doc = yaml.safe_load(project.env_file.read_text()) or {}
    if project.env_type == "python_env":
        deps = [str(d) for d in (doc.get("build_dependencies") or []) + (doc.get("dependencies") or [])]
        return (str(doc["python"]) if doc.get("python") else None), deps
    python, deps = None, []
    for dep in doc.get("dependencies") or []:
        if isinstance(dep, str) and dep.startswith("python"):
            python = dep.lstrip("python=<>!~ ") or None
        elif isinstance(dep, dict):
            deps += [str(d) for d in dep.get("pip") or []]
    return python, deps


def _interpreter(python: str | None) -> str:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if not python or ".".join(python.split(".")[:2]) == here:
        return sys.executable
    found = shutil.which(f"python{'.'.join(python.split('.')[:2])}")
    if found is None:
        raise ProjectError(f"the project needs Python {python}, and no python{python} is on PATH "
                           f"(this is Python {here}); install it or use --env-manager local")
    return found


def _env_dir(kind: str, *parts: Any) -> Path:
    key = hashlib.sha256(repr((kind, parts)).encode()).hexdigest()[:16]
    return cache_dir() / "envs" / f"{kind}-{key}"


def _virtualenv(python: str | None, deps: list[str]) -> Environment:
    interpreter = _interpreter(python)
    folder = _env_dir("venv", interpreter, sorted(deps))
    if not (folder / ".labtrack-ready").exists():
        shutil.rmtree(folder, ignore_errors=True)
        _check([interpreter, "-m", "venv", str(folder)], "creating the virtualenv")
        _link_labtrack(folder)
        extra = [d for d in deps if d.split("=")[0].strip().lower() != "pip"]
        if extra:
            _check([str(folder / "bin" / "python"), "-m", "pip", "install", "-q", *extra],
                   "installing the project's dependencies")
        (folder / ".labtrack-ready").touch()
    return Environment("virtualenv", folder / "bin")


def _uv(python: str | None, deps: list[str]) -> Environment:
    uv = shutil.which("uv")
    if uv is None:
        raise ProjectError("--env-manager uv needs uv, which is not installed (pip install uv)")
    folder = _env_dir("uv", python, sorted(deps))
    if not (folder / ".labtrack-ready").exists():
        shutil.rmtree(folder, ignore_errors=True)
        _check([uv, "venv", "-q", "--python", _interpreter(python), str(folder)], "creating the uv environment")
        _link_labtrack(folder)
        extra = [d for d in deps if d.split("=")[0].strip().lower() != "pip"]
        if extra:
            _check([uv, "pip", "install", "-q", "--python", str(folder / "bin" / "python"), *extra],
                   "installing the project's dependencies")
        (folder / ".labtrack-ready").touch()
    return Environment("uv", folder / "bin")


def _conda(project: Project) -> Environment:
    conda = shutil.which("conda") or shutil.which("mamba")
    if conda is None:
        raise ProjectError("--env-manager conda needs conda (or mamba) on PATH; none is installed "
                           "(module load conda, or use --env-manager virtualenv)")
    if project.env_type != "conda_env" or project.env_file is None:
        raise ProjectError("--env-manager conda needs a conda_env in the MLproject file")
    folder = _env_dir("conda", project.env_file.read_text())
    if not (folder / ".labtrack-ready").exists():
        _check([conda, "env", "create", "-q", "-p", str(folder), "-f", str(project.env_file)],
               "creating the conda environment")
        _link_labtrack(folder)
        (folder / ".labtrack-ready").touch()
    return Environment("conda", folder / "bin")


def _link_labtrack(folder: Path) -> None:
    """Make ``import labtrack`` work in the environment, exposing only labtrack's package."""
    import labtrack

    pkg = Path(labtrack.__file__).resolve().parent
    proc = subprocess.run([str(folder / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True)
    if proc.returncode:
        raise ProjectError(f"the new environment's python does not start: {proc.stderr.strip()[-200:]}")
    site = Path(proc.stdout.strip())
    link_dir = folder / "labtrack-link"
    link_dir.mkdir(exist_ok=True)
    link = link_dir / "labtrack"
    if not link.exists():
        link.symlink_to(pkg, target_is_directory=True)
    (site / "labtrack-link.pth").write_text(str(link_dir) + "\n")


def _check(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        last = (proc.stderr.strip() or proc.stdout.strip() or "failed").splitlines()[-1]
        raise ProjectError(f"{what} failed: {last}")
