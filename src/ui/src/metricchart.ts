// One metric of many runs on one chart: fetches downsampled series, applies the x-axis mode,
// smoothing and log scale, and refetches the visible step window after a zoom.

import { LineChart, Series, smooth, XKind } from "./chart";
import { h } from "./dom";
import { displayName, Run, SeriesPoint } from "./model";
import { Downsampled, fetchSeries, pool } from "./series";

export interface ChartRun {
  run: Run;
  color: string;
}

export type XMode = "step" | "relative" | "wall";

export interface ChartSettings {
  x: XMode;
  smoothing: number;
  logY: boolean;
}

export function parseSettings(q: URLSearchParams): ChartSettings {
  const x = q.get("x");
  return {
    x: x === "relative" || x === "wall" ? x : "step",
    smoothing: Math.min(0.99, Math.max(0, Number(q.get("smooth") || 0) || 0)),
    logY: q.get("log") === "1",
  };
}

export function settingsQuery(s: ChartSettings): Record<string, string | undefined> {
  return { x: s.x === "step" ? undefined : s.x, smooth: s.smoothing ? String(s.smoothing) : undefined, log: s.logY ? "1" : undefined };
}

/** The x-axis / smoothing / log-scale controls shared by every chart on a page. */
export function chartControls(initial: ChartSettings, onChange: (s: ChartSettings) => void): HTMLElement {
  let s = { ...initial };
  const set = (patch: Partial<ChartSettings>) => {
    s = { ...s, ...patch };
    onChange(s);
  };
  const xSel = h(
    "select",
    { "aria-label": "x axis", class: "x-mode", onchange: () => set({ x: xSel.value as XMode }) },
    h("option", { value: "step" }, "Step"),
    h("option", { value: "relative" }, "Relative time"),
    h("option", { value: "wall" }, "Wall time"),
  );
  xSel.value = s.x;
  const label = h("span", { class: "smooth-value" }, s.smoothing.toFixed(2));
  const slider = h("input", {
    type: "range",
    min: "0",
    max: "0.99",
    step: "0.01",
    value: String(s.smoothing),
    "aria-label": "smoothing",
    class: "smoothing",
    oninput: () => {
      label.textContent = Number(slider.value).toFixed(2);
    },
    onchange: () => set({ smoothing: Number(slider.value) }),
  });
  const log = h("input", { type: "checkbox", class: "log-y", checked: s.logY, onchange: () => set({ logY: log.checked }) });
  return h(
    "div",
    { class: "chart-controls" },
    h("label", null, "X axis ", xSel),
    h("label", null, "Smoothing ", slider, label),
    h("label", null, log, " Log scale"),
    h("span", { class: "muted hint" }, "Drag to zoom · Shift+drag to pan · Ctrl+wheel zooms · double-click resets"),
  );
}

interface RunData {
  full?: Downsampled;
  zoom?: Downsampled;
  zoomWindow?: [number, number];
  error?: string;
}

export class MetricChart {
  readonly el: HTMLElement;
  private chart: LineChart;
  private data = new Map<string, RunData>();
  private info: HTMLElement;
  private zoomSeq = 0;
  private zoomTimer: number | undefined;

  constructor(
    readonly key: string,
    private runs: ChartRun[],
    private settings: ChartSettings,
    height = 240,
  ) {
    this.chart = new LineChart({
      xKind: xKind(settings.x),
      logY: settings.logY,
      height,
      onView: (x0, x1, settled) => this.scheduleZoom(x0, x1, settled),
      onReset: () => this.resetZoom(),
    });
    this.info = h("span", { class: "muted chart-info" }, "loading…");
    const legend = h(
      "div",
      { class: "legend" },
      runs.slice(0, 30).map((r) =>
        h("a", { class: "legend-item", href: `#/runs/${encodeURIComponent(r.run.id)}` }, h("span", { class: "swatch", style: { background: r.color } }), displayName(r.run)),
      ),
      runs.length > 30 ? h("span", { class: "muted" }, `+${runs.length - 30} more`) : null,
    );
    this.el = h(
      "div",
      { class: "chart-card", dataset: { metric: key } },
      h("div", { class: "chart-head" }, h("b", { class: "chart-title" }, key), this.info),
      this.chart.el,
      runs.length > 1 ? legend : null,
    );
  }

  private maxPoints(): number {
    return pointsPerRun(this.runs.length);
  }

  async load(): Promise<void> {
    const t0 = performance.now();
    const mp = this.maxPoints();
    await pool(this.runs, 6, async (r) => {
      try {
        this.data.set(r.run.id, { full: await fetchSeries(r.run.id, this.key, mp) });
      } catch (e) {
        this.data.set(r.run.id, { error: String((e as Error).message || e) });
      }
    });
    this.render(false);
    this.el.dataset.loadMs = (performance.now() - t0).toFixed(1);
    this.el.dataset.ready = "1";
  }

  applySettings(s: ChartSettings): void {
    const xChanged = s.x !== this.settings.x;
    this.settings = s;
    this.chart.setOptions({ xKind: xKind(s.x), logY: s.logY });
    this.render(!xChanged);
  }

