"""The AI gateway in front of a real model server (``transformers serve`` on a tiny Llama).

Through a real ``labtrack server --gateway-config``: the unmodified mlflow
deployments client and plain OpenAI-style HTTP calls get real generations; a
stream arrives as server-sent events; every call becomes a trace with its token
usage and latency; limits and timeouts answer with MLflow's error JSON; and the
provider key never appears in any reply or log.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.llm.conftest import LlmServer
from tests.llm.tiny_model import PAYLOAD
from tests.servers import ServerProcess, start_server

FILE_KEY = "sk-file-KEY-7f3a9c1e5b"
ENV_KEY = "sk-env-KEY-2d8e4b6a0c"
ENV_NAME = "LABTRACK_TEST_PROVIDER_KEY"


def gateway_yaml(llm: LlmServer, key_file: Path, blackhole: int) -> str:
    def endpoint(name: str, etype: str, key: str, extra: str = "", base: str = llm.url) -> str:
        return (f"  - name: {name}\n    endpoint_type: {etype}\n    model:\n      provider: openai\n"
                f"      name: {llm.model}\n      config:\n        openai_api_base: {base}\n"
                f"        openai_api_key: {key}\n{extra}")
    return "endpoints:\n" + "".join([
        endpoint("chat", "llm/v1/chat", str(key_file)),
        endpoint("complete", "llm/v1/completions", f"${ENV_NAME}"),
        endpoint("limited", "llm/v1/chat", str(key_file), "    limit: {renewal_period: minute, calls: 2}\n"),
        endpoint("stuck", "llm/v1/chat", str(key_file), "    timeout: 1\n",
                 base=f"http://127.0.0.1:{blackhole}/v1"),
    ])


@pytest.fixture(scope="module")
def blackhole() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung model server)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


@pytest.fixture(scope="module")
def gw(llm_server: LlmServer, blackhole: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    workdir = tmp_path_factory.mktemp("gateway")
    key_file = workdir / "provider.key"
    key_file.write_text(FILE_KEY)
    key_file.chmod(0o600)
    config = workdir / "gateway.yaml"
    config.write_text(gateway_yaml(llm_server, key_file, blackhole))
    mp = pytest.MonkeyPatch()
    mp.setenv(ENV_NAME, ENV_KEY)  # inherited by the server process only while it starts
    try:
        srv = start_server(f"sqlite:///{workdir / 'mlruns.db'}", workdir, extra=["--gateway-config", str(config)],
                           timeout=120)
    finally:
        mp.undo()
    srv.replies = []  # type: ignore[attr-defined]  # every reply, for the key grep at the end
    srv.config = config  # type: ignore[attr-defined]
    yield srv
    srv.stop()


def call(gw: ServerProcess, method: str, path: str, body: object = None, **kw: object) -> requests.Response:
    r = gw.session.request(method, gw.url + path, json=body, timeout=120, **kw)
    if not kw.get("stream"):
        seen(gw, r, r.text)
    return r


def seen(gw: ServerProcess, r: requests.Response, text: str) -> None:
    """Keep what a client saw of a reply (body and headers) for the key grep."""
    gw.replies.append(text + json.dumps(dict(r.headers)))  # type: ignore[attr-defined]


def chat(content: str = "hello world") -> dict[str, object]:
    return {"messages": [{"role": "user", "content": content}], "max_tokens": 6, "temperature": 0.7}


def test_deployments_client_gets_answers_from_the_model_server(gw: ServerProcess,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.deployments import get_deploy_client

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", gw.token or "")
    client = get_deploy_client(gw.url)
    endpoints = {e.name: e for e in client.list_endpoints()}
    assert set(endpoints) == {"chat", "complete", "limited", "stuck"}
    assert endpoints["chat"].endpoint_type == "llm/v1/chat"
    assert endpoints["chat"].model.provider == "openai"
    assert endpoints["limited"].limit.calls == 2
    assert client.get_endpoint("complete").endpoint_url == f"{gw.url}/endpoints/complete/invocations"

    reply = client.predict(endpoint="chat", inputs=chat())
    assert reply["object"] == "chat.completion"
    text = reply["choices"][0]["message"]["content"]
    assert isinstance(text, str) and text  # real tokens from the tiny model
    assert reply["usage"]["completion_tokens"] == 6
    completion = client.predict(endpoint="complete", inputs={"prompt": "the quick brown", "max_tokens": 4})
    assert completion["choices"][0]["text"] and completion["usage"]["completion_tokens"] == 4


def test_openai_style_http_calls(gw: ServerProcess) -> None:
    r = call(gw, "POST", "/v1/chat/completions", {"model": "chat", **chat("write a haiku")})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["role"] == "assistant"
    assert r.headers["X-Labtrack-Trace-Id"].startswith("tr-")
    r = call(gw, "POST", "/gateway/mlflow/v1/completions", {"model": "complete", "prompt": "hello", "max_tokens": 3})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] == 3
    r = call(gw, "POST", "/gateway/chat/mlflow/invocations", chat())
    assert r.status_code == 200 and r.json()["choices"]
    models = call(gw, "GET", "/v1/models").json()
    assert {m["id"] for m in models["data"]} == {"chat", "complete", "limited", "stuck"}
    # A wrong endpoint type or name is MLflow's error JSON, not the provider's.
    r = call(gw, "POST", "/v1/completions", {"model": "chat", "prompt": "x"})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    r = call(gw, "POST", "/v1/chat/completions", {"model": "nope", **chat()})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    # Without the server's token nothing reaches the model server.
    r = requests.post(gw.url + "/v1/chat/completions", json={"model": "chat", **chat()}, timeout=30)
    seen(gw, r, r.text)
    assert r.status_code == 401


def test_streaming_is_relayed_as_server_sent_events(gw: ServerProcess) -> None:
    r = call(gw, "POST", "/v1/chat/completions", {"model": "chat", **chat(), "stream": True}, stream=True)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/event-stream")
    lines = list(r.iter_lines(decode_unicode=True))
    seen(gw, r, "\n".join(lines))
    events = [json.loads(line[5:]) for line in lines if line.startswith("data:") and line[5:].strip() != "[DONE]"]
    pieces = [c["delta"].get("content") for e in events for c in e["choices"] if c.get("delta")]
    # Every generated token's text, in order.  How many tokens share an event is the model
    # server's choice (transformers serve sends what its streamer holds when it looks).
    assert "".join(p for p in pieces if p) == PAYLOAD * 6
    assert len(events) >= 3  # relayed as events (the role, the text, the usage), not one answer
    assert events[-1]["usage"]["completion_tokens"] == 6


def test_each_call_is_a_trace_with_token_usage_and_latency(gw: ServerProcess,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    r = call(gw, "POST", "/v1/chat/completions", {"model": "chat", **chat("trace me")})
    trace_id = r.headers["X-Labtrack-Trace-Id"]
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", gw.token or "")
    mlflow.set_tracking_uri(gw.url)
    try:
        exp = mlflow.get_experiment_by_name("gateway/chat")
        trace = None
        for _ in range(50):  # the trace is written after the reply
            found = [t for t in mlflow.search_traces(locations=[exp.experiment_id], return_type="list")
                     if t.info.trace_id == trace_id]
            if found:
                trace = found[0]
                break
            time.sleep(0.1)
        assert trace is not None
        assert trace.info.token_usage == {"input_tokens": r.json()["usage"]["prompt_tokens"],
                                          "output_tokens": 6, "total_tokens": r.json()["usage"]["total_tokens"]}
        span = trace.data.spans[0]
        assert span.name == "chat" and span.span_type == "CHAT_MODEL"
        assert span.inputs["messages"][0]["content"] == "trace me"
        assert span.outputs["choices"][0]["message"]["content"] == r.json()["choices"][0]["message"]["content"]
        assert span.attributes["labtrack.gateway.latency_ms"] > 0
        assert trace.info.execution_duration >= 0
    finally:
        mlflow.set_tracking_uri(None)


def test_rate_limit_and_timeout_answer_with_mlflow_errors(gw: ServerProcess) -> None:
    replies = [call(gw, "POST", "/v1/chat/completions", {"model": "limited", **chat()}) for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 429]
    assert replies[-1].json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    r = call(gw, "POST", "/v1/chat/completions", {"model": "stuck", **chat()})
    assert r.status_code == 504 and r.json()["error_code"] == "DEADLINE_EXCEEDED"
    assert "1 s" in r.json()["message"]


def test_endpoints_made_over_the_rest_api(gw: ServerProcess, llm_server: LlmServer) -> None:
    base = "/api/3.0/mlflow/gateway/"
    r = call(gw, "POST", base + "secrets/create", {"secret_name": "k", "provider": "openai",
                                                     "secret_value": {"api_key": FILE_KEY},
                                                     "auth_config": {"api_base": llm_server.url}})
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    secret = call(gw, "POST", base + "secrets/create", {
        "secret_name": "k", "provider": "openai",
        "auth_config": {"api_base": llm_server.url, "api_key_env": ENV_NAME}}).json()["secret"]
    assert ENV_NAME in json.dumps(secret)
    model = call(gw, "POST", base + "model-definitions/create", {
        "name": "tiny", "secret_id": secret["secret_id"], "provider": "openai",
        "model_name": llm_server.model}).json()["model_definition"]
    created = call(gw, "POST", base + "endpoints/create", {
        "name": "api-chat", "model_configs": [{"model_definition_id": model["model_definition_id"],
                                               "linkage_type": "PRIMARY"}]}).json()["endpoint"]
    assert created["model_mappings"][0]["model_definition"]["model_name"] == llm_server.model
    listed = call(gw, "GET", base + "endpoints/list").json()["endpoints"]
    assert [e["name"] for e in listed] == ["api-chat"]
    r = call(gw, "POST", "/v1/chat/completions", {"model": "api-chat", **chat()})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 6
    renamed = call(gw, "POST", base + "endpoints/update", {"endpoint_id": created["endpoint_id"],
                                                             "name": "api-chat-2"}).json()["endpoint"]
    assert renamed["name"] == "api-chat-2"
    assert call(gw, "DELETE", base + "endpoints/delete", {"endpoint_id": created["endpoint_id"]}).status_code == 200
    r = call(gw, "GET", base + "endpoints/get", params={"name": "api-chat-2"})
    assert r.status_code == 404 and r.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_endpoints_made_over_rest_survive_a_restart(llm_server: LlmServer, backend_uri: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A tracking server keeps them in its database (SQLite, PostgreSQL); the key stays in the environment."""
    monkeypatch.setenv(ENV_NAME, ENV_KEY)
    db = backend_uri
    srv = start_server(db, tmp_path, timeout=120)
    base = "/api/3.0/mlflow/gateway/"
    try:
        secret = srv.api("POST", base + "secrets/create", {
            "secret_name": "k", "provider": "openai",
            "auth_config": {"api_base": llm_server.url, "api_key_env": ENV_NAME}}).json()["secret"]
        model = srv.api("POST", base + "model-definitions/create", {
            "name": "tiny", "secret_id": secret["secret_id"], "provider": "openai",
            "model_name": llm_server.model}).json()["model_definition"]
        made = srv.api("POST", base + "endpoints/create", {
            "name": "kept", "limit": {"calls": 5, "renewal_period": "minute"},
            "model_configs": [{"model_definition_id": model["model_definition_id"],
                               "linkage_type": "PRIMARY"}]}).json()["endpoint"]
    finally:
        srv.stop()
    srv = start_server(db, tmp_path, timeout=120)
    try:
        listed = srv.api("GET", base + "endpoints/list").json()["endpoints"]
        assert [(e["endpoint_id"], e["name"], e["limit"]["calls"]) for e in listed] == [
            (made["endpoint_id"], "kept", 5)]
        assert srv.api("GET", "/api/2.0/endpoints/kept").json()["model"]["name"] == llm_server.model
        r = srv.api("POST", "/v1/chat/completions", {"model": "kept", **chat()})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 6
        assert srv.api("DELETE", base + "endpoints/delete", {"endpoint_id": made["endpoint_id"]}).status_code == 200
    finally:
        srv.stop()
    srv = start_server(db, tmp_path, timeout=120)
    try:
        assert srv.api("GET", base + "endpoints/list").json()["endpoints"] == []
        assert [m["name"] for m in srv.api("GET", base + "model-definitions/list").json()["model_definitions"]] == ["tiny"]
    finally:
        srv.stop()
    if db.startswith("sqlite:"):
        assert ENV_KEY.encode() not in (tmp_path / "mlruns.db").read_bytes()


