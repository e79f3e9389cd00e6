// One run: overview, description (safe markdown, editable), params, metrics with min/max/steps,
// charts, images per step, artifacts and editable tags.

import { mlPost } from "../api";
import { artifactBrowser, imageStepper } from "../artifacts";
import { confirmAction, h, replace } from "../dom";
import { runNoteEditor, tagEditor } from "../editors";
import { color, fmtDuration, fmtNum, fmtTime, runDuration } from "../format";
import { chartControls, ChartSettings, MetricChart, parseSettings, settingsQuery } from "../metricchart";
import { displayName, Experiment, getExperiment, getRun, Run, searchRunsPage } from "../model";
import { href, Route, setQuery } from "../router";
import { fetchSeries, pool } from "../series";
import { historyModelPaths, literal, loggedModelsOfRun, searchVersions } from "../registry";
import { stageBadge, versionHref } from "./models";
import { jobSection } from "./job";
import { MediaSeries, runImages } from "./media";
import { datasetsSection, evaluationSection, slurmSection, splitMetrics } from "./training";

const TABS = ["overview", "params", "metrics", "charts", "images", "artifacts", "tags"] as const;
type Tab = (typeof TABS)[number];
const OVERVIEW_MAX = 50; // params and metrics listed on the overview; their tabs list all

