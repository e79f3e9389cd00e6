"""The traces tab and the trace page in Chromium, with hostile markup in every logged string.

Traces are recorded through the server's own API (labtrack's traces/log, what ``lt.trace``
sends); the page must show names, inputs, outputs, attributes, events, tags and assessments as
text: no element is created from them, no script runs, no dialog opens.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.servers import ServerProcess
from tests.ui.conftest import PageWatch, goto, open_page, screenshot

EVIL = '<img src=x onerror="window.__xss=1;alert(1)">'
SCRIPT = "<script>window.__xss=2</script>"
MS = 1_000_000


@dataclass
class Seeded:
    exp: str
    evil: str
    failed: str
    slow: str
    run: str


def _span(sid: str, parent: str | None, name: str, start_ms: int, end_ms: int, **kw: Any) -> dict[str, Any]:
    base = 1_790_000_000_000
    return {"span_id": sid, "parent_span_id": parent, "name": name, "start_time_ns": (base + start_ms) * MS,
            "end_time_ns": (base + end_ms) * MS, **kw}


def _log(server: ServerProcess, exp: str, spans: list[dict[str, Any]], **kw: Any) -> str:
    trace_id = "tr-" + uuid.uuid4().hex
    r = server.api("POST", "/api/2.0/labtrack/traces/log",
                   {"experiment_id": exp, "trace_id": trace_id, "spans": spans, **kw})
    assert r.status_code == 200, r.text
    return trace_id


@pytest.fixture(scope="module")
def seeded(ui_server: ServerProcess) -> Seeded:
    r = ui_server.api("POST", "experiments/create", {"name": f"traces-ui-{uuid.uuid4().hex[:6]}"})
    exp = r.json()["experiment_id"]
    run = ui_server.api("POST", "runs/create", {"experiment_id": exp, "run_name": "with-traces"}).json()["run"]
    run_id = run["info"]["run_id"]
    root, child, grandchild = os.urandom(8).hex(), os.urandom(8).hex(), os.urandom(8).hex()
    evil = _log(ui_server, exp, [
        _span(root, None, EVIL, 0, 40, inputs={"question": EVIL, "nested": {"html": SCRIPT, "list": [EVIL]}},
              outputs={"answer": SCRIPT}, attributes={"evil.attr": EVIL}),
        _span(child, root, f"llm {SCRIPT}", 5, 30, span_type="LLM", inputs=[{"role": "user", "content": EVIL}],
              outputs=SCRIPT, attributes={"mlflow.chat.tokenUsage": {"input_tokens": 11, "output_tokens": 4,
                                                                      "total_tokens": 15}},
              events=[{"name": EVIL, "attributes": {"payload": SCRIPT}}]),
        _span(grandchild, child, "tool", 10, 20, span_type="TOOL", inputs={"x": 1}, outputs=2),
    ], tags={"note": EVIL}, trace_metadata={"mlflow.sourceRun": run_id})
    failed = _log(ui_server, exp, [_span(os.urandom(8).hex(), None, "fails", 100, 110, status="ERROR",
                                         status_message="ValueError: the tool broke",
                                         events=[{"name": "exception", "attributes": {
                                             "exception.type": "ValueError",
                                             "exception.stacktrace": f"Traceback...\nValueError: {EVIL}"}}])])
    slow = _log(ui_server, exp, [_span(os.urandom(8).hex(), None, "slow", 200, 2700, inputs="wait")])
    assert ui_server.api("POST", "traces/link-to-run", {"trace_ids": [failed], "run_id": run_id}).status_code == 200
    return Seeded(exp, evil, failed, slow, run_id)


@pytest.fixture
def tpage(browser: Any, ui_server: ServerProcess, seeded: Seeded) -> Iterator[tuple[Any, PageWatch]]:
    ctx, page, watch = open_page(browser, ui_server.url + "/", ui_server.token)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    yield page, watch
    assert dialogs == [], f"a dialog opened: {dialogs}"
    assert watch.errors == [], f"uncaught errors in the page: {watch.errors}"
    assert watch.foreign() == [], "the page made requests outside the server's origin"
    assert page.evaluate("window.__xss") is None, "a logged string was executed as markup"
    ctx.close()


def _names(page: Any) -> list[str]:
    return page.locator(".traces-table .trace-link").all_inner_texts()


def test_traces_tab_filters_sorts_and_shows_tokens(tpage: tuple[Any, PageWatch], seeded: Seeded) -> None:
    page, _ = tpage
    goto(page, f"#/experiments/{seeded.exp}/runs")
    page.wait_for_selector(".traces-link")
    # The head's buttons move as the run count fills in: click once it has (not where the link was).
    page.wait_for_function("document.querySelector('.run-count')?.textContent")
    page.click(".traces-link")
    page.wait_for_selector(".traces-table .trace-row")
    assert _names(page) == ["slow", "fails", EVIL]  # newest first
    row = page.locator(f".trace-row[data-trace-id='{seeded.evil}']")
    assert row.locator(".tokens").inner_text() == "15"
    assert row.locator("td.preview").first.inner_text().startswith('{"question": "<img src=x')
    assert page.locator(".view img").count() == 0

    page.select_option(".trace-sort", "slowest")
    page.wait_for_function("document.querySelector('.trace-link')?.textContent === 'slow'")
    assert _names(page)[0] == "slow"
    page.select_option(".trace-sort", "fastest")
    page.wait_for_function("document.querySelector('.trace-link')?.textContent === 'fails'")
    page.select_option(".trace-sort", "status")
    page.wait_for_function("document.querySelector('.trace-row .trace-state')?.textContent === 'ERROR'")

    page.fill(".trace-filter", "trace.status = 'ERROR'")
    page.press(".trace-filter", "Enter")
    page.wait_for_function("document.querySelectorAll('.trace-row').length === 1")
    assert _names(page) == ["fails"]
    page.fill(".trace-filter", "span.type = 'TOOL' and tags.note LIKE '%onerror%'")
    page.press(".trace-filter", "Enter")
    page.wait_for_function("document.querySelectorAll('.trace-row').length === 1")
    assert _names(page) == [EVIL]
    page.fill(".trace-filter", "tags.note = 'x' OR trace.status = 'OK'")
    page.press(".trace-filter", "Enter")
    page.wait_for_selector(".view .error:not(:empty)")
    screenshot(page, "traces.png")


def test_trace_page_renders_every_logged_string_as_text(tpage: tuple[Any, PageWatch], seeded: Seeded,
                                                        ui_server: ServerProcess) -> None:
    page, _ = tpage
    goto(page, f"#/traces/{seeded.evil}")
    page.wait_for_selector(".span-row")
    assert page.locator("h1.trace-name").inner_text() == EVIL
    assert page.locator(".span-row .span-name").all_inner_texts()[0].startswith(EVIL)
    assert len(page.locator(".span-row").all()) == 3
    assert page.locator(".trace-tokens").inner_text().startswith("15 tokens")
    assert page.locator(".trace-run").get_attribute("href") == f"#/runs/{seeded.run}"
    # The root span is selected: its inputs, outputs and attributes, as text.
    # (strings appear as JSON literals: the payload's quotes escaped)
    inputs = page.locator(".span-inputs").inner_text()
    assert json.dumps(EVIL) in inputs and SCRIPT in inputs
    assert SCRIPT in page.locator(".span-outputs").inner_text()
    assert json.dumps(EVIL) in page.locator(".span-attributes").inner_text()
    # A child: its events; the timeline places it inside its parent.
    page.locator(".span-row", has_text="llm").click()
    page.wait_for_selector(".span-detail .span-events")
    assert EVIL in page.locator(".span-events").inner_text()  # the event's name, as plain text
    assert SCRIPT in page.locator(".span-events").inner_text()
    bars = page.locator(".span-bar")
    root_box, child_box = bars.nth(0).bounding_box(), bars.nth(1).bounding_box()
    assert root_box["x"] <= child_box["x"] and child_box["x"] + child_box["width"] <= root_box["x"] + root_box["width"] + 1
    # Collapsible JSON: folding hides the nested object.
    page.locator(".span-row", has_text=EVIL).first.click()
    nested = page.locator(".span-inputs details.json").first
    assert nested.get_attribute("open") is not None
    nested.locator("summary").first.click()
    assert nested.get_attribute("open") is None
    assert page.locator(".trace-tags").inner_text().count(EVIL) == 2  # the note, and the name
    assert page.locator(".view img, .view script").count() == 0

    # Feedback from the form, stored as the mlflow client would read it.
    page.fill(".fb-name", "correct")
    page.fill(".fb-value", "true")
    page.fill(".fb-rationale", EVIL)
    page.click(".feedback-form button[type=submit]")
    page.wait_for_selector(".assessments-table")
    assert page.locator(".assessment-rationale").inner_text() == EVIL
    got = ui_server.api("GET", "/api/3.0/mlflow/traces/get", {"trace_id": seeded.evil}).json()
    (a,) = got["trace"]["trace_info"]["assessments"]
    assert a["assessment_name"] == "correct" and a["feedback"]["value"] is True and a["rationale"] == EVIL
    screenshot(page, "trace.png")


def test_failed_trace_shows_its_error(tpage: tuple[Any, PageWatch], seeded: Seeded) -> None:
    page, _ = tpage
    goto(page, f"#/traces/{seeded.failed}")
    page.wait_for_selector(".span-error")
    assert page.locator(".span-error").inner_text() == "ValueError: the tool broke"
    assert EVIL in page.locator(".stacktrace").inner_text()
    assert page.locator(".trace-state").inner_text() == "ERROR"
    assert page.locator(".trace-linked-run").get_attribute("href") == f"#/runs/{seeded.run}"
    assert page.locator(".view img").count() == 0