def test_bad_gateway_configs_are_one_line_refusals(tmp_path: Path) -> None:
    key = tmp_path / "open.key"
    key.write_text(FILE_KEY)
    key.chmod(0o644)
    cases = {
        "not: [valid": "not valid YAML",
        "endpoints:\n  - name: a b\n": "Invalid endpoint name",
        "endpoints:\n  - name: x\n    endpoint_type: llm/v1/chat\n    model: {provider: openai, name: m, "
        f"config: {{openai_api_base: 'http://127.0.0.1:1/v1', openai_api_key: {FILE_KEY}}}}}\n": "is refused",
        "endpoints:\n  - name: x\n    endpoint_type: llm/v1/chat\n    model: {provider: openai, name: m, "
        f"config: {{openai_api_base: 'http://127.0.0.1:1/v1', openai_api_key: {key}}}}}\n": "chmod 600",
        "endpoints:\n  - name: x\n    endpoint_type: llm/v9/chat\n": "endpoint_type must be one of",
    }
    for text, expected in cases.items():
        config = tmp_path / "gateway.yaml"
        config.write_text(text)
        out = subprocess.run([sys.executable, "-m", "labtrack", "gateway", "--config", str(config), "--port", "0"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, out
        assert expected in out.stderr and "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
        assert FILE_KEY not in out.stderr + out.stdout


def test_labtrack_gateway_alone(gw: ServerProcess, tmp_path: Path) -> None:
    """``labtrack gateway --config``: the same routes without a database, behind its token."""
    from tests.servers import free_port

    port = free_port()
    log_path = tmp_path / "gateway.log"
    env = dict(os.environ, **{ENV_NAME: ENV_KEY})
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "labtrack", "gateway", "--config", str(gw.config),  # type: ignore[attr-defined]
                                 "--port", str(port), "--token", "gw-token"], stdout=log, stderr=subprocess.STDOUT,
                                env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            try:
                if requests.get(url + "/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        auth = {"Authorization": "Bearer gw-token"}
        assert requests.post(url + "/v1/chat/completions", json={"model": "chat", **chat()}, timeout=30).status_code == 401
        r = requests.post(url + "/v1/chat/completions", json={"model": "chat", **chat()}, headers=auth, timeout=120)
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 6
        assert "X-Labtrack-Trace-Id" not in r.headers  # no database, no traces
        r2 = requests.post(url + "/endpoints/complete/invocations", json={"prompt": "hi", "max_tokens": 2},
                           headers=auth, timeout=120)
        assert r2.status_code == 200 and r2.json()["usage"]["completion_tokens"] == 2
        listed = requests.get(url + "/api/2.0/endpoints/", headers=auth, timeout=30)
        for reply in (r, r2, listed):
            seen(gw, reply, reply.text)
    finally:
        proc.terminate()
        proc.wait(30)
    out = log_path.read_text()
    assert "labtrack gateway at" in out
    assert FILE_KEY not in out and ENV_KEY not in out


def test_the_provider_key_never_leaves_the_server(gw: ServerProcess) -> None:
    """Runs last in this module: every reply so far, the endpoint listings and the log."""
    for path in ("/api/2.0/endpoints/", "/api/3.0/mlflow/gateway/secrets/list",
                 "/api/3.0/mlflow/gateway/endpoints/list", "/v1/models", "/"):
        call(gw, "GET", path)
    replies = gw.replies  # type: ignore[attr-defined]
    assert len(replies) > 20
    for text in replies:
        assert FILE_KEY not in text and ENV_KEY not in text, text[:200]
    log = gw.log()
    assert FILE_KEY not in log and ENV_KEY not in log
