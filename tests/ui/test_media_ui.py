"""Images per step across runs (issue 20), in Debian's Chromium against a real labtrack server.

One run logs solid-colour images each step with the unmodified mlflow client
(``mlflow.log_image(image, key=, step=)``), another with ``lt.log_image``; the compare
page opens the media view, and moving its step slider with the keyboard shows each
run's image of that step (its pixels are read back from the page), or the nearest
earlier one when a run logged none at that step.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest

from tests.client_state import reset_client_state
from tests.servers import ServerProcess
from tests.ui.conftest import DOCS_VIEWPORT, PageWatch, goto, open_page, screenshot

pytestmark = [pytest.mark.timeout(300), pytest.mark.filterwarnings("ignore::UserWarning")]
np = pytest.importorskip("numpy")
pytest.importorskip("PIL", reason="Pillow is not installed")

RED, GREEN, BLUE, YELLOW = (220, 30, 30), (30, 200, 60), (40, 60, 220), (230, 210, 20)
CYAN, MAGENTA, ORANGE = (20, 200, 210), (200, 30, 200), (240, 140, 20)
BY_MLFLOW = {0: RED, 1: GREEN, 2: BLUE, 3: YELLOW}
BY_LT = {0: CYAN, 2: MAGENTA, 4: ORANGE}


def solid(rgb: tuple[int, int, int], caption: str = "") -> Any:
    """An image of one colour (what the tests read back at its centre), captioned in its corner."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.load_default(size=18)
    except (TypeError, ImportError, OSError):  # an older Pillow, or one without FreeType
        font = ImageFont.load_default()
    img = Image.new("RGB", (160, 120), rgb)
    ImageDraw.Draw(img).text((8, 6), caption, fill=(255, 255, 255), font=font)
    return np.asarray(img)


@pytest.fixture(scope="module")
def image_runs(ui_server: ServerProcess) -> Iterator[dict[str, str]]:
    import mlflow

    import labtrack as lt

    name = f"issue20-media-{uuid.uuid4().hex[:6]}"
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_TOKEN", "LABTRACK_TRACKING_TOKEN", "MLFLOW_DISABLE_TELEMETRY")}
    os.environ["MLFLOW_TRACKING_TOKEN"] = os.environ["LABTRACK_TRACKING_TOKEN"] = ui_server.token or ""
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    reset_client_state()
    try:
        mlflow.set_tracking_uri(ui_server.url)
        mlflow.set_experiment(name)
        with mlflow.start_run(run_name="by-mlflow") as m:
            for step, rgb in BY_MLFLOW.items():
                mlflow.log_image(solid(rgb, f"mlflow step {step}"), key="samples", step=step)
            mlflow.log_image(solid(GREEN, "val step 0"), key="val/examples", step=0)
        lt.set_tracking_uri(ui_server.url)
        lt.set_experiment(name)
        with lt.start_run(run_name="by-lt") as r:
            for step, rgb in BY_LT.items():
                lt.log_image(solid(rgb, f"lt step {step}"), key="samples", step=step)
        lt.flush()
        yield {"mlflow": m.info.run_id, "lt": r.info.run_id}
    finally:
        mlflow.set_experiment(experiment_id="0")
        mlflow.set_tracking_uri(None)
        reset_client_state()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def page(browser: Any, ui_server: ServerProcess) -> Iterator[tuple[Any, PageWatch]]:
    ctx, pg, watch = open_page(browser, ui_server.url + "/", ui_server.token)
    yield pg, watch
    assert watch.foreign() == [], "the page made requests outside the server's origin"
    assert watch.errors == [], f"uncaught errors in the page: {watch.errors}"
    ctx.close()


# each column: the step it shows, its caption, its image's src and the colour of the image's centre
_SHOWN = """async () => {
  const out = [];
  for (const col of document.querySelectorAll('.media-col')) {
    const img = col.querySelector('img.media-image');
    let rgb = null;
    if (img.getAttribute('src')) {
      await img.decode();
      const c = document.createElement('canvas');
      c.width = img.naturalWidth; c.height = img.naturalHeight;
      const g = c.getContext('2d');
      g.drawImage(img, 0, 0);
      rgb = [...g.getImageData(c.width >> 1, c.height >> 1, 1, 1).data.slice(0, 3)];
    }
    out.push({run: col.dataset.run, step: col.dataset.step, caption: col.querySelector('.media-caption').textContent,
              src: img.getAttribute('src'), rgb});
  }
  return out;
}"""


def shown(page: Any) -> dict[str, dict[str, Any]]:
    """The columns by run; ``src`` percent-decoded (the artifact file's name as logged)."""
    cols = page.evaluate(_SHOWN)
    for c in cols:
        c["src"] = unquote(c["src"]) if c["src"] else None
    return {c["run"]: c for c in cols}


def assert_colour(got: list[int] | None, want: tuple[int, int, int]) -> None:
    assert got is not None and all(abs(g - w) <= 12 for g, w in zip(got, want)), (got, want)  # webp is lossy


