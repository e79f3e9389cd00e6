// The runs table: one or several experiments, server-side MLflow filter, client-side sort,
// metric range filters, nested-run tree, group-by with mean ± std / min / max, selection,
// chosen columns, virtualized rows, live updates of running runs. All state lives in the hash.

import { ApiError, mlPost } from "../api";
import { aggregate, asNumber, ATTRS, column, Column, compareValues, fitWidths } from "../columns";
import { confirmAction, debounce, h, replace } from "../dom";
import { color, fmtNum } from "../format";
import { ChartRun, chartControls, ChartSettings, MetricChart, parseSettings, settingsQuery } from "../metricchart";
import { displayName, Experiment, getExperiment, Run, searchExperiments, searchRunsPage, ViewType } from "../model";
import { GroupStats, RunWindow, tableCount, tableGroups, tableKeys, TableQuery, windowedAbove } from "../runsource";
import { exportMenu, withRanges } from "../exports";
import { href, Route, setQuery } from "../router";
import { viewTools } from "../savedviews";
import { runPanel } from "./runpanel";
import { ensureSummaries, parseSummaryId, STAT_LABEL, STATS, summaryId } from "../summaries";

const ROW_H = 34;
const OVERSCAN = 8;
const FIRST_PAGE = 100; // small first page: rows are interactive while the rest streams in
// Later pages stream in at 1,000 runs: the server renders each page whole, so its peak memory
// follows the page size (2,000-run pages took it past 200 MB at 10,000 runs).
const PAGE = 1000;
const LIVE_MS = 5000;

type Row =
  | { kind: "run"; run: Run; depth: number; children: number; expanded: boolean }
  | { kind: "group"; key: string; label: string; runs: Run[]; expanded: boolean; stats?: GroupStats };

type Range = [string, number | null, number | null];

function parseJSON<T>(s: string | null, fallback: T): T {
  if (!s) return fallback;
  try {
    return JSON.parse(s) as T;
  } catch {
    return fallback;
  }
}

