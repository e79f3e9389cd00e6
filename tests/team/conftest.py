"""Real parts of the team server: moto's S3 server, mlflow and labtrack servers beside it.

S3 is moto's standalone server (``moto_server``, from ``moto[server]`` on PyPI)
over real HTTP, driven by real boto3.  MinIO's server is not in the package
registries this project installs from, and Debian's radosgw needs a whole Ceph
cluster; moto speaks the S3 REST protocol (multipart uploads included) in one
process that starts in a second.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.servers import free_port

S3_ENV = {"AWS_ACCESS_KEY_ID": "labtrack-test", "AWS_SECRET_ACCESS_KEY": "labtrack-test-secret",
          "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class S3Server:
    endpoint: str
    proc: subprocess.Popen[bytes]

    def env(self) -> dict[str, str]:
        return {**S3_ENV, "MLFLOW_S3_ENDPOINT_URL": self.endpoint}

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"])

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        return sorted(obj["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
                      for obj in page.get("Contents") or [])


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A ``moto_server`` process on a free loopback port (skips if moto[server] is missing)."""
    exe = shutil.which("moto_server")
    if exe is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            requests.get(endpoint + "/moto-api/", timeout=1)
            break
        except requests.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"moto_server did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
    yield S3Server(endpoint, proc)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """This process's environment pointed at the S3 server, as a user would set it."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


def launch(cmd: list[str], workdir: Path, env: dict[str, str], name: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Start a server process (its own session, so its whole tree can be stopped)."""
    log = workdir / f"{name}.log"
    full_env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", **env)
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=full_env,
                                start_new_session=True)
    return proc, log


def mlflow_cmd(workdir: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{workdir}/m.db",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1", *extra]


def labtrack_cmd(workdir: Path, port: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "labtrack", "server", "--backend-store-uri", f"sqlite:///{workdir}/l.db",
            "--host", "127.0.0.1", "--port", str(port), *extra]
