"""The scorers page in Chromium: scorers registered with the unmodified mlflow client
(``mlflow.genai.scorers``), listed with their newest version and kind, each version's content
shown readably, an empty state on an experiment without scorers, and hostile markup in a
scorer's name and guidelines shown as text: no element is created from it, no script runs.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.servers import ServerProcess
from tests.ui.conftest import goto, open_page, screenshot

EVIL = '<img src=x onerror="window.__xss=1;alert(1)">'
SCRIPT = "<script>window.__xss=2</script>"
JUDGE_INSTRUCTIONS = "Is {{ outputs }} polite? Answer yes or no."

pytestmark = pytest.mark.timeout(300)


@dataclass
class Registered:
    exp: str
    exp_name: str
    empty: str
    empty_name: str


@pytest.fixture(scope="module")
def registered(ui_server: ServerProcess) -> Iterator[Registered]:
    import mlflow
    from mlflow.genai.judges import make_judge
    from mlflow.genai.scorers import Guidelines, Safety

    tag = uuid.uuid4().hex[:6]
    exp_name, empty_name = f"scorers-ui-{tag}", f"no-scorers-{tag}"
    exp = ui_server.api("POST", "experiments/create", {"name": exp_name}).json()["experiment_id"]
    empty = ui_server.api("POST", "experiments/create", {"name": empty_name}).json()["experiment_id"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_TOKEN", ui_server.token or "")
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mlflow.set_tracking_uri(ui_server.url)
        try:
            Guidelines(name="polite", guidelines=["Be polite"]).register(experiment_id=exp)
            Guidelines(name="polite", guidelines=["Be polite", "Answer in French"],
                       model="openai:/gpt-4o").register(experiment_id=exp)
            Safety().register(experiment_id=exp)
            make_judge(name="tone", instructions=JUDGE_INSTRUCTIONS, model="openai:/gpt-4o-mini",
                       feedback_value_type=bool).register(experiment_id=exp)
            Guidelines(name=EVIL, guidelines=[SCRIPT]).register(experiment_id=exp)
        finally:
            mlflow.set_tracking_uri(None)
    yield Registered(exp, exp_name, empty, empty_name)


@pytest.fixture
def spage(browser: Any, ui_server: ServerProcess, registered: Registered) -> Iterator[Any]:
    ctx, page, watch = open_page(browser, ui_server.url + "/", ui_server.token)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    yield page
    assert dialogs == [], f"a dialog opened: {dialogs}"
    assert watch.errors == [], f"uncaught errors in the page: {watch.errors}"
    assert watch.foreign() == [], "the page made requests outside the server's origin"
    assert page.evaluate("window.__xss") is None, "a scorer's text was executed as markup"
    ctx.close()


def _rows(page: Any) -> dict[str, tuple[str, str]]:
    """The scorers table: name -> (newest version, kind)."""
    return {r.locator(".scorer-link").inner_text(): (r.locator(".scorer-newest").inner_text(),
                                                     r.locator(".scorer-kind").inner_text())
            for r in page.locator(".scorers-table .scorer-row").all()}


def _settled(page: Any, title: str, count: str) -> None:
    """Waits until the page's head shows its final title and count: the buttons beside them
    move as they fill in, and a click must not land where a button was a moment before."""
    page.wait_for_function("([t, c]) => document.querySelector('.view h1')?.textContent === t"
                           " && document.querySelector(c)?.textContent", arg=[title, count])


def _open(page: Any, link: Any, title: str) -> None:
    """Clicks a scorer or version link and waits for that version's content."""
    link.click()
    page.wait_for_function("t => document.querySelector('.scorer-version-title')?.textContent === t", arg=title)


def _texts(page: Any, selector: str) -> list[str]:
    return page.locator(selector).all_inner_texts()


def test_scorers_list_versions_and_content(spage: Any, registered: Registered) -> None:
    page = spage
    goto(page, f"#/experiments/{registered.exp}/runs")
    _settled(page, registered.exp_name, ".run-count")
    page.click(".scorers-link")
    page.wait_for_selector(".scorers-table .scorer-row")
    assert page.locator(".scorer-count").inner_text() == "4 scorers"
    assert _rows(page) == {"polite": ("v2", "Guidelines"), "safety": ("v1", "Safety"), "tone": ("v1", "judge"),
                           EVIL: ("v1", "Guidelines")}

    _open(page, page.locator(".scorer-link", has_text="polite"), "v2 of polite")  # the newest at first
    assert _texts(page, ".scorer-version-row .scorer-version-link") == ["v2", "v1"]
    assert _texts(page, ".scorer-guidelines li") == ["Be polite", "Answer in French"]
    assert page.locator(".scorer-content .scorer-model").inner_text() == "openai:/gpt-4o"
    _open(page, page.locator(".scorer-version-link", has_text="v1"), "v1 of polite")
    assert _texts(page, ".scorer-guidelines li") == ["Be polite"]
    assert page.locator(".scorer-content .scorer-model").count() == 0
    assert page.locator(".scorer-version-row.selected").get_attribute("data-version") == "1"
    screenshot(page, "scorers.png")

    _open(page, page.locator(".scorer-link", has_text="tone"), "v1 of tone")
    assert page.locator(".scorer-instructions").inner_text() == JUDGE_INSTRUCTIONS
    assert page.locator(".scorer-content .scorer-model").inner_text() == "openai:/gpt-4o-mini"
    assert page.locator(".scorer-content .scorer-kind").inner_text() == "judge"

    # A built-in without guidelines or instructions of its own: its serialized JSON, opened.
    _open(page, page.locator(".scorer-link", has_text="safety"), "v1 of safety")
    assert page.locator(".scorer-json").get_attribute("open") is not None
    shown = json.loads(page.locator(".scorer-json pre").inner_text())
    assert shown["builtin_scorer_class"] == "Safety" and shown["name"] == "safety"


def test_scorer_text_is_shown_as_text(spage: Any, registered: Registered) -> None:
    page = spage
    goto(page, f"#/experiments/{registered.exp}/scorers")
    page.wait_for_selector(".scorers-table .scorer-row")
    _open(page, page.locator(".scorer-link", has_text="onerror"), f"v1 of {EVIL}")
    assert page.locator(".scorer-name").inner_text() == f"Versions of {EVIL}"
    assert _texts(page, ".scorer-guidelines li") == [SCRIPT]
    assert page.locator(".view img").count() == 0 and page.locator(".view script").count() == 0


def test_experiment_without_scorers_says_how_to_register_one(spage: Any, registered: Registered) -> None:
    page = spage
    goto(page, f"#/experiments/{registered.empty}/traces")
    _settled(page, f"Traces of {registered.empty_name}", ".trace-count")
    page.click(".scorers-link")
    page.wait_for_selector(".scorers-empty")
    hint = page.locator(".scorers-empty").inner_text()
    assert "No scorers are registered" in hint
    assert f'.register(experiment_id="{registered.empty}")' in hint
    assert page.locator(".scorers-table").count() == 0
    screenshot(page, "scorers-empty.png")