function quote(s: string): string {
  return `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

export function runsView(root: HTMLElement, route: Route): { dispose: () => void } {
  const expParam = route.parts[0] === "experiments" ? route.parts[1] : "";
  const acrossAll = !expParam;
  let experimentIds = expParam ? expParam.split(",").filter(Boolean) : [];
  const experiments = new Map<string, Experiment>();

  // ---- state from the URL
  const q = route.q;
  let filter = q.get("filter") ?? "";
  let sort = q.get("sort") ?? "attr.start:desc";
  let cols: string[] | null = parseJSON<string[] | null>(q.get("cols"), null);
  const selected = new Set((q.get("sel") ?? "").split(",").filter(Boolean));
  let group = q.get("group") ?? "";
  let ranges: Range[] = parseJSON<Range[]>(q.get("range"), []);
  let showDeleted = q.get("deleted") === "1";
  let mode = q.get("view") === "charts" ? "charts" : "table";
  let chartSettings: ChartSettings = parseSettings(q);
  const expanded = new Set<string>(); // parent runs opened in the tree
  const collapsedGroups = new Set<string>();

  let runs: Run[] = [];
  const byId = new Map<string, Run>();
  let rows: Row[] = [];
  let columns: Column[] = [];
  let loading = false;
  let loadSeq = 0;
  let disposed = false;
  let maxStart = 0;

  // ---- DOM
  const title = h("h1", null, acrossAll ? "All runs" : "Runs");
  const filterInput = h("input", {
    type: "search",
    class: "filter-input",
    value: filter,
    placeholder: "Filter: metrics.loss < 0.5 and params.lr = '0.01' and tags.team = 'x'",
    "aria-label": "filter runs",
    onkeydown: (e: KeyboardEvent) => {
      if (e.key === "Enter") applyFilter();
    },
  });
  const filterErr = h("div", { class: "error inline-error filter-error", role: "alert" });
  const deletedBox = h("input", {
    type: "checkbox",
    class: "show-deleted",
    checked: showDeleted,
    onchange: () => {
      showDeleted = deletedBox.checked;
      setQuery({ deleted: showDeleted ? "1" : undefined });
      void load();
    },
  });
  const groupSel = h("select", { class: "group-by", "aria-label": "group by", onchange: () => setGroup(groupSel.value) });
  const colBtn = h("button", { class: "columns-btn", onclick: () => toggleColumnPicker() }, "Columns");
  const picker = h("div", { class: "popover column-picker", hidden: true });
  const rangeBar = h("div", { class: "range-bar" });
  const status = h("span", { class: "muted run-count" });
  const selBar = h("div", { class: "selbar" });
  const modeTabs = h("div", { class: "tabs" });
  const header = h("div", { class: "thead" });
  const body = h("div", { class: "tbody" });
  const scroller = h("div", { class: "scroller", tabindex: "0" }, header, body);
  const chartsPane = h("div", { class: "charts-pane" });
  // The side panel lies over the table's right side, below the toolbars, so they stay in reach.
  const panel = runPanel(() => setQuery({ panel: undefined }));
  const tablePane = h("div", { class: "table-pane" }, scroller, panel.el);
  const tools = viewTools(expParam, experiments); // saved views and the dashboard (savedviews.ts)

  replace(
    root,
    h(
      "div",
      { class: "page-head" },
      title,
      status,
      !acrossAll && !expParam.includes(",")
        ? [
            h("a", { class: "button traces-link", href: href(["experiments", expParam, "traces"]) }, "Traces"),
            h("a", { class: "button scorers-link", href: href(["experiments", expParam, "scorers"]) }, "Scorers"),
          ]
        : null,
    ),
    h(
      "div",
      { class: "toolbar" },
      h("div", { class: "filter-box" }, filterInput, h("button", { class: "apply-filter", onclick: () => applyFilter() }, "Search"), filterErr),
      h("label", null, "Group by ", groupSel),
      h("span", { class: "popover-anchor" }, colBtn, picker),
      h("label", null, deletedBox, " Show deleted"),
      exportMenu(() => ({ experimentIds, filter: withRanges(filter, ranges), sort, columns: columns.map((c) => c.id), viewType: showDeleted ? "ALL" : "ACTIVE_ONLY", selected: [...selected] })),
      tools.toolbar,
    ),
    rangeBar,
    h("div", { class: "toolbar" }, modeTabs, selBar),
    tools.pane,
    tablePane,
    chartsPane,
  );

  // ---- URL persistence
  const persist = () =>
    setQuery({
      filter: filter || undefined,
      sort: sort === "attr.start:desc" ? undefined : sort,
      cols: cols ? JSON.stringify(cols) : undefined,
      sel: selected.size && selected.size <= 500 ? [...selected].join(",") : undefined,
      group: group || undefined,
      range: ranges.length ? JSON.stringify(ranges) : undefined,
      view: mode === "charts" ? "charts" : undefined,
      ...settingsQuery(chartSettings),
    });

  // ---- columns
  let keysCache: { metrics: string[]; params: string[]; tags: string[] } | null = null; // reset when runs change
  function allKeys(): { metrics: string[]; params: string[]; tags: string[] } {
    if (keysCache) return keysCache;
    const m = new Set<string>();
    const p = new Set<string>();
    const t = new Set<string>();
    for (const r of runs) {
      for (const k in r.metrics) m.add(k);
      for (const k in r.params) p.add(k);
      for (const k in r.tags) t.add(k);
    }
    const s = (x: Set<string>) => [...x].sort((a, b) => a.localeCompare(b));
    keysCache = { metrics: s(m), params: s(p), tags: s(t) };
    return keysCache;
  }

  function defaultCols(): string[] {
    const k = allKeys();
    const base = ["attr.name", "attr.status", "attr.start", "attr.duration"];
    if (acrossAll || experimentIds.length > 1) base.push("attr.experiment");
    base.push("attr.user");
    // system/* metrics (CPU, memory, GPU...) stay out of the default columns: they would crowd the model's own
    const own = k.metrics.filter((x) => !x.startsWith("system/"));
    // Params before metrics: a model that logs many metrics no longer pushes its params off-screen.
    return [...base, ...k.params.slice(0, 12).map((x) => `params.${x}`), ...own.slice(0, 12).map((x) => `metrics.${x}`)];
  }

  function refreshColumns(): void {
    const ids = cols ?? defaultCols();
    if (!ids.includes("attr.name")) ids.unshift("attr.name");
    columns = ids.map((id) => column(id, experiments));
    fitColumns();
    void loadSummaries();
  }

  // Summary columns (summaries.ts): their values are fetched for the runs in the table.
  async function loadSummaries(): Promise<void> {
    const keys = [...new Set(columns.map((c) => parseSummaryId(c.id)?.[1]).filter((k): k is string => !!k))];
    let fresh = false;
    try {
      fresh = await ensureSummaries(runs, keys);
    } catch (e) {
      filterErr.textContent = (e as Error).message;
    }
    if (!fresh || disposed) return;
    fitColumns();
    renderHeader();
    if (windowed) renderRows(true); // the server sorted these rows; a rebuild would fetch them again
    else rebuild();
  }

  // Widths fitted to the headers and values, stretched to the table's width (columns.fitWidths).
  const canvas = document.createElement("canvas").getContext("2d");
  const measured = new Map<string, number>();
  function measure(text: string, header: boolean): number {
    const k = (header ? "h" : "c") + text;
    let w = measured.get(k);
    if (w === undefined) {
      if (!canvas) return text.length * 8;
      if (measured.size > 20_000) measured.clear();
      const cs = getComputedStyle(scroller);
      canvas.font = `${header ? 600 : 400} ${cs.fontSize || "13px"} ${cs.fontFamily || "sans-serif"}`;
      w = canvas.measureText(text).width;
      measured.set(k, w);
    }
    return w;
  }
  function fitColumns(): void {
    const available = Math.max(0, (scroller.clientWidth || root.clientWidth) - 36);
    const widths = fitWidths(columns, runs, available, measure, displayName);
    columns.forEach((c, i) => (c.width = widths[i]));
  }
  // The table ends above the window's bottom edge, so its horizontal scrollbar is in view.
  function fitHeight(): void {
    if (!scroller.isConnected || tablePane.hidden) return;
    const top = scroller.getBoundingClientRect().top + window.scrollY;
    scroller.style.height = `${Math.max(240, Math.floor(window.innerHeight - top - 12))}px`;
  }
  // ... and again whenever the page's parts change size (range chips, a dashboard, a wrapped
  // toolbar); in the next frame, so that a resize never loops within one.
  const heightWatch = new ResizeObserver(() => requestAnimationFrame(fitHeight));
  heightWatch.observe(root);

  function toggleColumnPicker(): void {
    picker.hidden = !picker.hidden;
    if (picker.hidden) return;
    const k = allKeys();
    const chosen = new Set(columns.map((c) => c.id));
    const search = h("input", { type: "search", placeholder: "Find a column", class: "col-search" });
    const boxes: HTMLElement[] = [];
    const section = (label: string, ids: string[], names: string[]) =>
      h(
        "fieldset",
        null,
        h("legend", null, label),
        ids.map((id, i) => {
          const cb = h("input", {
            type: "checkbox",
            checked: chosen.has(id),
            dataset: { col: id },
            onchange: () => {
              const cur = columns.map((c) => c.id);
              cols = cb.checked ? [...cur, id] : cur.filter((x) => x !== id);
              refreshColumns();
              persist();
              renderHeader();
              renderRows(true);
            },
          });
          const lab = h("label", { class: "col-option", dataset: { name: names[i].toLowerCase() } }, cb, " ", names[i]);
          boxes.push(lab);
          return lab;
        }),
      );
    search.addEventListener("input", () => {
      const s = search.value.toLowerCase();
      for (const b of boxes) b.hidden = !!s && !(b.dataset.name ?? "").includes(s);
    });
    replace(
      picker,
      h(
        "div",
        { class: "picker-head" },
        search,
        h("button", { onclick: () => { cols = null; refreshColumns(); persist(); renderHeader(); renderRows(true); picker.hidden = true; } }, "Default"),
        h("button", { onclick: () => { picker.hidden = true; } }, "Close"),
      ),
      section("Attributes", ATTRS.map((a) => `attr.${a}`), ATTRS.map((a) => column(`attr.${a}`, experiments).label)),
      section("Metrics", k.metrics.map((x) => `metrics.${x}`), k.metrics),
      section(
        "Metric summaries (whole history)",
        k.metrics.flatMap((x) => STATS.map((s) => summaryId(s, x))),
        k.metrics.flatMap((x) => STATS.map((s) => `${x} ${STAT_LABEL[s]}`)),
      ),
      section("Parameters", k.params.map((x) => `params.${x}`), k.params),
      section("Tags", k.tags.map((x) => `tags.${x}`), k.tags),
    );
    search.focus();
  }

  function fillGroupSelect(): void {
    const k = allKeys();
    const cur = group;
    replace(
      groupSel,
      h("option", { value: "" }, "(none)"),
      h("optgroup", { label: "Attributes" }, ["attr.user", "attr.status", "attr.experiment"].map((id) => h("option", { value: id }, column(id, experiments).label))),
      h("optgroup", { label: "Parameters" }, k.params.map((p) => h("option", { value: `params.${p}` }, p))),
      h("optgroup", { label: "Tags" }, k.tags.filter((t) => !t.startsWith("mlflow.")).map((t) => h("option", { value: `tags.${t}` }, t))),
    );
    groupSel.value = cur;
  }

  function setGroup(g: string): void {
    group = g;
    persist();
    rebuild();
  }

  // ---- range filters (client-side, instant)
  function renderRanges(): void {
    const k = allKeys();
    const keySel = h("select", { class: "range-key", "aria-label": "metric for range filter" }, k.metrics.map((m) => h("option", { value: m }, m)));
    const lo = h("input", { type: "number", step: "any", class: "range-min", placeholder: "min", "aria-label": "minimum" });
    const hi = h("input", { type: "number", step: "any", class: "range-max", placeholder: "max", "aria-label": "maximum" });
    const add = (e: Event) => {
      e.preventDefault();
      if (!keySel.value) return;
      const a = lo.value === "" ? null : Number(lo.value);
      const b = hi.value === "" ? null : Number(hi.value);
      ranges = [...ranges.filter((r) => r[0] !== keySel.value), [keySel.value, a, b]];
      persist();
      renderRanges();
      rebuild();
    };
    replace(
      rangeBar,
      h("form", { class: "range-form", onsubmit: add }, h("span", { class: "muted" }, "Metric range: "), keySel, lo, hi, h("button", { type: "submit" }, "Add")),
      ranges.map((r) =>
        h(
          "span",
          { class: "chip range-chip" },
          `${r[1] ?? "−∞"} ≤ ${r[0]} ≤ ${r[2] ?? "∞"}`,
          h("button", { class: "chip-x", "aria-label": `remove range on ${r[0]}`, onclick: () => { ranges = ranges.filter((x) => x !== r); persist(); renderRanges(); rebuild(); } }, "×"),
        ),
      ),
    );
  }

  function inRanges(r: Run): boolean {
    for (const [k, a, b] of ranges) {
      const m = r.metrics[k];
      if (!m || !Number.isFinite(m.value)) return false;
      if (a !== null && m.value < a) return false;
      if (b !== null && m.value > b) return false;
    }
    return true;
  }

  // ---- rows: filter, sort, tree or groups
  function rebuild(): void {
    if (windowed) {
      void rebuildWindowed();
      return;
    }
    const [sortId, dir] = sort.split(":");
    const sc = columns.find((c) => c.id === sortId) ?? column(sortId, experiments);
    const sign = dir === "asc" ? 1 : -1;
    // Each run's sort value is read once, not twice per comparison (n log n getter calls,
    // each parsing a param as a number, were most of a 10,000-row sort).
    const keyed: { r: Run; v: number | string | undefined }[] = [];
    for (const r of runs) if (inRanges(r)) keyed.push({ r, v: sc.get(r) });
    const missing = (v: unknown) => v === undefined || (typeof v === "number" && Number.isNaN(v));
    keyed.sort((a, b) => (missing(a.v) || missing(b.v) ? compareValues(a.v, b.v) : sign * compareValues(a.v, b.v)));
    const visible = keyed.map((k) => k.r);
    tools.update(visible);
    rows = [];
    if (group) {
      const gc = column(group, experiments);
      const groups = new Map<string, Run[]>();
      for (const r of visible) {
        const v = gc.text(r);
        let g = groups.get(v);
        if (!g) groups.set(v, (g = []));
        g.push(r);
      }
      const keys = [...groups.keys()].sort((a, b) => compareValues(asNumber(a) ?? (a || undefined), asNumber(b) ?? (b || undefined)));
      for (const k of keys) {
        const rs = groups.get(k)!;
        const open = !collapsedGroups.has(k);
        rows.push({ kind: "group", key: k, label: `${gc.label} = ${k === "" ? "(none)" : k}`, runs: rs, expanded: open });
        if (open) for (const r of rs) rows.push({ kind: "run", run: r, depth: 1, children: 0, expanded: false });
      }
    } else {
      const ids = new Set(visible.map((r) => r.id));
      const kids = new Map<string, Run[]>();
      const roots: Run[] = [];
      for (const r of visible) {
        const p = r.tags["mlflow.parentRunId"];
        if (p && p !== r.id && ids.has(p)) {
          let k = kids.get(p);
          if (!k) kids.set(p, (k = []));
          k.push(r);
        } else roots.push(r);
      }
      const walk = (r: Run, depth: number, seen: Set<string>) => {
        if (seen.has(r.id)) return;
        seen.add(r.id);
        const ch = kids.get(r.id) ?? [];
        const open = expanded.has(r.id);
        rows.push({ kind: "run", run: r, depth, children: ch.length, expanded: open });
        if (open) for (const c of ch) walk(c, depth + 1, seen);
      };
      const seen = new Set<string>();
      for (const r of roots) walk(r, 0, seen);
    }
    const hidden = runs.length - visible.length;
    status.textContent = `${visible.length.toLocaleString()} runs${hidden ? ` (${hidden.toLocaleString()} outside metric ranges)` : ""}${loading ? " · loading…" : ""}`;
    root.dataset.rows = String(rows.length);
    renderRows(true);
    renderSelBar();
  }

  // ---- windowed: an experiment too large to load whole (runsource.ts). The server filters, sorts,
  // counts and groups; the table fetches the rows it scrolls to, with only its columns. No tree
  // of nested runs and no live updates here: those need every run in the browser.
  let windowed = false;
  let winSeq = 0;
  let segments: { header: Row | null; win: RunWindow | null; count: number }[] = [];

  function windowQuery(): TableQuery {
    return { experimentIds, filter: withRanges(filter, ranges), viewType: showDeleted ? "ALL" : "ACTIVE_ONLY", sort, columns: columns.map((c) => c.id).filter((id) => /^(attr|metrics|params|tags)\./.test(id)) };
  }

  function onWindowRows(): void {
    runs = segments.flatMap((s) => (s.win ? s.win.loaded() : []));
    byId.clear();
    for (const r of runs) byId.set(r.id, r);
    renderRows(true);
    void loadSummaries(); // for the rows just fetched, when summary columns are shown
  }

  /** Counts the runs; above windowedAbove() the table goes windowed. False: load them whole. */
  async function openWindowed(seq: number, view: ViewType): Promise<boolean> {
    const base: TableQuery = { experimentIds, filter, viewType: view, sort, columns: [] };
    const total = await tableCount(base);
    if (seq !== loadSeq) return true;
    windowed = total > windowedAbove();
    if (!windowed) return false;
    keysCache = await tableKeys(base, 1000); // the newest runs' keys pick the first columns at once
    if (seq !== loadSeq) return true;
    setQuery({ filter: filter || undefined });
    persist();
    loading = false;
    root.dataset.windowed = "1";
    afterData();
    // Then the keys of the newest 10,000 runs, for the column picker, group-by and ranges: every
    // run's keys cost the server seconds at 100,000 runs, while the user's first clicks wait.
    void tableKeys(base, 10000).then((k) => {
      if (seq !== loadSeq) return;
      keysCache = k;
      fillGroupSelect();
      renderRanges();
    }, () => undefined);
    return true;
  }

  async function rebuildWindowed(): Promise<void> {
    const seq = ++winSeq;
    const q = windowQuery();
    let next: typeof segments;
    try {
      if (group) {
        const stats = await tableGroups({ ...q, group });
        if (seq !== winSeq) return;
        const gc = column(group, experiments);
        const order = (v: string) => asNumber(v) ?? (v || undefined);
        stats.sort((a, b) => compareValues(order(a.value), order(b.value)));
        next = stats.map((g) => {
          const open = !collapsedGroups.has(g.value);
          const shown = group === "attr.experiment" ? experiments.get(g.value)?.name ?? g.value : g.value;
          const header: Row = { kind: "group", key: g.value, label: `${gc.label} = ${shown === "" ? "(none)" : shown}`, runs: [], expanded: open, stats: g };
          return { header, win: open ? new RunWindow({ ...q, group, groupValue: g.value }, onWindowRows) : null, count: open ? g.count : 0 };
        });
      } else {
        const w = new RunWindow(q, onWindowRows);
        await w.load(0);
        if (seq !== winSeq) return;
        next = [{ header: null, win: w, count: w.total }];
      }
    } catch (e) {
      if (seq === winSeq) filterErr.textContent = (e as Error).message;
      return;
    }
    segments = next;
    rows = [];
    const total = segments.reduce((n, s) => n + (s.header?.kind === "group" && s.header.stats ? s.header.stats.count : s.count), 0);
    status.textContent = `${total.toLocaleString()} runs`;
    root.dataset.rows = String(rowCount());
    root.dataset.total = String(total);
    onWindowRows();
    renderSelBar();
    root.dataset.ready = String(seq);
  }

  function rowCount(): number {
    if (!windowed) return rows.length;
    let n = 0;
    for (const s of segments) n += (s.header ? 1 : 0) + s.count;
    return n;
  }

  function rowAt(i: number): Row | undefined {
    if (!windowed) return rows[i];
    for (const s of segments) {
      if (s.header) {
        if (i === 0) return s.header;
        i--;
      }
      if (i < s.count) {
        const run = s.win?.at(i);
        return run ? { kind: "run", run, depth: s.header ? 1 : 0, children: 0, expanded: false } : undefined;
      }
      i -= s.count;
    }
    return undefined;
  }

  function pendingRow(i: number): HTMLElement {
    return h("div", { class: "tr pending-row", style: { top: `${i * ROW_H}px`, width: `${totalWidth()}px` } }, h("div", { class: "td muted" }, "…"));
  }

  // ---- header and virtualized body
  function totalWidth(): number {
    return 36 + columns.reduce((a, c) => a + c.width, 0);
  }

  function renderHeader(): void {
    const [sortId, dir] = sort.split(":");
    const all = h("input", {
      type: "checkbox",
      "aria-label": "select all",
      class: "select-all",
      checked: rows.length > 0 && rows.every((r) => r.kind === "group" || selected.has(r.run.id)),
      onchange: () => {
        for (const r of rows) if (r.kind === "run") all.checked ? selected.add(r.run.id) : selected.delete(r.run.id);
        persist();
        renderRows(true);
        renderSelBar();
      },
    });
    replace(
      header,
      h(
        "div",
        { class: "tr th-row", style: { width: `${totalWidth()}px` } },
        h("div", { class: "td sel" }, all),
        columns.map((c) =>
          h(
            "div",
            {
              class: `td th ${c.kind}${c.numeric ? " num" : ""}${c.id === sortId ? " sorted" : ""}`,
              style: { width: `${c.width}px` },
              title: `${c.kind === "attr" ? "" : `${c.kind}.`}${c.label} (click to sort)`,
              role: "columnheader",
              dataset: { col: c.id },
              onclick: () => {
                sort = `${c.id}:${c.id === sortId && dir === "desc" ? "asc" : "desc"}`;
                persist();
                renderHeader();
                rebuild();
              },
            },
            c.kind !== "attr" ? h("span", { class: "col-kind" }, c.kind === "metrics" ? "m" : c.kind === "params" ? "p" : "t") : null,
            c.label,
            c.id === sortId ? h("span", { class: "sort-arrow" }, dir === "asc" ? " ▲" : " ▼") : null,
          ),
        ),
      ),
    );
  }

  let lastRange = "";
  function renderRows(force: boolean): void {
    if (mode !== "table") return;
    const top = scroller.scrollTop;
    const viewH = scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const n = rowCount();
    const last = Math.min(n, Math.ceil((top + viewH) / ROW_H) + OVERSCAN);
    const key = `${first}:${last}`;
    if (!force && key === lastRange) return;
    lastRange = key;
    body.style.height = `${n * ROW_H}px`;
    body.style.width = `${totalWidth()}px`;
    const frag = document.createDocumentFragment();
    for (let i = first; i < last; i++) {
      const row = rowAt(i);
      frag.appendChild(row ? renderRow(row, i) : pendingRow(i));
    }
    replace(body, frag);
  }

  function cell(c: Column, content: Node | string, cls = ""): HTMLElement {
    return h("div", { class: `td ${c.kind}${c.numeric ? " num" : ""} ${cls}`, style: { width: `${c.width}px` }, dataset: { col: c.id } }, content);
  }

  function renderRow(row: Row, i: number): HTMLElement {
    const style = { top: `${i * ROW_H}px`, width: `${totalWidth()}px` };
    if (row.kind === "group") {
      const toggle = () => {
        if (row.expanded) collapsedGroups.add(row.key);
        else collapsedGroups.delete(row.key);
        rebuild();
      };
      const gsel = h("input", {
        type: "checkbox",
        "aria-label": `select group ${row.label}`,
        checked: row.runs.length > 0 && row.runs.every((r) => selected.has(r.id)),
        onchange: () => {
          for (const r of row.runs) gsel.checked ? selected.add(r.id) : selected.delete(r.id);
          persist();
          renderRows(true);
          renderSelBar();
        },
      });
      return h(
        "div",
        { class: "tr group-row", style, dataset: { group: row.key } },
        h("div", { class: "td sel" }, gsel),
        columns.map((c) => {
          if (c.id === "attr.name") {
            return cell(c, h("span", null, h("button", { class: "twisty", "aria-label": row.expanded ? "collapse group" : "expand group", onclick: toggle }, row.expanded ? "▾" : "▸"), h("b", null, row.label), h("span", { class: "muted" }, ` (${row.stats ? row.stats.count : row.runs.length})`)));
          }
          if (c.kind === "metrics") {
            const a = row.stats ? row.stats.metrics[c.label] : aggregate(row.runs.map((r) => r.metrics[c.label]?.value).filter((v): v is number => v !== undefined));
            if (!a) return cell(c, "");
            return cell(
              c,
              h("span", { class: "agg", title: `mean ${a.mean}, std ${a.std}, min ${a.min}, max ${a.max}, n=${a.n}` }, h("span", { class: "agg-mean" }, `${fmtNum(a.mean)} ± ${fmtNum(a.std)}`), h("span", { class: "agg-range" }, `${fmtNum(a.min)} … ${fmtNum(a.max)}`)),
            );
          }
          if (c.kind === "params" || c.kind === "tags") {
            if (row.stats) return cell(c, c.id === group ? row.stats.value : "");
            const vals = new Set(row.runs.map((r) => c.text(r)));
            return cell(c, vals.size === 1 ? [...vals][0] : h("span", { class: "muted" }, `${vals.size} values`));
          }
          return cell(c, "");
        }),
      );
    }
    const r = row.run;
    const deleted = r.lifecycle === "deleted";
    const cb = h("input", {
      type: "checkbox",
      "aria-label": `select ${displayName(r)}`,
      checked: selected.has(r.id),
      onchange: () => {
        cb.checked ? selected.add(r.id) : selected.delete(r.id);
        persist();
        renderSelBar();
      },
    });
    return h(
      "div",
      { class: `tr run-row${deleted ? " deleted" : ""}${selected.has(r.id) ? " selected" : ""}`, style, dataset: { run: r.id } },
      h("div", { class: "td sel" }, cb),
      columns.map((c) => {
        if (c.id === "attr.name") {
          const toggle = row.children
            ? h(
                "button",
                {
                  class: "twisty",
                  "aria-label": row.expanded ? "collapse children" : "expand children",
                  onclick: () => {
                    row.expanded ? expanded.delete(r.id) : expanded.add(r.id);
                    rebuild();
                  },
                },
                row.expanded ? "▾" : "▸",
              )
            : h("span", { class: "twisty-space" });
          return cell(
            c,
            h(
              "span",
              { class: "name-cell", style: { paddingLeft: `${row.depth * 18}px` } },
              toggle,
              h("a", { href: `#/runs/${encodeURIComponent(r.id)}`, class: "run-link" }, displayName(r)),
              row.children ? h("span", { class: "muted" }, ` (${row.children})`) : null,
              deleted ? h("span", { class: "badge deleted" }, "deleted") : null,
            ),
          );
        }
        if (c.id === "attr.status") return cell(c, h("span", { class: `status status-${r.status.toLowerCase()}` }, r.status));
        const t = c.text(r);
        const el = cell(c, t);
        el.title = t;
        return el;
      }),
    );
  }

  scroller.addEventListener("scroll", () => requestAnimationFrame(() => renderRows(false)), { passive: true });

  // ---- the side panel (runpanel.ts): a click on a row, outside its links and boxes, opens it
  body.addEventListener("click", (e) => {
    const t = e.target as HTMLElement;
    if (t.closest("a, button, input, label")) return;
    const id = t.closest<HTMLElement>(".run-row")?.dataset.run;
    if (id) {
      setQuery({ panel: id });
      void panel.open(id);
    }
  });

  // ---- selection bar and modes
  function renderSelBar(): void {
    const ids = [...selected].filter((id) => byId.has(id));
    const del = async (path: string) => {
      if (path === "runs/delete" && !confirmAction(`Delete ${ids.length} run(s)?`)) return;
      for (const id of ids) await mlPost(path, { run_id: id }).catch(() => undefined);
      void load();
    };
    const anyDeleted = ids.some((id) => byId.get(id)?.lifecycle === "deleted");
    replace(
      selBar,
      h("span", { class: "sel-count" }, `${ids.length} selected`),
      ids.length >= 1 ? h("a", { class: "button compare-btn", href: href(["compare"], { runs: ids.slice(0, 100).join(",") }) }, `Compare (${Math.min(ids.length, 100)})`) : null,
      ids.length ? h("button", { class: "delete-runs danger", onclick: () => del("runs/delete") }, "Delete") : null,
      anyDeleted ? h("button", { class: "restore-runs", onclick: () => del("runs/restore") }, "Restore") : null,
      ids.length ? h("button", { class: "clear-sel", onclick: () => { selected.clear(); persist(); renderRows(true); renderSelBar(); } }, "Clear") : null,
    );
    replace(
      modeTabs,
      h("button", { class: `tab${mode === "table" ? " active" : ""}`, onclick: () => setMode("table") }, "Table"),
      h("button", { class: `tab charts-tab${mode === "charts" ? " active" : ""}`, onclick: () => setMode("charts") }, "Charts"),
    );
  }

  let charts: MetricChart[] = [];
  function setMode(m: string): void {
    mode = m;
    persist();
    tablePane.hidden = mode !== "table";
    chartsPane.hidden = mode !== "charts";
    renderSelBar();
    if (mode === "charts") renderCharts();
    else {
      fitHeight();
      renderRows(true);
    }
  }

  function renderCharts(): void {
    for (const c of charts) c.destroy();
    charts = [];
    const chosen = [...selected].map((id) => byId.get(id)).filter((r): r is Run => !!r);
    const shown = chosen.length ? chosen : windowed ? runs.slice(0, 10) : rows.filter((r): r is Extract<Row, { kind: "run" }> => r.kind === "run").slice(0, 10).map((r) => r.run);
    const cr: ChartRun[] = shown.map((run, i) => ({ run, color: color(i) }));
    const keys = [...new Set(shown.flatMap((r) => Object.keys(r.metrics)))].sort();
    const grid = h("div", { class: "chart-grid" });
    const controls = chartControls(chartSettings, (s) => {
      chartSettings = s;
      persist();
      for (const c of charts) c.applySettings(s);
    });
    replace(chartsPane, h("div", { class: "muted" }, chosen.length ? `${chosen.length} selected runs` : `No runs selected: showing the first ${shown.length} rows`), controls, grid);
    const io = new IntersectionObserver((entries) => {
      for (const e of entries) {
        if (!e.isIntersecting) continue;
        io.unobserve(e.target);
        charts.find((c) => c.el === e.target)?.load();
      }
    });
    for (const k of keys) {
      const mc = new MetricChart(k, cr, chartSettings);
      charts.push(mc);
      grid.appendChild(mc.el);
      io.observe(mc.el);
    }
    if (!keys.length) grid.appendChild(h("div", { class: "muted" }, "These runs have no metrics."));
  }

  // ---- loading
  function applyFilter(): void {
    filter = filterInput.value.trim();
    void load();
  }

  async function load(): Promise<void> {
    const seq = ++loadSeq;
    loading = true;
    filterErr.textContent = "";
    const view: ViewType = showDeleted ? "ALL" : "ACTIVE_ONLY";
    try {
      // Names of experiments are fetched beside the first page of runs, not before it.
      let names: Promise<void> = Promise.resolve();
      if (acrossAll) {
        const exps = await searchExperiments("ALL");
        experiments.clear();
        for (const e of exps) experiments.set(e.id, e);
        experimentIds = exps.filter((e) => showDeleted || e.lifecycle === "active").map((e) => e.id);
      } else if (experimentIds.some((id) => !experiments.has(id))) {
        names = Promise.all(experimentIds.map((id) => getExperiment(id).then((e) => void experiments.set(id, e)))).then(() => {
          const list = experimentIds.map((id) => experiments.get(id)?.name ?? id);
          title.textContent = list.length === 1 ? list[0] : `Runs of ${list.length} experiments`;
          title.title = list.join(", ");
          document.title = `${title.textContent} · labtrack`;
          if (runs.length) renderRows(true);
        });
      }
      if (await openWindowed(seq, view)) return;
      let page = await searchRunsPage(experimentIds, filter, view, FIRST_PAGE);
      if (seq !== loadSeq) return;
      void names.catch(() => undefined);
      setQuery({ filter: filter || undefined });
      persist();
      runs = page.runs;
      indexRuns();
      const firstPaint = performance.now();
      loading = !!page.next;
      afterData();
      root.dataset.firstPaint = firstPaint.toFixed(0);
      while (page.next) {
        page = await searchRunsPage(experimentIds, filter, view, PAGE, page.next);
        if (seq !== loadSeq) return;
        runs = runs.concat(page.runs);
        indexRuns();
        loading = !!page.next;
        afterData();
      }
      root.dataset.loaded = String(runs.length);
    } catch (e) {
      if (seq !== loadSeq) return;
      loading = false;
      if (e instanceof ApiError && e.status === 400) {
        // A bad filter: show the server's message, keep the rows we had.
        filterErr.textContent = e.message;
        filterInput.classList.add("invalid");
        rebuild();
      } else {
        filterErr.textContent = (e as Error).message;
      }
      return;
    }
    filterInput.classList.remove("invalid");
  }

  function indexRuns(): void {
    keysCache = null;
    byId.clear();
    maxStart = 0;
    for (const r of runs) {
      byId.set(r.id, r);
      if (r.start > maxStart) maxStart = r.start;
    }
  }

  function afterData(): void {
    fillGroupSelect();
    renderRanges();
    fitHeight(); // after the toolbars above it are drawn
    refreshColumns();
    renderHeader();
    rebuild();
    if (mode === "charts" && charts.length === 0) renderCharts();
  }

  // ---- live updates: re-read running runs and pick up new ones, no full reload
  async function poll(): Promise<void> {
    if (disposed || loading || windowed || document.hidden) return;
    const view: ViewType = showDeleted ? "ALL" : "ACTIVE_ONLY";
    const running = runs.filter((r) => r.status === "RUNNING").map((r) => r.id);
    const fresh: Run[] = [];
    try {
      for (let i = 0; i < running.length; i += 100) {
        const ids = running.slice(i, i + 100).map(quote).join(", ");
        let token: string | undefined;
        do {
          const p = await searchRunsPage(experimentIds, `attributes.run_id IN (${ids})`, view, 1000, token);
          fresh.push(...p.runs);
          token = p.next;
        } while (token);
      }
      if (maxStart > 0) {
        const clause = `attributes.start_time >= ${maxStart}`;
        const f = filter ? `${filter} and ${clause}` : clause;
        let token: string | undefined;
        do {
          const p = await searchRunsPage(experimentIds, f, view, 1000, token);
          fresh.push(...p.runs);
          token = p.next;
        } while (token);
      }
    } catch {
      return; // try again at the next tick
    }
    if (disposed || fresh.length === 0) return;
    let changed = false;
    for (const r of fresh) {
      const old = byId.get(r.id);
      if (!old) {
        runs.push(r);
        changed = true;
      } else if (JSON.stringify(old) !== JSON.stringify(r)) {
        runs[runs.indexOf(old)] = r;
        changed = true;
      }
    }
    if (!changed) return;
    const before = allKeys();
    indexRuns();
    const after = allKeys();
    if (before.metrics.length !== after.metrics.length || before.params.length !== after.params.length) {
      refreshColumns();
      renderHeader();
      fillGroupSelect();
    }
    rebuild();
    root.dataset.liveUpdates = String(Number(root.dataset.liveUpdates ?? 0) + 1);
  }
  const timer = window.setInterval(() => void poll(), LIVE_MS);
  const onResize = debounce(() => {
    fitHeight();
    fitColumns();
    renderHeader();
    renderRows(true);
  }, 100);
  window.addEventListener("resize", onResize);
  const closePicker = (e: MouseEvent) => {
    if (!picker.hidden && !picker.contains(e.target as Node) && e.target !== colBtn) picker.hidden = true;
  };
  document.addEventListener("click", closePicker);

  tablePane.hidden = mode !== "table";
  chartsPane.hidden = mode !== "charts";
  if (group) groupSel.value = group;
  renderSelBar();
  void load();
  if (q.get("panel")) void panel.open(q.get("panel") ?? "");

  return {
    dispose: () => {
      disposed = true;
      loadSeq++;
      window.clearInterval(timer);
      window.removeEventListener("resize", onResize);
      heightWatch.disconnect();
      document.removeEventListener("click", closePicker);
      for (const c of charts) c.destroy();
      tools.dispose();
    },
  };
}
