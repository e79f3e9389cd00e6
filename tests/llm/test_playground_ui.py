"""The Prompts section and the playground in Chromium, against a real model server.

The prompt carries markup in its template and commit message, and the tiny model
answers with an ``<img onerror>`` payload (tests/llm/tiny_model.py): everything
must show as text and nothing may run.  A run of the playground is logged as a run
(params, the outputs table, a trace per call) and a template is registered as a
new prompt version; the unmodified mlflow client then reads all of it back.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.llm.conftest import LlmServer
from tests.llm.tiny_model import PAYLOAD
from tests.servers import ServerProcess, start_server

KEY = "sk-ui-KEY-5c0ffee9d1"
PROMPT = "xss-prompt"
V1 = 'Tell me about {{topic}} <script>window.__prompt_xss=1</script><img src=x onerror="window.__prompt_xss=1">'
V2 = "Tell me about {{topic}}\nin the tone of {{tone}} <b>bold</b>"
COMMIT = '<img src=x onerror="window.__commit_xss=1"> second take'


@pytest.fixture(scope="module")
def gw_ui(llm_server: LlmServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    from tests.ui.conftest import _ensure_bundle

    _ensure_bundle()
    workdir = tmp_path_factory.mktemp("playground")
    key = workdir / "key"
    key.write_text(KEY)
    key.chmod(0o600)
    config = workdir / "gateway.yaml"
    config.write_text(
        "endpoints:\n  - name: tiny-chat\n    endpoint_type: llm/v1/chat\n    model:\n      provider: openai\n"
        f"      name: {llm_server.model}\n      config:\n        openai_api_base: {llm_server.url}\n"
        f"        openai_api_key: {key}\n")
    srv = start_server(f"sqlite:///{workdir / 'mlruns.db'}", workdir, extra=["--gateway-config", str(config)],
                       timeout=120)
    yield srv
    srv.stop()


@pytest.fixture
def mlflow_on(gw_ui: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", gw_ui.token or "")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(gw_ui.url)
    yield mlflow
    mlflow.set_tracking_uri(None)


def open_page(browser: Any, srv: ServerProcess, hash_path: str) -> Any:
    context = browser.new_context()
    page = context.new_page()
    page.errors = []  # type: ignore[attr-defined]
    page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
    page.on("dialog", lambda d: (page.errors.append("dialog: " + d.message), d.dismiss()))  # type: ignore[attr-defined]
    page.goto(f"{srv.url}/?token={srv.token}")
    page.goto(f"{srv.url}/#/{hash_path}")
    return page


def nothing_ran(page: Any) -> None:
    flags = page.evaluate("() => [window.__prompt_xss, window.__commit_xss, window.__llm_xss, window.__b_xss]")
    assert flags == [None, None, None, None]
    assert page.errors == []
    assert KEY not in page.content()


def test_prompts_section_shows_versions_template_diff_and_aliases(browser: Any, gw_ui: ServerProcess,
                                                                  mlflow_on: Any) -> None:
    mlflow = mlflow_on
    mlflow.genai.register_prompt(PROMPT, V1, commit_message="first")
    mlflow.genai.register_prompt(PROMPT, V2, commit_message=COMMIT)
    mlflow.MlflowClient().create_registered_model("an-ordinary-model")

    page = open_page(browser, gw_ui, "prompts")
    page.wait_for_selector(f"tr.prompt-row[data-name='{PROMPT}']")
    assert page.locator("tr.prompt-row").count() == 1  # the ordinary model is not a prompt
    page.goto(f"{gw_ui.url}/#/models")
    page.wait_for_selector(".model-list")
    page.wait_for_timeout(500)
    assert PROMPT not in page.locator(".model-list").inner_text()  # prompts no longer show among models
    assert "an-ordinary-model" in page.locator(".model-list").inner_text()

    page.goto(f"{gw_ui.url}/#/prompts/{PROMPT}?v=1")
    page.wait_for_selector(".prompt-template")
    assert page.locator(".prompt-template").inner_text() == V1
    assert page.locator(".prompt-template .prompt-var").all_inner_texts() == ["{{topic}}"]
    assert page.locator(".prompt-page img, .prompt-page script").count() == 0
    versions = page.locator("tr.prompt-version-row")
    assert versions.count() == 2
    assert page.locator("tr.prompt-version-row[data-version='2'] .commit-message").inner_text() == COMMIT
    # v1 against v2: the diff lists what v2 removed and added, line by line, as text.
    page.select_option("select.diff-with", "2")
    page.wait_for_selector(".prompt-diff .diff-add")
    assert page.locator(".prompt-diff .diff-add").all_inner_texts() == [f"+ {V1}"]
    assert page.locator(".prompt-diff .diff-del").all_inner_texts() == [f"- {line}" for line in V2.split("\n")]
    page.fill("input.alias-name", "production")
    page.click("form.alias-form button")
    page.wait_for_selector("ul.alias-list li")
    assert "@production" in page.locator("ul.alias-list").inner_text()
    assert mlflow.genai.load_prompt(f"prompts:/{PROMPT}@production").version == 1
    nothing_ran(page)
    page.context.close()
    assert KEY not in gw_ui.log()


def test_playground_compares_candidates_logs_the_run_and_registers(browser: Any, gw_ui: ServerProcess,
                                                                   mlflow_on: Any, tmp_path: Path) -> None:
    mlflow = mlflow_on
    name = "playground-prompt"
    version = mlflow.genai.register_prompt(name, V2, commit_message="topic and tone").version
    page = open_page(browser, gw_ui, f"playground?prompt={name}&version={version}")
    page.wait_for_selector(".candidate[data-label='A'] select.endpoint option[value='tiny-chat']", state="attached")
    page.wait_for_function("() => document.querySelector(\".candidate[data-label='A'] textarea\").value.length > 0")
    page.click("button.add-candidate")
    b_template = 'Answer about {{topic}} <img src=x onerror="window.__b_xss=1">'
    page.fill(".candidate[data-label='B'] textarea", b_template)
    cells = page.locator("table.inputs input.input-cell")
    assert cells.count() == 2  # topic and tone: the union of both templates' variables
    page.locator("table.inputs input[aria-label='topic of row 1']").fill("<b>the sea</b>")
    page.click("button.add-row")
    page.locator("table.inputs input[aria-label='topic of row 2']").fill("clusters")
    page.fill("input.max-tokens", "3")
    page.click("button.run-playground")
    page.wait_for_selector("a.logged-run-link", timeout=120_000)

    outputs = page.locator(".outputs-table pre.output-text").all_inner_texts()
    assert outputs == [PAYLOAD * 3] * 4  # 2 inputs x 2 candidates, the model's own words, as text
    assert page.locator(".outputs-table img, .candidates img").count() == 0
    nothing_ran(page)

    run_id = page.locator("a.logged-run-link").get_attribute("href").rsplit("/", 1)[-1]
    run = mlflow.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["A.template"] == V2
    assert run.data.params["A.prompt"] == f"prompts:/{name}/{version}"
    assert run.data.params["B.template"] == b_template
    assert run.data.params["A.endpoint"] == "tiny-chat" and run.data.params["max_tokens"] == "3"
    table = json.loads(Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="playground_outputs.json",
                                                                dst_path=str(tmp_path))).read_text())
    assert table["columns"][:3] == ["candidate", "endpoint", "topic"]
    assert [row[table["columns"].index("output")] for row in table["data"]] == [PAYLOAD * 3] * 4
    trace_ids = {row[table["columns"].index("trace_id")] for row in table["data"]}
    traces = mlflow.search_traces(locations=[run.info.experiment_id], run_id=run_id, return_type="list")
    assert {t.info.trace_id for t in traces} == trace_ids and len(trace_ids) == 4

    page.fill(".candidate[data-label='B'] input.register-name", name)
    page.fill(".candidate[data-label='B'] input.register-message", "from the playground")
    page.click(".candidate[data-label='B'] form.register-form button")
    page.wait_for_selector(".candidate[data-label='B'] .register-result a")
    assert page.locator(".outputs-table a.trace-link").count() == 4
    new = mlflow.genai.load_prompt(f"prompts:/{name}@latest")
    assert new.version == version + 1
    assert new.template == b_template and new.commit_message == "from the playground"
    nothing_ran(page)
    page.context.close()
    assert KEY not in gw_ui.log()
