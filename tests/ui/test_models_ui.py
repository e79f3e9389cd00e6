"""The Models section as a user sees it: Debian's Chromium (Playwright) against a real labtrack
server whose registry was filled with real HTTP calls (runs, artifacts, a logged model,
registered models and versions, stages, aliases, tags). The ``ui`` fixture also checks that
no request left the server's origin, no error escaped, and no logged string ran as markup."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.servers import ServerProcess
from tests.ui.conftest import PREFIX, PageWatch, PrefixProxy, goto, open_page, screenshot
from tests.ui.seed import Logger, Seeded

pytestmark = pytest.mark.timeout(180)

EVIL = "<img src=x onerror=alert(1)>"
EVIL_MD = f"Hostile description {EVIL}\n\n<script>window.__xss=1</script> [x](javascript:alert(1))"
CHURN_MD = "# Churn model\n\nPredicts **churn** from `usage` features.\n\n- trained weekly\n- owner: data team\n"


@dataclass
class Registry:
    exp: str = ""
    runs: dict[str, str] = field(default_factory=dict)  # name -> run id
    run_names: dict[str, str] = field(default_factory=dict)  # run id -> name
    logged_model: str = ""


class RegistryLogger(Logger):
    def model(self, name: str, description: str = "", tags: dict[str, str] | None = None) -> None:
        self.call("registered-models/create", {"name": name, "description": description,
                                               "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]})

    def version(self, name: str, source: str, run_id: str, **extra: Any) -> str:
        body = {"name": name, "source": source, "run_id": run_id, **extra}
        return str(self.call("model-versions/create", body)["model_version"]["version"])

    def stage(self, name: str, version: str, stage: str) -> None:
        self.call("model-versions/transition-stage", {"name": name, "version": version, "stage": stage,
                                                      "archive_existing_versions": False})

    def alias(self, name: str, alias: str, version: str) -> None:
        self.call("registered-models/alias", {"name": name, "alias": alias, "version": version})


def _seed_registry(server: ServerProcess) -> Registry:
    lg = RegistryLogger(server)
    out = Registry(exp=lg.experiment("registry-demo"))
    now = int(time.time() * 1000) - 600_000
    infos = {}
    for k, name in enumerate(("train-a", "train-b", "train-c", "legacy-run")):
        info = lg.run(out.exp, name, start=now + k * 1000)
        lg.batch(info["run_id"], {"alpha": str(k)}, [("auc", 0.8 + k / 100, 0, now)])
        lg.artifact(info, "model/MLmodel", b"flavors:\n  python_function:\n    loader_module: x\n")
        infos[name] = info
        out.runs[name] = info["run_id"]
        out.run_names[info["run_id"]] = name
    # an MLflow 3 logged model from train-b, named in the run's outputs
    model = lg.call("logged-models", {"experiment_id": out.exp, "name": "churn-sklearn", "model_type": "sklearn",
                                      "source_run_id": out.runs["train-b"]})["model"]["info"]
    out.logged_model = model["model_id"]
    r = server.session.patch(f"{server.url}/api/2.0/mlflow/logged-models/{out.logged_model}", json={"status": "READY"}, timeout=30)
    assert r.status_code == 200, r.text
    lg.call("runs/outputs", {"run_id": out.runs["train-b"], "models": [{"model_id": out.logged_model, "step": 0}]})
    # an MLflow 2 model inside the run's own artifacts
    lg.call("runs/set-tag", {"run_id": out.runs["legacy-run"], "key": "mlflow.log-model.history", "value": json.dumps(
        [{"artifact_path": "model", "flavors": {"python_function": {}, "sklearn": {}}, "run_id": out.runs["legacy-run"]}])})
    for info in infos.values():
        lg.finish(info["run_id"])

    lg.model("churn-classifier", CHURN_MD, {"team": "growth", "task": "classification"})
    v1 = lg.version("churn-classifier", f"runs:/{out.runs['train-a']}/model", out.runs["train-a"])
    v2 = lg.version("churn-classifier", f"models:/{out.logged_model}", out.runs["train-b"], model_id=out.logged_model,
                    description="second try", tags=[{"key": "validated", "value": "yes"}])
    lg.version("churn-classifier", f"runs:/{out.runs['train-c']}/model", out.runs["train-c"])
    lg.stage("churn-classifier", v1, "Production")
    lg.stage("churn-classifier", v2, "Staging")
    lg.alias("churn-classifier", "champion", v1)

    lg.model("fraud-detector", "", {"team": "risk"})
    lg.version("fraud-detector", f"runs:/{out.runs['train-a']}/model", out.runs["train-a"])

    lg.model("ranker")  # the version-actions test changes its stages and aliases
    for name in ("train-a", "train-b", "train-c"):
        lg.version("ranker", f"runs:/{out.runs[name]}/model", out.runs[name])
    lg.stage("ranker", "1", "Production")

    lg.model(EVIL, EVIL_MD, {"note": EVIL})
    lg.version(EVIL, f"runs:/{out.runs['train-c']}/model", out.runs["train-c"], description=EVIL_MD,
               tags=[{"key": "payload", "value": EVIL}])
    lg.alias(EVIL, "evil-alias", "1")
    return out


@pytest.fixture(scope="module")
def reg(ui_server: ServerProcess, data: Seeded) -> Registry:
    return _seed_registry(ui_server)


@pytest.fixture
def mui(ui: tuple[Any, PageWatch], reg: Registry) -> Any:
    """The page, with a guard: any dialog (an alert() from injected markup) fails the test."""
    page, _ = ui
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    yield page
    assert dialogs == [], f"a dialog opened: {dialogs}"


def model_rows(page: Any) -> list[str]:
    return page.locator(".models-table .model-link").all_inner_texts()


def version_of(server: ServerProcess, name: str, version: str) -> dict[str, Any]:
    r = server.api("GET", "model-versions/get", {"name": name, "version": version})
    assert r.status_code == 200, r.text
    return r.json()["model_version"]


# ---- the list

def test_models_list_search_latest_versions_and_aliases(mui: Any, reg: Registry) -> None:
    page = mui
    page.click(".topbar .nav-models")
    page.wait_for_selector(".models-table")
    names = model_rows(page)
    assert {"churn-classifier", "fraud-detector", "ranker", EVIL} <= set(names)

    churn = page.locator(".model-row[data-model='churn-classifier']")
    latest = {c.get_attribute("data-stage"): c.get_attribute("data-version") for c in churn.locator(".latest-version").all()}
    assert latest == {"None": "3", "Staging": "2", "Production": "1"}
    assert churn.locator(".latest-version[data-stage='Production']").inner_text() == "Production v1"
    assert churn.locator(".alias-chip").inner_text() == "@champion → v1"
    assert "team: growth" in churn.locator(".model-tags").inner_text()

    # plain text matches names (case-insensitively); the text lands in the URL
    page.fill(".models-search", "CHURN")
    page.press(".models-search", "Enter")
    page.wait_for_function("[...document.querySelectorAll('.model-link')].map(a => a.textContent).join() === 'churn-classifier'")
    assert model_rows(page) == ["churn-classifier"]
    assert "q=CHURN" in page.evaluate("location.hash")

    # MLflow's filter grammar goes to the server as it is
    page.fill(".models-search", "tags.team = 'risk'")
    page.press(".models-search", "Enter")
    page.wait_for_function("[...document.querySelectorAll('.model-link')].map(a => a.textContent).join() === 'fraud-detector'")

    # a bad filter: the server's message inline, the list stays
    page.fill(".models-search", "name = 'unclosed")
    page.press(".models-search", "Enter")
    err = page.locator(".filter-error")
    err.wait_for(state="visible")
    assert err.inner_text().strip()
    assert model_rows(page) == ["fraud-detector"]

    # the hostile name is text, wherever it is shown
    page.fill(".models-search", "onerror")
    page.press(".models-search", "Enter")
    page.wait_for_function("[...document.querySelectorAll('.model-link')].map(a => a.textContent).join() === %s" % json.dumps(EVIL))
    assert model_rows(page) == [EVIL]
    assert page.locator(".models-table img").count() == 0
    assert page.locator(".model-row .tag-chip").inner_text() == f"note: {EVIL}"

    # clicking a latest-version chip opens that version
    page.fill(".models-search", "")
    page.press(".models-search", "Enter")
    page.locator(".model-row[data-model='churn-classifier'] .latest-version[data-stage='Staging']").click()
    page.wait_for_selector(".version-overview")
    assert page.locator("h1.version-title").inner_text() == "churn-classifier · version 2"


def test_create_model_from_the_list(mui: Any, reg: Registry, ui_server: ServerProcess) -> None:
    page = mui
    goto(page, "#/models")
    page.wait_for_selector(".models-table")
    page.fill(".new-model-name", "made-in-the-ui")
    page.click(".create-model button")
    page.wait_for_selector(".model-row[data-model='made-in-the-ui']")
    assert ui_server.api("GET", "registered-models/get", {"name": "made-in-the-ui"}).status_code == 200
    page.fill(".new-model-name", "made-in-the-ui")
    page.click(".create-model button")
    page.wait_for_selector(".create-error:has-text('already exists')")


# ---- a model's page

def test_model_page_description_tags_and_versions(mui: Any, reg: Registry, ui_server: ServerProcess) -> None:
    page = mui
    goto(page, "#/models/churn-classifier")
    page.wait_for_selector(".versions-table")
    assert page.locator("h1.model-name").inner_text() == "churn-classifier"

    md = page.locator(".description .markdown")
    assert md.locator("h2").inner_text() == "Churn model"
    assert md.locator("strong").inner_text() == "churn"
    assert md.locator("li").count() == 2

    rows = page.locator(".versions-table .version-row")
    assert rows.count() == 3
    assert [r.get_attribute("data-version") for r in rows.all()] == ["3", "2", "1"]
    stages = {r.get_attribute("data-version"): r.locator(".stage").inner_text() for r in rows.all()}
    assert stages == {"3": "None", "2": "Staging", "1": "Production"}
    v1 = page.locator(".version-row[data-version='1']")
    assert v1.locator(".version-aliases").inner_text() == "@champion"
    assert page.locator(".model-alias-list .alias-chip").inner_text() == "@champion → v1"
    assert page.locator(".version-row[data-version='2'] .version-tags").inner_text() == "validated: yes"
    assert page.locator(".version-row[data-version='2'] .version-description").inner_text() == "second try"
    assert v1.locator(".version-created").inner_text().startswith(time.strftime("%Y-"))
    # source runs are named links to the run page
    page.wait_for_function("document.querySelector(\".version-row[data-version='1'] .source-run\").textContent === 'train-a'")
    assert page.locator(".version-row[data-version='2'] .source-run").inner_text() == "train-b"
    screenshot(page, "models.png")

    # edit the description
    page.click(".description .edit-description")
    page.fill(".description-input", "## Retrained\n\nnow with *more* data")
    page.click(".save-description")
    page.wait_for_selector(".description .markdown h3:has-text('Retrained')")
    got = ui_server.api("GET", "registered-models/get", {"name": "churn-classifier"}).json()["registered_model"]
    assert got["description"] == "## Retrained\n\nnow with *more* data"

    # tags: add, edit, delete
    page.fill(".tag-editor .new-tag-key", "reviewed")
    page.fill(".tag-editor .new-tag-value", "<b>yes</b>")
    page.click(".tag-editor .add-tag button")
    row = page.locator(".tag-editor tr[data-tag='reviewed']")
    row.wait_for()
    assert row.locator(".value").inner_text() == "<b>yes</b>"
    row.locator(".edit-tag").click()
    page.fill(".tag-editor .tag-value-input", "no")
    page.press(".tag-editor .tag-value-input", "Enter")
    page.wait_for_selector(".tag-editor tr[data-tag='reviewed'] td.value:text-is('no')")
    tags = {t["key"]: t["value"] for t in ui_server.api("GET", "registered-models/get", {"name": "churn-classifier"}).json()["registered_model"]["tags"]}
    assert tags["reviewed"] == "no" and tags["team"] == "growth"
    page.locator(".tag-editor tr[data-tag='reviewed'] .delete-tag").click()
    page.wait_for_selector(".tag-editor tr[data-tag='reviewed']", state="detached")
    tags = {t["key"] for t in ui_server.api("GET", "registered-models/get", {"name": "churn-classifier"}).json()["registered_model"]["tags"]}
    assert "reviewed" not in tags

    # the source-run link opens the run page
    page.locator(".version-row[data-version='1'] .source-run").click()
    page.wait_for_selector(".overview")
    assert page.locator("h1.run-name").inner_text() == "train-a"


# ---- a version's page: stage, aliases, tags, description

def test_version_actions(mui: Any, reg: Registry, ui_server: ServerProcess) -> None:
    page = mui
    goto(page, "#/models/ranker/versions/3")
    page.wait_for_selector(".version-overview")
    assert page.locator(".page-head .stage").inner_text() == "None"
    page.wait_for_function("document.querySelector('.version-overview .source-run').textContent === 'train-c'")

    # to Staging, without archiving: version 1 stays in Production
    page.select_option(".stage-select", "Staging")
    page.click(".transition-stage")
    page.wait_for_selector(".page-head .stage:text-is('Staging')")
    assert version_of(ui_server, "ranker", "3")["current_stage"] == "Staging"
    assert version_of(ui_server, "ranker", "1")["current_stage"] == "Production"

    # to Production, archiving the versions already there
    page.select_option(".stage-select", "Production")
    page.check(".archive-existing")
    page.click(".transition-stage")
    page.wait_for_selector(".page-head .stage:text-is('Production')")
    assert version_of(ui_server, "ranker", "1")["current_stage"] == "Archived"

    # aliases: set one, a reserved one is refused inline, delete it
    page.fill(".new-alias", "champion")
    page.click(".add-alias button")
    page.wait_for_selector(".alias-list .alias-chip[data-alias='champion']")
    assert version_of(ui_server, "ranker", "3")["aliases"] == ["champion"]
    page.fill(".new-alias", "latest")
    page.click(".add-alias button")
    page.wait_for_selector(".alias-section .error:not(:empty)")
    page.locator(".alias-chip[data-alias='champion'] .delete-alias").click()
    page.wait_for_selector(".alias-list .alias-chip[data-alias='champion']", state="detached")
    assert version_of(ui_server, "ranker", "3")["aliases"] == []

    # description (markdown) and tags of the version
    page.click(".description .edit-description")
    page.fill(".description-input", "Retrained on **May** data")
    page.click(".save-description")
    page.wait_for_selector(".description .markdown strong:text-is('May')")
    assert version_of(ui_server, "ranker", "3")["description"] == "Retrained on **May** data"
    page.fill(".tag-editor .new-tag-key", "eval")
    page.fill(".tag-editor .new-tag-value", "0.93")
    page.click(".tag-editor .add-tag button")
    page.wait_for_selector(".tag-editor tr[data-tag='eval'] td.value:text-is('0.93')")
    page.locator(".tag-editor tr[data-tag='eval'] .edit-tag").click()
    page.fill(".tag-editor .tag-value-input", "0.95")
    page.press(".tag-editor .tag-value-input", "Enter")
    page.wait_for_selector(".tag-editor tr[data-tag='eval'] td.value:text-is('0.95')")
    assert {t["key"]: t["value"] for t in version_of(ui_server, "ranker", "3")["tags"]} == {"eval": "0.95"}
    page.locator(".tag-editor tr[data-tag='eval'] .delete-tag").click()
    page.wait_for_selector(".tag-editor tr[data-tag='eval']", state="detached")
    assert version_of(ui_server, "ranker", "3")["tags"] == []

    # the model's page shows what changed
    page.click(".model-crumb")
    page.wait_for_selector(".versions-table")
    stages = {r.get_attribute("data-version"): r.locator(".stage").inner_text() for r in page.locator(".version-row").all()}
    assert stages == {"3": "Production", "2": "None", "1": "Archived"}


# ---- a run's page lists its models

def test_run_page_lists_its_models(mui: Any, reg: Registry, data: Seeded) -> None:
    page = mui
    goto(page, f"#/runs/{reg.runs['train-b']}")
    box = page.locator(".run-models")
    page.wait_for_selector(".run-models .run-logged-models")
    logged = box.locator(".run-logged-models li")
    assert logged.count() == 1
    assert logged.locator(".logged-model-name").inner_text() == "churn-sklearn"
    assert reg.logged_model in logged.inner_text() and "sklearn" in logged.inner_text()
    # the logged model links to the version registered from it
    assert logged.locator(".registered-version").get_attribute("data-version") == "2"
    registered = box.locator(".run-registered .registered-version")
    got = {(a.get_attribute("data-model"), a.get_attribute("data-version")) for a in registered.all()}
    assert got == {("churn-classifier", "2"), ("ranker", "2")}

    box.locator(".run-registered .registered-version[data-model='churn-classifier']").click()
    page.wait_for_selector(".version-overview")
    assert page.locator("h1.version-title").inner_text() == "churn-classifier · version 2"
    assert f"Logged model\t{reg.logged_model}" in page.locator(".version-overview").inner_text()

    # an MLflow 2 model in the run's artifacts links to the artifact browser
    goto(page, f"#/runs/{reg.runs['legacy-run']}")
    link = page.locator(".run-artifact-models a")
    link.wait_for()
    assert link.inner_text() == "model"
    assert "python_function, sklearn" in page.locator(".run-artifact-models").inner_text()
    link.click()
    page.wait_for_selector(".art-file[data-path='model/MLmodel']")

    # a run without models says so
    goto(page, f"#/runs/{data.runs['bert-0']}")
    page.wait_for_selector(".run-models p:text-is('This run logged no models.')")


# ---- hostile strings

def test_hostile_model_name_is_text_everywhere(mui: Any, reg: Registry) -> None:
    page = mui
    goto(page, "#/models/" + page.evaluate("n => encodeURIComponent(n)", EVIL))
    page.wait_for_selector(".versions-table")
    assert page.locator("h1.model-name").inner_text() == EVIL
    md = page.locator(".description .markdown")
    assert EVIL in md.inner_text() and "<script>" in md.inner_text()
    assert md.locator("a", has_text="x").get_attribute("href") == "#"
    assert page.locator(".tag-editor tr[data-tag='note'] .value").inner_text() == EVIL
    assert page.locator(".view img").count() == 0
    assert "onerror" in page.title()

    page.locator(".version-row[data-version='1'] .version-link").click()
    page.wait_for_selector(".version-overview")
    assert page.locator("h1.version-title").inner_text() == f"{EVIL} · version 1"
    assert page.locator(".tag-editor tr[data-tag='payload'] .value").inner_text() == EVIL
    assert page.locator(".alias-list .alias-chip").inner_text().startswith("@evil-alias")
    assert page.locator(".view img").count() == 0
    # the URL keeps the name encoded, so it round-trips
    page.reload()
    page.wait_for_selector(".version-overview")
    assert page.locator("h1.version-title").inner_text() == f"{EVIL} · version 1"
    assert page.evaluate("window.__xss") is None


def test_models_under_a_path_prefix(browser: Any, reg: Registry, prefix_proxy: PrefixProxy, ui_server: ServerProcess) -> None:
    ctx, page, watch = open_page(browser, prefix_proxy.url, ui_server.token)
    try:
        page.click(".topbar .nav-models")
        page.wait_for_selector(".models-table")
        page.click(".model-link:text-is('fraud-detector')")
        page.wait_for_selector(".versions-table")
        page.click(".version-link")
        page.wait_for_selector(".version-overview")
        assert page.url.startswith(prefix_proxy.url + "#/models/fraud-detector/versions/1")
        assert watch.foreign() == []
        paths = watch.paths()
        assert paths and all(p.startswith(PREFIX + "/") for p in paths)
        assert any(p.endswith("/ajax-api/2.0/mlflow/registered-models/search") for p in paths)
        assert watch.errors == []
    finally:
        ctx.close()
