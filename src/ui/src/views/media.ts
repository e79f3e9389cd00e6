// Images logged per step (mlflow.log_image / lt.log_image with key= and step=), several runs
// side by side: pick a key, move one slider over the steps, and each run's column shows its
// image at that step, or its nearest earlier one when it logged none there.
// #/media?runs=<id>,<id>&key=<key>&step=<step>

import { ltGet } from "../api";
import { h, replace } from "../dom";
import { color } from "../format";
import { artifactUrl, displayName, getRun, Run } from "../model";
import { href, Route, setQuery } from "../router";
import { pool } from "../series";

export interface MediaStep {
  step: number;
  timestamp: number;
  path: string;
  compressed?: string | null;
}

export interface MediaSeries {
  key: string;
  steps: MediaStep[];
}

/** The run's image series from the server's media/images (one listing of its images/ folder). */
export async function runImages(runId: string): Promise<MediaSeries[]> {
  const r = await ltGet<{ images?: MediaSeries[] }>("media/images", { run_id: runId });
  return r.images ?? [];
}

/** The last of `steps` (ascending) at or before `step`, or undefined when all come later. */
export function atOrBefore(steps: MediaStep[], step: number): MediaStep | undefined {
  let lo = 0;
  let hi = steps.length - 1;
  let found: MediaStep | undefined;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid].step <= step) {
      found = steps[mid];
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

export function mediaView(root: HTMLElement, route: Route): { dispose: () => void } {
  const ids = (route.q.get("runs") ?? "").split(",").filter(Boolean);
  const title = h("h1", null, "Images across runs");
  replace(root, title, h("p", { class: "muted" }, "Loading…"));

  async function load(): Promise<void> {
    if (!ids.length) {
      replace(root, title, h("p", { class: "muted" }, "Select runs in a runs table, press Compare, then Images side by side."));
      return;
    }
    let loaded: { run: Run; series: MediaSeries[]; error?: string }[];
    try {
      loaded = await pool(ids, 6, async (id) => {
        const run = await getRun(id);
        try {
          return { run, series: await runImages(id) };
        } catch (e) {
          return { run, series: [], error: (e as Error).message };
        }
      });
    } catch (e) {
      replace(root, title, h("div", { class: "error" }, (e as Error).message));
      return;
    }
    draw(loaded);
  }

  function draw(loaded: { run: Run; series: MediaSeries[]; error?: string }[]): void {
    const keys = [...new Set(loaded.flatMap((l) => l.series.map((s) => s.key)))].sort((a, b) => a.localeCompare(b));
    const head = h(
      "div",
      { class: "page-head" },
      title,
      h("a", { class: "button", href: href(["compare"], { runs: ids.join(",") }) }, "← Compare"),
    );
    if (!keys.length) {
      replace(root, head, h("p", { class: "muted media-empty" }, "These runs logged no images per step (mlflow.log_image or lt.log_image with key= and step=)."), errors(loaded));
      return;
    }
    let key = keys.includes(route.q.get("key") ?? "") ? route.q.get("key")! : keys[0];
    const keySel = h("select", { class: "media-key", "aria-label": "image key" }, keys.map((k) => h("option", { value: k, selected: k === key }, k)));
    const slider = h("input", { type: "range", class: "media-slider", min: "0", step: "1", "aria-label": "step" });
    const stepLabel = h("span", { class: "media-step" });
    const grid = h("div", { class: "media-grid" });
    let steps: number[] = [];
    const seriesOf = (l: (typeof loaded)[number]) => l.series.find((s) => s.key === key)?.steps ?? [];

    const columns = loaded.map((l, i) => {
      const img = h("img", { class: "media-image", alt: "" });
      const link = h("a", { class: "media-full", target: "_blank", rel: "noopener" }, img);
      const caption = h("figcaption", { class: "media-caption" });
      const col = h(
        "figure",
        { class: "media-col", dataset: { run: l.run.id } },
        h("div", { class: "media-run" }, h("span", { class: "swatch", style: { background: color(i) } }), h("a", { href: href(["runs", l.run.id], { tab: "images" }) }, displayName(l.run))),
        link,
        caption,
      );
      img.addEventListener("error", () => {
        if (img.getAttribute("src")) caption.textContent = `${caption.textContent} (could not load)`;
      });
      return { l, col, img, link, caption };
    });
    replace(grid, columns.map((c) => c.col));

    const show = () => {
      const step = steps[Number(slider.value)] ?? 0;
      stepLabel.textContent = `step ${step} (${Number(slider.value) + 1} of ${steps.length})`;
      setQuery({ key, step: String(step) });
      for (const c of columns) {
        const st = atOrBefore(seriesOf(c.l), step);
        c.col.dataset.step = st ? String(st.step) : "";
        c.col.classList.toggle("media-missing", !st);
        if (!st) {
          c.img.removeAttribute("src");
          c.img.hidden = true;
          c.link.removeAttribute("href");
          c.caption.textContent = c.l.error ?? (seriesOf(c.l).length ? `no ${key} image yet at step ${step}` : `no ${key} images`);
          continue;
        }
        // the smaller copy both clients write beside each image; a click opens the full one
        c.img.hidden = false;
        c.img.alt = `${key} at step ${st.step}`;
        c.img.src = artifactUrl(c.l.run, st.compressed || st.path);
        c.link.href = artifactUrl(c.l.run, st.path);
        c.caption.textContent = st.step === step ? `step ${st.step}` : `step ${st.step} (nearest earlier)`;
      }
    };
    const pickKey = (initialStep?: number) => {
      steps = [...new Set(loaded.flatMap((l) => seriesOf(l).map((s) => s.step)))].sort((a, b) => a - b);
      slider.max = String(Math.max(0, steps.length - 1));
      const at = initialStep === undefined ? -1 : steps.indexOf(initialStep);
      slider.value = String(at >= 0 ? at : steps.length - 1);
      slider.disabled = steps.length < 2;
      show();
    };
    keySel.addEventListener("change", () => {
      key = keySel.value;
      pickKey();
    });
    slider.addEventListener("input", show);
    const wanted = route.q.get("step");
    pickKey(wanted === null || wanted === "" ? undefined : Number(wanted));
    replace(
      root,
      head,
      h("div", { class: "media-controls" }, h("label", null, "Image ", keySel), h("label", { class: "media-slider-label" }, "Step ", slider), stepLabel),
      grid,
      errors(loaded),
    );
  }

  function errors(loaded: { run: Run; error?: string }[]): HTMLElement | null {
    const bad = loaded.filter((l) => l.error);
    return bad.length ? h("ul", { class: "error media-errors" }, bad.map((l) => h("li", null, `${displayName(l.run)}: ${l.error}`))) : null;
  }

  void load();
  return { dispose: () => undefined };
}
