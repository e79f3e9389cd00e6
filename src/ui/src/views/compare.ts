// Compare runs: params side by side with differences highlighted, latest metrics, metric
// overlays, parallel coordinates and a param-vs-metric scatter.

import { asNumber } from "../columns";
import { DIRECTION_TAG, isBetter, metricDirection } from "../direction";
import { h, replace } from "../dom";
import { color, fmtNum } from "../format";
import { chartControls, ChartSettings, MetricChart, parseSettings, settingsQuery } from "../metricchart";
import { displayName, getRun, Run } from "../model";
import { parallelCoordinates, scatter } from "../plots";
import { href, Route, setQuery } from "../router";
import { pool } from "../series";
import { splitMetrics } from "./training";

export function compareView(root: HTMLElement, route: Route): { dispose: () => void } {
  const ids = (route.q.get("runs") ?? "").split(",").filter(Boolean);
  let settings: ChartSettings = parseSettings(route.q);
  let charts: MetricChart[] = [];
  replace(root, h("h1", null, "Compare runs"), h("p", { class: "muted" }, "Loading…"));

  async function load(): Promise<void> {
    if (!ids.length) {
      replace(root, h("h1", null, "Compare runs"), h("p", { class: "muted" }, "Select runs in a runs table and press Compare."));
      return;
    }
    let runs: Run[];
    try {
      runs = await pool(ids, 6, (id) => getRun(id));
    } catch (e) {
      replace(root, h("h1", null, "Compare runs"), h("div", { class: "error" }, (e as Error).message));
      return;
    }
    draw(runs);
  }

  function draw(runs: Run[]): void {
    const colors = runs.map((_, i) => color(i));
    const names = runs.map(displayName);
    const headRow = h(
      "tr",
      null,
      h("th", null, ""),
      runs.map((r, i) => h("th", { class: "run-col" }, h("span", { class: "swatch", style: { background: colors[i] } }), h("a", { href: `#/runs/${encodeURIComponent(r.id)}` }, names[i]))),
    );
    const paramKeys = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort((a, b) => a.localeCompare(b));
    const metricKeys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort((a, b) => a.localeCompare(b));
    const differs = (k: string) => new Set(runs.map((r) => r.params[k])).size > 1;
    const onlyDiff = h("input", { type: "checkbox", class: "only-diff", checked: route.q.get("diff") === "1" });
    const paramBody = h("tbody");
    const drawParams = () => {
      setQuery({ diff: onlyDiff.checked ? "1" : undefined });
      replace(
        paramBody,
        paramKeys
          .filter((k) => !onlyDiff.checked || differs(k))
          .map((k) => h("tr", { class: differs(k) ? "diff" : "same", dataset: { param: k } }, h("th", null, k), runs.map((r) => h("td", null, r.params[k] ?? h("span", { class: "muted" }, "—"))))),
      );
    };
    onlyDiff.addEventListener("change", drawParams);
    drawParams();

    // best green, worst red, by the metric's direction (loss falls, accuracy rises)
    const rank = (k: string) => {
      const dir = metricDirection(k, runs.map((r) => r.tags[`${DIRECTION_TAG}${k}`]).find(Boolean));
      const vals = runs.map((r) => r.metrics[k]?.value).filter((v): v is number => v !== undefined && !Number.isNaN(v));
      let best = vals[0];
      let worst = vals[0];
      for (const v of vals) {
        if (isBetter(v, best, dir)) best = v;
        if (isBetter(worst, v, dir)) worst = v;
      }
      return { dir, best, worst, ranked: vals.length > 1 && best !== worst };
    };
    const metricBody = h(
      "tbody",
      null,
      metricKeys.map((k) => {
        const b = rank(k);
        return h(
          "tr",
          { dataset: { metric: k, direction: b.dir } },
          h("th", null, k, " ", h("span", { class: "direction muted", title: b.dir === "min" ? "lower is better" : "higher is better" }, b.dir === "min" ? "↓" : "↑")),
          runs.map((r) => {
            const v = r.metrics[k]?.value;
            const cls = b.ranked && v === b.best ? " best" : b.ranked && v === b.worst ? " worst" : "";
            return h("td", { class: `num${cls}` }, v === undefined ? "—" : fmtNum(v));
          }),
        );
      }),
    );
    const legend = h(
      "p",
      { class: "compare-legend muted" },
      h("span", { class: "legend-best" }, "green"), " best and ", h("span", { class: "legend-worst" }, "red"), " worst value of a metric across these runs; ",
      "↓ lower is better (loss, error…), ↑ higher is better (accuracy, f1…). ",
      "A run's tag ", h("code", null, `${DIRECTION_TAG}<metric>`), " = min or max overrides the guess from the name.",
    );

    // param-vs-metric scatter and parallel coordinates
    const value = (r: Run, id: string): number | string | undefined => {
      if (id.startsWith("metrics.")) return r.metrics[id.slice(8)]?.value;
      const v = r.params[id.slice(7)];
      return asNumber(v) ?? v;
    };
    const options = [...paramKeys.map((k) => `params.${k}`), ...metricKeys.map((k) => `metrics.${k}`)];
    const opt = (ids: string[], chosen: string) =>
      ids.map((id) => h("option", { value: id, selected: id === chosen }, id));
    const defX = route.q.get("sx") ?? (paramKeys.find(differs) ? `params.${paramKeys.find(differs)}` : options[0] ?? "");
    const defY = route.q.get("sy") ?? (metricKeys[0] ? `metrics.${metricKeys[0]}` : "");
    const sxSel = h("select", { class: "scatter-x", "aria-label": "scatter x" }, opt(options, defX));
    const sySel = h("select", { class: "scatter-y", "aria-label": "scatter y" }, opt(options, defY));
    const scatterBox = h("div");
    const drawScatter = () => {
      setQuery({ sx: sxSel.value, sy: sySel.value });
      if (!sxSel.value || !sySel.value) return;
      replace(
        scatterBox,
        scatter({ label: sxSel.value, values: runs.map((r) => value(r, sxSel.value)) }, { label: sySel.value, values: runs.map((r) => value(r, sySel.value)) }, colors, names),
      );
    };
    sxSel.addEventListener("change", drawScatter);
    sySel.addEventListener("change", drawScatter);

    const pcMetric = h("select", { class: "pc-metric", "aria-label": "parallel coordinates metric" }, opt(metricKeys.map((k) => `metrics.${k}`), route.q.get("pm") ?? `metrics.${metricKeys[0] ?? ""}`));
    const pcBox = h("div");
    const drawPC = () => {
      setQuery({ pm: pcMetric.value || undefined });
      const axes = paramKeys.filter(differs).slice(0, 10).map((k) => ({ label: k, values: runs.map((r) => value(r, `params.${k}`)) }));
      if (pcMetric.value) axes.push({ label: pcMetric.value.slice(8), values: runs.map((r) => value(r, pcMetric.value)) });
      replace(pcBox, axes.length >= 2 ? parallelCoordinates(axes, colors, names, Math.max(600, Math.min(1200, root.clientWidth - 40))) : h("p", { class: "muted" }, "Parallel coordinates need at least one param that differs and a metric."));
    };
    pcMetric.addEventListener("change", drawPC);

    const grid = h("div", { class: "chart-grid" });
    // system/* metrics get a chart group of their own, after the model's metrics
    const [ownKeys, systemKeys] = splitMetrics(metricKeys);
    const systemGrid = h("div", { class: "chart-grid system-metrics-grid" });
    const controls = chartControls(settings, (s) => {
      settings = s;
      setQuery(settingsQuery(s));
      for (const c of charts) c.applySettings(s);
    });
    replace(
      root,
      h("div", { class: "page-head" }, h("h1", null, `Compare ${runs.length} runs`), h("a", { class: "button media-link", href: href(["media"], { runs: ids.join(",") }) }, "Images side by side")),
      h("section", { class: "compare-section" }, h("div", { class: "section-head" }, h("h2", null, "Parameters"), h("label", null, onlyDiff, " Only differences")), h("div", { class: "wide" }, h("table", { class: "grid compare-params" }, h("thead", null, headRow), paramBody))),
      h("section", { class: "compare-section" }, h("h2", null, "Latest metrics"), legend, h("div", { class: "wide" }, h("table", { class: "grid compare-metrics" }, h("thead", null, headRow.cloneNode(true)), metricBody))),
      h("section", { class: "compare-section" }, h("h2", null, "Metric charts"), controls, grid),
      systemKeys.length ? h("section", { class: "compare-section system-metrics" }, h("h2", null, "System metrics"), systemGrid) : null,
      h("section", { class: "compare-section" }, h("div", { class: "section-head" }, h("h2", null, "Parallel coordinates"), h("label", null, "Metric ", pcMetric)), pcBox),
      h("section", { class: "compare-section" }, h("div", { class: "section-head" }, h("h2", null, "Scatter"), h("label", null, "X ", sxSel), h("label", null, "Y ", sySel)), scatterBox),
    );
    drawPC();
    drawScatter();
    charts = [...ownKeys, ...systemKeys].map((k) => new MetricChart(k, runs.map((run, i) => ({ run, color: colors[i] })), settings));
    for (const c of charts) {
      (c.key.startsWith("system/") ? systemGrid : grid).appendChild(c.el);
      void c.load();
    }
  }

  void load();
  return { dispose: () => charts.forEach((c) => c.destroy()) };
}