export function runView(root: HTMLElement, route: Route): { dispose: () => void } {
  const runId = route.parts[1];
  let tab: Tab = (TABS as readonly string[]).includes(route.q.get("tab") ?? "") ? (route.q.get("tab") as Tab) : "overview";
  let run: Run;
  let experiment: Experiment | undefined;
  let settings: ChartSettings = parseSettings(route.q);
  let charts: MetricChart[] = [];
  const content = h("div", { class: "tab-content" });
  const tabs = h("div", { class: "tabs run-tabs", role: "tablist" });
  const head = h("div", { class: "page-head" });

  replace(root, head, tabs, content);

  async function reload(): Promise<void> {
    try {
      run = await getRun(runId);
      if (experiment?.id !== run.experimentId) {
        experiment = undefined;
        void getExperiment(run.experimentId).then((e) => {
          experiment = e;
          drawHead();
          for (const a of Array.from(content.querySelectorAll(".exp-link"))) a.textContent = e.name;
        }, () => undefined);
      }
    } catch (e) {
      replace(root, h("div", { class: "error" }, (e as Error).message));
      return;
    }
    document.title = `${displayName(run)} · labtrack`;
    drawHead();
    drawTabs();
    void drawTab();
  }

  function drawHead(): void {
    const deleted = run.lifecycle === "deleted";
    const nameEl = h("h1", { class: "run-name" }, displayName(run));
    const err = h("span", { class: "error" });
    const rename = () => {
      const input = h("input", { type: "text", value: run.name, class: "rename-input", "aria-label": "run name" });
      const save = async (e: Event) => {
        e.preventDefault();
        try {
          await mlPost("runs/update", { run_id: run.id, run_name: input.value.trim() });
          await reload();
        } catch (x) {
          err.textContent = (x as Error).message;
        }
      };
      replace(nameEl, h("form", { onsubmit: save }, input, h("button", { type: "submit" }, "Save")));
      input.focus();
    };
    const lifecycle = async (path: string) => {
      if (path === "runs/delete" && !confirmAction(`Delete run "${displayName(run)}"?`)) return;
      try {
        await mlPost(path, { run_id: run.id });
        await reload();
      } catch (x) {
        err.textContent = (x as Error).message;
      }
    };
    replace(
      head,
      h(
        "div",
        { class: "crumbs" },
        h("a", { href: "#/" }, "Experiments"),
        " / ",
        h("a", { href: href(["experiments", run.experimentId, "runs"]) }, experiment?.name ?? run.experimentId),
        " / ",
      ),
      nameEl,
      h("span", { class: `status status-${run.status.toLowerCase()}` }, run.status),
      deleted ? h("span", { class: "badge deleted" }, "deleted") : null,
      h(
        "span",
        { class: "head-actions" },
        h("button", { class: "rename-run", onclick: rename }, "Rename"),
        deleted
          ? h("button", { class: "restore-run", onclick: () => lifecycle("runs/restore") }, "Restore")
          : h("button", { class: "delete-run danger", onclick: () => lifecycle("runs/delete") }, "Delete"),
        h("a", { class: "button", href: href(["compare"], { runs: run.id }) }, "Compare…"),
      ),
      err,
    );
  }

  function drawTabs(): void {
    replace(
      tabs,
      TABS.map((t) =>
        h(
          "button",
          {
            class: `tab${t === tab ? " active" : ""}`,
            role: "tab",
            dataset: { tab: t },
            onclick: () => {
              tab = t;
              setQuery({ tab: t === "overview" ? undefined : t });
              drawTabs();
              void drawTab();
            },
          },
          t[0].toUpperCase() + t.slice(1),
        ),
      ),
    );
  }

  async function drawTab(): Promise<void> {
    for (const c of charts) c.destroy();
    charts = [];
    replace(content);
    switch (tab) {
      case "overview":
        return overview();
      case "params":
        return kvTable(run.params, "params");
      case "metrics":
        return metrics();
      case "charts":
        return drawCharts(route.q.get("metric") ?? undefined);
      case "images":
        return images();
      case "artifacts":
        replace(content, artifactBrowser(run, route.q.get("path") ?? undefined));
        return;
      case "tags":
        return tags();
    }
  }

  async function overview(): Promise<void> {
    const t = run.tags;
    const parent = t["mlflow.parentRunId"];
    const children = h("span", { class: "muted" }, "…");
    const rows: [string, Node | string][] = [
      ["Run ID", h("code", null, run.id)],
      ["Experiment", h("a", { class: "exp-link", href: href(["experiments", run.experimentId, "runs"]) }, experiment?.name ?? run.experimentId)],
      ["Status", run.status],
      ["Started", fmtTime(run.start)],
      ["Ended", fmtTime(run.end)],
      ["Duration", fmtDuration(runDuration(run.start, run.end, run.status))],
      ["User", run.user],
      ["Source", [t["mlflow.source.type"], t["mlflow.source.name"]].filter(Boolean).join(": ")],
      ["Git commit", t["mlflow.source.git.commit"] ? h("code", null, t["mlflow.source.git.commit"]) : ""],
      ["Entry point", t["mlflow.project.entryPoint"] ?? ""],
      ["Artifact URI", h("code", null, run.artifactUri)],
      ["Lifecycle", run.lifecycle],
      ["Parent run", parent ? h("a", { href: `#/runs/${encodeURIComponent(parent)}`, class: "parent-link" }, parent) : ""],
      ["Child runs", children],
    ];
    // a row with nothing to say (no git commit, no entry point, no parent...) is left out
    const shown = rows.filter(([, v]) => v !== "" && v !== undefined);
    const childRow = h("tr", { class: "child-runs-row" });
    const note = runNoteEditor(run);
    const models = h("div", { class: "run-models" }, h("h2", null, "Models"), h("p", { class: "muted" }, "…"));
    const rowOf = ([k, v]: [string, Node | string]) => (v === children ? (replace(childRow, h("th", null, k), h("td", null, v)), childRow) : h("tr", null, h("th", null, k), h("td", null, v)));
    replace(
      content,
      h("table", { class: "kv overview" }, h("tbody", null, shown.map(rowOf))),
      overviewParams(),
      overviewMetrics(),
      note,
      jobSection(run, () => void reload()),
      slurmSection(run),
      datasetsSection(run),
      evaluationSection(run),
      models,
    );
    void drawModels(models);
    try {
      const kids = await searchRunsPage([run.experimentId], `tags.mlflow.parentRunId = '${run.id}'`, "ACTIVE_ONLY", 1000);
      replace(
        children,
        kids.runs.length
          ? kids.runs.map((k, i) => [i ? ", " : "", h("a", { href: `#/runs/${encodeURIComponent(k.id)}`, class: "child-link" }, displayName(k))])
          : "",
      );
      children.classList.remove("muted");
      childRow.hidden = !kids.runs.length;
    } catch {
      childRow.hidden = true;
    }
  }

  /** The models this run logged (MLflow 3 logged models, MLflow 2 artifact models) and registered versions made from it. */
  async function drawModels(box: HTMLElement): Promise<void> {
    const [logged, versions] = await Promise.all([
      loggedModelsOfRun(run.experimentId, run.id, run.modelOutputs).catch(() => []),
      searchVersions(`run_id = ${literal(run.id)}`).catch(() => []),
    ]);
    const legacy = historyModelPaths(run.tags);
    const byModelId = new Map<string, typeof versions>();
    for (const v of versions) if (v.modelId) byModelId.set(v.modelId, [...(byModelId.get(v.modelId) ?? []), v]);
    const versionLink = (v: (typeof versions)[number]) =>
      h("a", { class: "registered-version", href: versionHref(v.name, v.version), dataset: { model: v.name, version: v.version } }, `${v.name} v${v.version}`, " ", stageBadge(v.stage), v.aliases.map((a) => h("span", { class: "chip alias-chip" }, `@${a}`)));
    const parts: HTMLElement[] = [];
    if (versions.length) parts.push(h("div", null, h("h3", null, "Registered versions"), h("ul", { class: "run-registered" }, versions.map((v) => h("li", null, versionLink(v))))));
    if (logged.length) {
      parts.push(
        h(
          "div",
          null,
          h("h3", null, "Logged models"),
          h(
            "ul",
            { class: "run-logged-models" },
            logged.map((m) =>
              h(
                "li",
                { dataset: { modelId: m.id } },
                h("b", { class: "logged-model-name" }, m.name),
                " ",
                h("code", { class: "muted" }, m.id),
                m.type ? ` · ${m.type}` : "",
                m.status ? ` · ${m.status.toLowerCase()}` : "",
                (byModelId.get(m.id) ?? []).map((v) => [" → ", versionLink(v)]),
              ),
            ),
          ),
        ),
      );
    }
    if (legacy.length) {
      parts.push(
        h(
          "div",
          null,
          h("h3", null, "Models in the run's artifacts"),
          h("ul", { class: "run-artifact-models" }, legacy.map((m) => h("li", null, h("a", { href: href(["runs", run.id], { tab: "artifacts", path: m.path }) }, m.path), m.flavors.length ? ` · ${m.flavors.join(", ")}` : ""))),
        ),
      );
    }
    replace(box, h("h2", null, "Models"), parts.length ? parts : h("p", { class: "muted" }, "This run logged no models."));
  }

  function kvTable(map: Record<string, string>, cls: string): void {
    const keys = Object.keys(map).sort((a, b) => a.localeCompare(b));
    const search = h("input", { type: "search", placeholder: `Filter ${cls}`, class: "kv-search" });
    const body = h("tbody");
    const draw = () => {
      const s = search.value.toLowerCase();
      replace(
        body,
        keys
          .filter((k) => !s || k.toLowerCase().includes(s) || map[k].toLowerCase().includes(s))
          .map((k) => h("tr", null, h("th", null, k), h("td", { class: "value" }, map[k]))),
      );
    };
    search.addEventListener("input", draw);
    draw();
    replace(content, keys.length ? search : null, keys.length ? h("table", { class: `kv ${cls}-table` }, body) : h("p", { class: "muted" }, `No ${cls}.`));
  }

  /** The run's params on its overview (the first OVERVIEW_MAX; the Params tab has them all). */
  function overviewParams(): HTMLElement {
    const keys = Object.keys(run.params).sort((a, b) => a.localeCompare(b));
    return h(
      "section",
      { class: "overview-params" },
      h("h2", null, `Parameters (${keys.length})`),
      keys.length
        ? h("table", { class: "kv params-summary" }, h("tbody", null, keys.slice(0, OVERVIEW_MAX).map((k) => h("tr", { dataset: { param: k } }, h("th", null, k), h("td", { class: "value" }, run.params[k])))))
        : h("p", { class: "muted" }, "No params."),
      keys.length > OVERVIEW_MAX ? h("a", { href: href(["runs", run.id], { tab: "params" }) }, `All ${keys.length} params…`) : null,
    );
  }

  /** The model's metrics on the overview: last value, min, max and how many steps (system metrics stay on their tabs). */
  function overviewMetrics(): HTMLElement {
    const [own] = splitMetrics(Object.keys(run.metrics));
    return h(
      "section",
      { class: "overview-metrics" },
      h("h2", null, `Metrics (${own.length})`),
      own.length ? metricsTable(own.slice(0, OVERVIEW_MAX)) : h("p", { class: "muted" }, "No metrics."),
      own.length > OVERVIEW_MAX ? h("a", { href: href(["runs", run.id], { tab: "metrics" }) }, `All ${own.length} metrics…`) : null,
    );
  }

  function metrics(): void {
    const keys = Object.keys(run.metrics).sort((a, b) => a.localeCompare(b));
    replace(content, keys.length ? metricsTable(keys) : h("p", { class: "muted" }, "No metrics."));
  }

  /** Metric, last value and its step, min, max and the number of steps logged; min/max/steps fill in as they load. */
  function metricsTable(keys: string[]): HTMLElement {
    const cells = new Map<string, HTMLElement[]>();
    const body = h(
      "tbody",
      null,
      keys.map((k) => {
        const m = run.metrics[k];
        const extra = [h("td", { class: "num min" }, "…"), h("td", { class: "num max" }, "…"), h("td", { class: "num points" }, "…")];
        cells.set(k, extra);
        return h(
          "tr",
          { dataset: { metric: k } },
          h("th", { scope: "row" }, h("a", { href: href(["runs", run.id], { tab: "charts", metric: k }) }, k)),
          h("td", { class: "num latest" }, fmtNum(m.value)),
          h("td", { class: "num step" }, String(m.step)),
          ...extra,
        );
      }),
    );
    // numeric columns: the header's text sits over the numbers, right-aligned as they are
    const head = h("tr", null, h("th", null, "Metric"), ["Last", "Step", "Min", "Max", "Steps"].map((t) => h("th", { class: "num", title: t === "Steps" ? "values logged" : t === "Step" ? "step of the last value" : null }, t)));
    const table = h("table", { class: "grid metrics-table" }, h("thead", null, head), body);
    // min and max are exact: the server keeps each bucket's extremes when it downsamples
    void pool(keys, 6, async (k) => {
      const [mn, mx, n] = cells.get(k)!;
      try {
        const s = await fetchSeries(run.id, k, 64);
        let lo = Infinity;
        let hi = -Infinity;
        for (const p of s.points) {
          if (p.value < lo) lo = p.value;
          if (p.value > hi) hi = p.value;
        }
        mn.textContent = s.points.length ? fmtNum(lo) : "";
        mx.textContent = s.points.length ? fmtNum(hi) : "";
        n.textContent = s.total.toLocaleString();
        table.dataset.loaded = String(Number(table.dataset.loaded ?? 0) + 1);
      } catch {
        mn.textContent = mx.textContent = n.textContent = "";
      }
    });
    return table;
  }

  function drawCharts(only?: string): void {
    const [own, system] = splitMetrics(Object.keys(run.metrics));
    const keys = only ? [only] : own;
    const grid = h("div", { class: only ? "chart-grid single" : "chart-grid" });
    // System metrics (CPU, memory, disk, network, GPU) form a group of their own, below the model's.
    const systemGrid = h("div", { class: "chart-grid system-metrics-grid" });
    const systemGroup = !only && system.length ? h("section", { class: "system-metrics" }, h("h2", null, "System metrics"), systemGrid) : null;
    const controls = chartControls(settings, (s) => {
      settings = s;
      setQuery(settingsQuery(s));
      for (const c of charts) c.applySettings(s);
    });
    replace(content, only ? h("a", { href: href(["runs", run.id], { tab: "charts" }) }, "← all metrics") : null, controls, grid, systemGroup);
    for (const [k, into] of [...keys.map((k) => [k, grid] as const), ...(systemGroup ? system.map((k) => [k, systemGrid] as const) : [])]) {
      const mc = new MetricChart(k, [{ run, color: color(0) }], settings, only ? 420 : 240);
      charts.push(mc);
      into.appendChild(mc.el);
      void mc.load();
    }
    if (!keys.length && !system.length) grid.appendChild(h("p", { class: "muted" }, "No metrics."));
  }

  async function images(): Promise<void> {
    replace(content, h("p", { class: "muted" }, "Looking for images…"));
    let series: MediaSeries[];
    try {
      series = await runImages(run.id);
    } catch (e) {
      replace(content, h("div", { class: "error" }, (e as Error).message));
      return;
    }
    replace(content, series.length ? series.map((s) => imageStepper(run, s)) : h("p", { class: "muted" }, "No images logged per step (log_image with key= and step=)."));
  }

  function tags(): void {
    const userTags = (): Record<string, string> =>
      Object.fromEntries(Object.entries(run.tags).filter(([k]) => !k.startsWith("mlflow.")));
    const system = Object.keys(run.tags).filter((k) => k.startsWith("mlflow.")).sort();
    replace(
      content,
      tagEditor(userTags(), {
        set: async (key, value) => void (await mlPost("runs/set-tag", { run_id: run.id, key, value })),
        remove: async (key) => void (await mlPost("runs/delete-tag", { run_id: run.id, key })),
        reload: async () => {
          run = await getRun(run.id);
          return userTags();
        },
      }),
      h("details", null, h("summary", null, `System tags (${system.length})`), h("table", { class: "kv" }, h("tbody", null, system.map((k) => h("tr", null, h("th", null, k), h("td", { class: "value" }, run.tags[k])))))),
    );
  }

  void reload();
  return { dispose: () => charts.forEach((c) => c.destroy()) };
}
