"""A real OpenAI-compatible model server for the gateway and playground tests.

``llm_server`` is ``transformers serve`` (a real inference engine, FastAPI +
uvicorn) over a tiny Llama built here with a tokenizer trained here
(tests/llm/tiny_model.py): it generates real tokens on the CPU, offline, with no
hub download.  ``LABTRACK_TEST_LLM_URL`` and ``LABTRACK_TEST_LLM_MODEL`` may name
one already running; otherwise the session starts its own, once.
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

LLM_URL_ENV = "LABTRACK_TEST_LLM_URL"
LLM_MODEL_ENV = "LABTRACK_TEST_LLM_MODEL"
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
               "DO_NOT_TRACK": "1"}


@dataclass
class LlmServer:
    url: str  # the OpenAI base URL, ending in /v1
    model: str  # the model name the server expects
    proc: subprocess.Popen[bytes] | None
    log_path: Path | None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


def serving_available() -> str | None:
    """None when ``transformers serve`` can run here, else why not."""
    for module in ("torch", "transformers", "tokenizers", "fastapi", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install 'transformers[serving]' torch)"
    return None


def start_llm_server(workdir: Path, timeout: float = 600.0) -> LlmServer:
    """Build the tiny model in ``workdir`` and serve it; return once it answers."""
    model_dir = workdir / "tiny-llama"
    env = dict(os.environ, **OFFLINE_ENV)
    subprocess.run([sys.executable, str(Path(__file__).with_name("tiny_model.py")), str(model_dir)],
                   check=True, env=env, capture_output=True, timeout=timeout)
    port = free_port()
    log_path = workdir / "transformers-serve.log"
    exe = shutil.which("transformers")
    cmd = ([exe] if exe else [sys.executable, "-m", "transformers.cli.transformers"]) + [
        "serve", str(model_dir), "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
        "--log-level", "warning"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                                start_new_session=True)
    server = LlmServer(f"http://127.0.0.1:{port}/v1", str(model_dir), proc, log_path)
    deadline = time.monotonic() + timeout  # a busy 2-core CI box takes a minute to import torch
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"transformers serve exited ({proc.returncode}):\n{server.log()[-3000:]}")
        try:
            if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop_llm_server(server)
    raise RuntimeError(f"transformers serve did not answer within {timeout:.0f} s:\n{server.log()[-3000:]}")


def stop_llm_server(server: LlmServer) -> None:
    if server.proc is not None and server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(5)


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlmServer]:
    """A real OpenAI-compatible server doing real inference on a tiny local model."""
    if os.environ.get(LLM_URL_ENV) and os.environ.get(LLM_MODEL_ENV):
        yield LlmServer(os.environ[LLM_URL_ENV], os.environ[LLM_MODEL_ENV], None, None)
        return
    why = serving_available()
    if why:
        pytest.skip(why)
    server = start_llm_server(tmp_path_factory.mktemp("llm"))
    yield server
    stop_llm_server(server)
