"""Fixtures for `labtrack run`: a real labtrack server, a real mlflow server, the sample project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers import ServerProcess, start_server

SAMPLE = Path(__file__).resolve().parent / "sample"
CLIENT_ENV = ("LABTRACK_TRACKING_URI", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN",
              "LABTRACK_TRACKING_TOKEN", "LABTRACK_DATABASE", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID",
              "MLFLOW_EXPERIMENT_NAME", "LABTRACK_SPOOL")


@dataclass
class Cli:
    """Runs ``labtrack``/``mlflow`` commands in a folder, with a given tracking environment."""

    cwd: Path
    env: dict[str, str]

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), cwd=self.cwd, env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def labtrack(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return self(sys.executable, "-m", "labtrack", *args, timeout=timeout)


def base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV and not k.startswith("SLURM_")}
    env.update(LABTRACK_CACHE_DIR=str(tmp / "cache"), MLFLOW_DISABLE_TELEMETRY="true",
               DO_NOT_TRACK="true", PYTHONUNBUFFERED="1")
    return env


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """labtrack's cache (clones, environments, job folders), for the CLI and the server alike."""
    monkeypatch.setenv("LABTRACK_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def labtrack_server(tmp_path: Path, cache_dir: Path) -> Iterator[ServerProcess]:
    work = tmp_path / "server"
    work.mkdir()
    server = start_server(f"sqlite:///{work}/mlruns.db", work)
    yield server
    server.stop()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the sample project (runs write nothing into the repository)."""
    dst = tmp_path / "sample"
    shutil.copytree(SAMPLE, dst)
    return dst