  private points(r: ChartRun): SeriesPoint[] {
    const d = this.data.get(r.run.id);
    if (!d || !d.full) return [];
    if (!d.zoom || !d.zoomWindow) return d.full.points;
    const [a, b] = d.zoomWindow;
    return [...d.full.points.filter((p) => p.step < a), ...d.zoom.points, ...d.full.points.filter((p) => p.step > b)];
  }

  private xOf(r: ChartRun, pts: SeriesPoint[]): (p: SeriesPoint) => number {
    return xOf(this.settings.x, r.run, pts);
  }

  private render(keepView: boolean): void {
    const series: Series[] = [];
    let total = 0;
    let shown = 0;
    let down = false;
    let counted = true;
    const errors: string[] = [];
    for (const r of this.runs) {
      const d = this.data.get(r.run.id);
      if (d?.error) errors.push(d.error);
      if (!d?.full) continue;
      total += d.full.total;
      if (d.full.exact === false) counted = false;
      down = down || d.full.downsampled;
      const pts = this.points(r);
      const fx = this.xOf(r, pts);
      const pairs = pts.map((p) => [fx(p), p.value] as [number, number]);
      if (this.settings.x !== "step") pairs.sort((a, b) => a[0] - b[0]);
      const x = Float64Array.from(pairs, (p) => p[0]);
      const y = Float64Array.from(pairs, (p) => p[1]);
      shown += x.length;
      const s = this.settings.smoothing;
      series.push({ label: displayName(r.run), color: r.color, x, y: s > 0 ? smooth(y, s) : y, raw: s > 0 ? y : undefined });
    }
    this.chart.setData(series, keepView);
    const parts = [counted ? `${total.toLocaleString()} points` : `more than ${(total - 1).toLocaleString()} points`];
    if (down) parts.push(`${shown.toLocaleString()} drawn (downsampled, min/max kept)`);
    if (errors.length) parts.push(`error: ${errors[0]}`);
    this.info.textContent = parts.join(" · ");
    this.el.dataset.total = String(total);
    this.el.dataset.shown = String(shown);
  }

  /** A drag's window is fetched at once; a wheel's steps wait until it rests for 150 ms. */
  private scheduleZoom(x0: number, x1: number, settled: boolean): void {
    if (this.zoomTimer !== undefined) window.clearTimeout(this.zoomTimer);
    this.zoomTimer = undefined;
    if (settled) void this.zoom(x0, x1);
    else this.zoomTimer = window.setTimeout(() => void this.zoom(x0, x1), 150);
  }

  /** Turns the visible x window into a step window and asks the server for finer points there. */
  private async zoom(x0: number, x1: number): Promise<void> {
    const seq = ++this.zoomSeq;
    const mp = this.maxPoints();
    const todo: { r: ChartRun; a: number; b: number }[] = [];
    for (const r of this.runs) {
      const d = this.data.get(r.run.id);
      if (!d?.full || !d.full.downsampled) continue;
      const pts = d.full.points;
      let a: number;
      let b: number;
      if (this.settings.x === "step") {
        a = x0;
        b = x1;
      } else {
        const fx = this.xOf(r, pts);
        const inside = pts.map((p, i) => ({ x: fx(p), i })).filter((q) => q.x >= x0 && q.x <= x1);
        if (inside.length === 0) continue;
        const lo = Math.max(0, Math.min(...inside.map((q) => q.i)) - 1);
        const hi = Math.min(pts.length - 1, Math.max(...inside.map((q) => q.i)) + 1);
        a = pts[lo].step;
        b = pts[hi].step;
      }
      todo.push({ r, a: Math.floor(a), b: Math.ceil(b) });
    }
    if (todo.length === 0) return;
    const results = await pool(todo, 6, async (t) => {
      try {
        return await fetchSeries(t.r.run.id, this.key, mp, t.a, t.b);
      } catch {
        return undefined;
      }
    });
    if (seq !== this.zoomSeq) return;
    todo.forEach((t, i) => {
      const d = this.data.get(t.r.run.id);
      const res = results[i];
      if (d && res) {
        d.zoom = res;
        d.zoomWindow = [t.a, t.b];
      }
    });
    this.el.dataset.zoomed = String(seq);
    this.render(true);
  }

  private resetZoom(): void {
    this.zoomSeq++;
    for (const d of this.data.values()) {
      d.zoom = undefined;
      d.zoomWindow = undefined;
    }
    this.render(false);
  }

  destroy(): void {
    this.chart.destroy();
  }
}

/** How many points to ask the server for per run when a chart shows `runs` runs (~8,000 in all). */
export function pointsPerRun(runs: number): number {
  return Math.max(200, Math.min(2000, Math.floor(8000 / Math.max(1, runs))));
}

/** A point's x on a run's chart: its step, its wall time, or seconds since the run started. */
export function xOf(mode: XMode, run: Run, pts: SeriesPoint[]): (p: SeriesPoint) => number {
  if (mode === "step") return (p) => p.step;
  if (mode === "wall") return (p) => p.timestamp;
  let t0 = run.start;
  if (!Number.isFinite(t0) || t0 <= 0) t0 = pts.length ? Math.min(...pts.map((p) => p.timestamp)) : 0;
  return (p) => (p.timestamp - t0) / 1000;
}

export function xKind(x: XMode): XKind {
  return x === "step" ? "number" : x === "relative" ? "duration" : "time";
}

