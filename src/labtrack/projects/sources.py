"""Where a project's code comes from: a local folder or a Git repository (``repo#subdir``).

Git sources are cloned into labtrack's cache (``$LABTRACK_CACHE_DIR``, else
``~/.cache/labtrack``), which on a cluster lies on the shared home folder, so
compute nodes see the same checkout as the login node that submitted the job.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from labtrack.projects.spec import ProjectError

_GIT_PREFIXES = ("git+", "git@", "ssh://", "git://", "http://", "https://", "file://")


@dataclass(frozen=True)
class Source:
    """A checked-out project: its folder, and the Git facts MLflow records as tags."""

    uri: str
    folder: Path
    commit: str | None = None
    repo_url: str | None = None
    branch: str | None = None


def cache_dir() -> Path:
    return Path(os.environ.get("LABTRACK_CACHE_DIR") or Path.home() / ".cache" / "labtrack")


def fetch(uri: str, version: str | None = None) -> Source:
    """Check ``uri`` out (at ``version`` for Git) and return where its project lies."""
    base, _, sub = uri.partition("#")
    if _is_git(base):
        if shutil.which("git") is None:
            raise ProjectError("git is not installed; it is needed for a Git project URI")
        checkout = _clone(base, version)
        folder = _subdir(checkout, sub)
        return Source(uri, folder, _git(checkout, "rev-parse", "HEAD"), _strip(base),
                      version if version and _is_branch(checkout, version) else None)
    folder = _subdir(Path(base).expanduser().resolve(), sub)
    if version:
        raise ProjectError("--version needs a Git project URI; a local folder runs as it is")
    commit = repo = None
    if shutil.which("git") and _git(folder, "rev-parse", "--is-inside-work-tree") == "true":
        commit = _git(folder, "rev-parse", "HEAD")
        repo = _git(folder, "config", "--get", "remote.origin.url")
    return Source(uri, folder, commit, repo)


def _is_git(base: str) -> bool:
    if base.startswith(_GIT_PREFIXES) or base.endswith(".git"):
        return True
    path = Path(base).expanduser()
    return False if path.exists() else "://" in base


def _strip(base: str) -> str:
    return base[len("git+"):] if base.startswith("git+") else base


def _subdir(root: Path, sub: str) -> Path:
    folder = (root / sub).resolve() if sub else root
    if sub and not folder.is_relative_to(root):
        raise ProjectError(f"the project subfolder {sub!r} lies outside the repository")
    if not folder.is_dir():
        raise ProjectError(f"no project folder at {folder}")
    return folder


def _clone(base: str, version: str | None) -> Path:
    url = _strip(base)
    key = hashlib.sha256(f"{url}\0{version or ''}".encode()).hexdigest()[:16]
    target = cache_dir() / "projects" / key
    if target.is_dir():
        # A branch moves: bring the cached clone to its tip (a commit stays where it is).
        _run_git(["fetch", "--quiet", "origin"], target, allow_fail=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        _run_git(["clone", "--quiet", url, str(tmp)], None)
        try:
            tmp.rename(target)
        except OSError:  # another process cloned it first
            shutil.rmtree(tmp, ignore_errors=True)
    if version:
        ref = f"origin/{version}" if _is_branch(target, version) else version
        _run_git(["checkout", "--quiet", "--detach", ref], target)
    return target


def _is_branch(repo: Path, name: str) -> bool:
    return _git(repo, "rev-parse", "--verify", "--quiet", f"refs/remotes/origin/{name}") is not None


def _run_git(args: list[str], cwd: Path | None, allow_fail: bool = False) -> None:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode and not allow_fail:
        last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise ProjectError(f"git {args[0]} failed: {last}")


def _git(cwd: Path, *args: str) -> str | None:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    out = proc.stdout.strip()
    return out if proc.returncode == 0 and out else None
