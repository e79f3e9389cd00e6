"""MLproject files as MLflow reads them: entry points, typed parameters, command templates.

A folder without an MLproject file is a project too: its entry points are its
``.py`` and ``.sh`` files, and its environment is ``python_env.yaml`` or
``conda.yaml`` when present.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labtrack.errors import LabtrackError

PARAMETER_TYPES = ("string", "float", "int", "path", "uri")
ENV_KEYS = ("python_env", "conda_env", "docker_env")


class ProjectError(LabtrackError):
    """An MLproject that cannot be read, or a run request it cannot satisfy."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "INVALID_PARAMETER_VALUE")


@dataclass(frozen=True)
class Parameter:
    """One declared parameter of an entry point: ``{type, default}``."""

    name: str
    type: str = "string"
    default: Any = None

    def value(self, given: Any) -> str:
        """``given`` checked against the type, as it goes into the command."""
        text = str(given)
        if self.type == "float":
            try:
                float(text)
            except ValueError:
                raise ProjectError(f"parameter {self.name!r} must be a float, got {text!r}") from None
        elif self.type == "int":
            try:
                int(text)
            except ValueError:
                raise ProjectError(f"parameter {self.name!r} must be an int, got {text!r}") from None
        elif self.type == "path":
            if "://" in text and not text.startswith("file://"):
                raise ProjectError(f"parameter {self.name!r} is a path; {text!r} is a remote URI, and "
                                   "labtrack downloads nothing: pass a local path")
            local = text[len("file://"):] if text.startswith("file://") else text
            if not os.path.exists(local):
                raise ProjectError(f"parameter {self.name!r}: no such file or directory: {text!r}")
            return os.path.abspath(local)
        elif self.type == "uri":
            if "://" not in text and not text.startswith("/") and not os.path.exists(text):
                raise ProjectError(f"parameter {self.name!r} expects a URI, got {text!r}")
        return text


@dataclass(frozen=True)
class EntryPoint:
    """A named command template with its parameters."""

    name: str
    command: str
    parameters: dict[str, Parameter] = field(default_factory=dict)

    def compute_parameters(self, given: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
        """(declared parameters with defaults filled in, extra parameters), both checked."""
        missing = [n for n, p in self.parameters.items() if p.default is None and n not in given]
        if missing:
            raise ProjectError("No value given for missing parameters: "
                               + ", ".join(repr(n) for n in sorted(missing)))
        final = {n: p.value(given[n] if n in given else p.default) for n, p in self.parameters.items()}
        extra = {str(k): str(v) for k, v in given.items() if k not in self.parameters}
        return final, extra

    def compute_command(self, given: dict[str, Any]) -> str:
        """The shell command: the template with quoted values, then ``--key value`` extras."""
        final, extra = self.compute_parameters(given)
        try:
            command = self.command.format(**{k: shlex.quote(v) for k, v in final.items()})
        except KeyError as e:
            raise ProjectError(f"entry point {self.name!r}: its command uses {{{e.args[0]}}}, "
                               "which is not a declared parameter") from None
        except (IndexError, ValueError) as e:
            raise ProjectError(f"entry point {self.name!r}: bad command template: {e}") from None
        parts = [command] + [f"--{shlex.quote(k)} {shlex.quote(v)}" for k, v in extra.items()]
        return " ".join(parts)


@dataclass(frozen=True)
class Project:
    """A project folder and what its MLproject file declares."""

    folder: Path
    name: str | None
    entry_points: dict[str, EntryPoint]
    env_type: str | None = None     # python_env, conda_env, docker_env or None
    env_file: Path | None = None    # the python_env / conda file
    docker_image: str | None = None

    def entry_point(self, name: str) -> EntryPoint:
        """The declared entry point, or a ``.py``/``.sh`` file of the project run as one."""
        if name in self.entry_points:
            return self.entry_points[name]
        path = self.folder / name
        if path.suffix in (".py", ".sh") and path.is_file():
            runner = "python" if path.suffix == ".py" else os.environ.get("SHELL", "bash")
            return EntryPoint(name, f"{runner} {shlex.quote(name)}")
        known = ", ".join(sorted(self.entry_points)) or "none declared"
        raise ProjectError(f"project {self.folder} has no entry point {name!r} "
                           f"(entry points: {known}; or name a .py or .sh file)")


def load_project(folder: str | os.PathLike) -> Project:
    """Read ``folder``'s MLproject (or ``mlproject``) file; a folder without one is a project too."""
    import yaml

    root = Path(folder).resolve()
    if not root.is_dir():
        raise ProjectError(f"no project folder at {root}")
    spec_file = next((root / n for n in ("MLproject", "mlproject") if (root / n).is_file()), None)
    if spec_file is None:
        for env_type, file in (("python_env", "python_env.yaml"), ("conda_env", "conda.yaml")):
            if (root / file).is_file():
                return Project(root, None, {}, env_type, root / file)
        return Project(root, None, {})
    try:
        doc = yaml.safe_load(spec_file.read_text()) or {}
    except yaml.YAMLError as e:
        raise ProjectError(f"{spec_file} is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(doc, dict):
        raise ProjectError(f"{spec_file} must be a mapping")
    envs = [k for k in ENV_KEYS if k in doc]
    if len(envs) > 1:
        raise ProjectError(f"{spec_file} declares {' and '.join(envs)}; a project has one environment")
    env_type = envs[0] if envs else None
    env_file = docker_image = None
    if env_type == "docker_env":
        docker = doc["docker_env"] or {}
        docker_image = docker.get("image") if isinstance(docker, dict) else None
    elif env_type:
        env_file = (root / str(doc[env_type])).resolve()
        if not env_file.is_file():
            raise ProjectError(f"{spec_file} names {env_type} file {doc[env_type]!r}, which does not exist")
    return Project(root, doc.get("name"), _entry_points(doc.get("entry_points") or {}, spec_file),
                   env_type, env_file, docker_image)


def _entry_points(raw: Any, spec_file: Path) -> dict[str, EntryPoint]:
    if not isinstance(raw, dict):
        raise ProjectError(f"{spec_file}: entry_points must be a mapping")
    out: dict[str, EntryPoint] = {}
    for name, body in raw.items():
        if not isinstance(body, dict) or not isinstance(body.get("command"), str):
            raise ProjectError(f"{spec_file}: entry point {name!r} needs a command")
        params: dict[str, Parameter] = {}
        for pname, pspec in (body.get("parameters") or {}).items():
            if isinstance(pspec, str):
                ptype, default = pspec, None
            elif isinstance(pspec, dict):
                ptype, default = str(pspec.get("type", "string")), pspec.get("default")
            else:
                raise ProjectError(f"{spec_file}: parameter {pname!r} of {name!r} must be a type "
                                   "or a mapping with type and default")
            if ptype not in PARAMETER_TYPES:
                raise ProjectError(f"{spec_file}: parameter {pname!r} has unknown type {ptype!r} "
                                   f"(one of {', '.join(PARAMETER_TYPES)})")
            params[str(pname)] = Parameter(str(pname), ptype, default)
        out[str(name)] = EntryPoint(str(name), body["command"], params)
    return out
