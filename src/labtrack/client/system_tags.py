"""The ``mlflow.*`` tags that MLflow's client sets when it creates a run.

Git facts are read from the ``.git`` folder directly (no subprocess, no
GitPython): a run start must stay cheap.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

USER = "mlflow.user"
SOURCE_NAME = "mlflow.source.name"
SOURCE_TYPE = "mlflow.source.type"
GIT_COMMIT = "mlflow.source.git.commit"
GIT_BRANCH = "mlflow.source.git.branch"
GIT_REPO_URL = "mlflow.source.git.repoURL"
RUN_NAME = "mlflow.runName"
PARENT_RUN_ID = "mlflow.parentRunId"
NOTE = "mlflow.note.content"


def user_name() -> str:
    """The user MLflow would record (its Basic-auth user name wins)."""
    named = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if named:
        return named
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return "unknown"


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules and "IPython" in sys.modules


def source() -> tuple[str, str]:
    """(source name, source type) of the code that is running."""
    if _in_notebook():
        # jupyter_server tells kernels their notebook's path; VS Code has its own variable.
        name = os.environ.get("JPY_SESSION_NAME") or ""
        if not name:
            main = sys.modules.get("__main__")
            name = getattr(main, "__vsc_ipynb_file__", "") or "notebook"
        return name, "NOTEBOOK"
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if argv0 and argv0 not in ("-c", "-m") and os.path.exists(argv0):
        return os.path.abspath(argv0), "LOCAL"
    return argv0 or "<interactive>", "LOCAL"


def git_tags(start: str) -> dict[str, str]:
    """Commit, branch and origin URL of the checkout containing ``start``, if any."""
    here = Path(start).resolve()
    if here.is_file():
        here = here.parent
    for folder in (here, *here.parents):
        dot_git = folder / ".git"
        if dot_git.exists():
            return _read_git(dot_git)
    return {}


def _read_git(dot_git: Path) -> dict[str, str]:
    try:
        if dot_git.is_file():  # a worktree or submodule: ".git" names the real folder
            target = dot_git.read_text().strip().removeprefix("gitdir:").strip()
            git_dir = (dot_git.parent / target).resolve()
        else:
            git_dir = dot_git
        common = git_dir
        if (git_dir / "commondir").is_file():
            common = (git_dir / (git_dir / "commondir").read_text().strip()).resolve()
        head = (git_dir / "HEAD").read_text().strip()
        tags: dict[str, str] = {}
        if head.startswith("ref:"):
            ref = head[4:].strip()
            if ref.startswith("refs/heads/"):
                tags[GIT_BRANCH] = ref[len("refs/heads/"):]
            commit = _resolve_ref(git_dir, common, ref)
        else:
            commit = head
        if commit:
            tags[GIT_COMMIT] = commit
        url = _origin_url(common / "config")
        if url:
            tags[GIT_REPO_URL] = url
        return tags
    except OSError:
        return {}


def _resolve_ref(git_dir: Path, common: Path, ref: str) -> str | None:
    for base in (git_dir, common):
        loose = base / ref
        if loose.is_file():
            return loose.read_text().strip()
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    return None


def _origin_url(config: Path) -> str | None:
    if not config.is_file():
        return None
    in_origin = False
    for raw in config.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            in_origin = line.replace(" ", "") in ('[remote"origin"]',)
        elif in_origin and line.startswith("url"):
            return line.split("=", 1)[1].strip()
    return None


def run_start_tags() -> dict[str, str]:
    """The tags sent with ``runs/create``: user, source and, in a git checkout, git facts."""
    name, kind = source()
    tags = {USER: user_name(), SOURCE_NAME: name, SOURCE_TYPE: kind}
    where = name if kind == "LOCAL" and os.path.exists(name) else os.getcwd()
    tags.update(git_tags(where))
    from labtrack.client.slurm_tags import slurm_tags

    tags.update(slurm_tags())
    return tags