def test_slider_shows_each_runs_image_of_the_step(page: tuple[Any, PageWatch], image_runs: dict[str, str]) -> None:
    pg, watch = page
    ml, lt_run = image_runs["mlflow"], image_runs["lt"]
    goto(pg, f"#/compare?runs={ml},{lt_run}")
    pg.click(".media-link")
    pg.wait_for_selector(".media-slider")
    assert pg.locator(".media-key option").all_inner_texts() == ["samples", "val/examples"]
    assert pg.locator(".media-col").evaluate_all("cs => cs.map(c => c.dataset.run)") == [ml, lt_run]

    # the last step (4) at first: the mlflow run logged none there and shows its step 3
    cols = shown(pg)
    assert cols[ml]["step"] == "3" and "nearest earlier" in cols[ml]["caption"]
    assert_colour(cols[ml]["rgb"], YELLOW)
    assert cols[lt_run]["step"] == "4" and cols[lt_run]["caption"] == "step 4"
    assert_colour(cols[lt_run]["rgb"], ORANGE)

    slider = pg.locator(".media-slider")
    slider.focus()
    pg.keyboard.press("Home")  # step 0
    expected = {0: (0, RED, 0, CYAN), 1: (1, GREEN, 0, CYAN), 2: (2, BLUE, 2, MAGENTA), 3: (3, YELLOW, 2, MAGENTA)}
    for step, (ml_step, ml_rgb, lt_step, lt_rgb) in expected.items():
        if step:
            pg.keyboard.press("ArrowRight")
        assert pg.locator(".media-step").inner_text().startswith(f"step {step} ")
        cols = shown(pg)
        assert cols[ml]["step"] == str(ml_step) and f"+step+{ml_step}+" in cols[ml]["src"], (step, cols[ml])
        assert cols[lt_run]["step"] == str(lt_step) and f"+step+{lt_step}+" in cols[lt_run]["src"], (step, cols[lt_run])
        assert_colour(cols[ml]["rgb"], ml_rgb)
        assert_colour(cols[lt_run]["rgb"], lt_rgb)
        assert ("nearest earlier" in cols[lt_run]["caption"]) == (lt_step != step)
        if step == 1:
            screenshot(pg, "media-step-slider.png", pg.locator("#app"), viewport=DOCS_VIEWPORT)
    # both clients' smaller copies are what the grid shows; a click opens the full image
    assert cols[ml]["src"].endswith("+compressed.webp") and cols[lt_run]["src"].endswith("+compressed.webp")
    assert pg.locator(f".media-col[data-run='{ml}'] a.media-full").get_attribute("href").endswith(".png")
    # one media/images call per run, no folder-by-folder listing
    assert sum(p.endswith("/media/images") for p in watch.paths()) == 2
    assert not any("mlflow-artifacts/artifacts" in p and "path=" in u for p, u in zip(watch.paths(), watch.urls))

    # the address keeps the key and step: opened again, the page shows the same step
    hash_now = pg.evaluate("location.hash")
    assert "key=samples" in hash_now and "step=3" in hash_now
    goto(pg, "#/")
    goto(pg, hash_now)
    pg.wait_for_function("document.querySelector('.media-step')?.textContent.startsWith('step 3 ')")
    assert shown(pg)[lt_run]["step"] == "2"

    # a key only one run logged ("/" in it): the other run's column says it has none
    pg.select_option(".media-key", "val/examples")
    cols = shown(pg)
    assert cols[ml]["step"] == "0" and "+step+0+" in cols[ml]["src"] and "val~examples" in cols[ml]["src"]
    assert_colour(cols[ml]["rgb"], GREEN)
    assert cols[lt_run]["src"] is None and cols[lt_run]["caption"] == "no val/examples images"


# the run page's Images tab: each series, its label, and the colour at the centre of the image shown
_STEPPERS = """async () => {
  const out = {};
  for (const s of document.querySelectorAll('.image-series')) {
    const img = s.querySelector('img.step-image');
    await img.decode();
    const c = document.createElement('canvas');
    c.width = img.naturalWidth; c.height = img.naturalHeight;
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    out[s.dataset.key] = {label: s.querySelector('.step-label').textContent, src: img.getAttribute('src'),
                          rgb: [...g.getImageData(c.width >> 1, c.height >> 1, 1, 1).data.slice(0, 3)]};
  }
  return out;
}"""


def test_run_page_images_tab_reads_the_media_endpoint(page: tuple[Any, PageWatch], image_runs: dict[str, str]) -> None:
    """The run page's Images tab shows what mlflow.log_image and lt.log_image logged per step,
    from one media/images call (the server parses the file names), not a listing per folder."""
    pg, watch = page
    cases = [
        (image_runs["mlflow"], ["samples", "val/examples"], (3, YELLOW, "4"), (1, GREEN)),
        (image_runs["lt"], ["samples"], (4, ORANGE, "3"), (2, MAGENTA)),
    ]
    for run_id, keys, (last, last_rgb, count), (second, second_rgb) in cases:
        goto(pg, f"#/runs/{run_id}?tab=images")
        pg.wait_for_selector(".image-series[data-key='samples'] img.step-image[src]")
        assert pg.locator(".image-series").evaluate_all("ss => ss.map(s => s.dataset.key)") == keys
        got = pg.evaluate(_STEPPERS)
        assert got["samples"]["label"] == f"step {last} ({count} of {count})"
        assert unquote(got["samples"]["src"]).endswith(".png") and f"+step+{last}+" in unquote(got["samples"]["src"])
        assert_colour(got["samples"]["rgb"], last_rgb)
        pg.locator(".image-series[data-key='samples'] .step-slider").fill("1")
        got = pg.evaluate(_STEPPERS)
        assert got["samples"]["label"] == f"step {second} (2 of {count})"
        assert_colour(got["samples"]["rgb"], second_rgb)
        if "val/examples" in keys:
            assert got["val/examples"]["label"] == "step 0 (1 of 1)"
            assert_colour(got["val/examples"]["rgb"], GREEN)
    assert sum(p.endswith("/media/images") for p in watch.paths()) == 2
    listings = [u for u in watch.urls if ("mlflow-artifacts/artifacts?" in u or "artifacts/list?" in u) and "images" in unquote(u)]
    assert listings == [], "the tab asked the server for its images, not for folder listings"
