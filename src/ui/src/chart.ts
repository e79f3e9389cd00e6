// A small canvas line chart made for many runs and long (server-downsampled) histories:
// per-series x arrays, linear or log y, box zoom (drag), pan (shift+drag), ctrl+wheel zoom,
// double-click reset, and a hover readout of every series at the cursor.

import { h } from "./dom";
import { fmtDuration, fmtNum } from "./format";

export interface Series {
  label: string;
  color: string;
  x: Float64Array;
  y: Float64Array;
  raw?: Float64Array; // unsmoothed values, drawn faint behind y
  band?: [Float64Array, Float64Array]; // a filled band from band[0] to band[1] (mean ± std of a group)
}

export type XKind = "number" | "duration" | "time";

export interface ChartOptions {
  xKind: XKind;
  logY: boolean;
  height?: number;
  // user zoomed or panned; `settled` when the gesture is over (a drag's mouse-up), not one of a wheel's many steps
  onView?: (x0: number, x1: number, settled: boolean) => void;
  onReset?: () => void;
}

interface View {
  x0: number;
  x1: number;
}

const PAD = { l: 58, r: 12, t: 10, b: 26 };

export function niceTicks(lo: number, hi: number, count: number): number[] {
  if (!(hi > lo)) return [lo];
  const span = hi - lo;
  const raw = span / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  const step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

function fmtX(v: number, kind: XKind, span: number): string {
  if (kind === "duration") return fmtDuration(v * 1000);
  if (kind === "time") {
    const d = new Date(v);
    const p = (n: number) => String(n).padStart(2, "0");
    return span > 2 * 86400e3 ? `${d.getMonth() + 1}/${d.getDate()} ${p(d.getHours())}:${p(d.getMinutes())}` : `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  }
  return fmtNum(v);
}

function lowerBound(a: Float64Array, v: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const m = (lo + hi) >> 1;
    if (a[m] < v) lo = m + 1;
    else hi = m;
  }
  return lo;
}

export class LineChart {
  readonly el: HTMLDivElement;
  private base: HTMLCanvasElement;
  private over: HTMLCanvasElement;
  private tip: HTMLDivElement;
  private series: Series[] = [];
  private view: View | null = null;
  private w = 0;
  private hgt = 0;
  private yr = { lo: 0, hi: 1 };
  private drag: { x: number; pan: boolean; v: View } | null = null;
  private ro: ResizeObserver;
  lastDrawMs = 0;

  constructor(private opts: ChartOptions) {
    this.base = h("canvas", { class: "chart-base" });
    this.over = h("canvas", { class: "chart-over" });
    this.tip = h("div", { class: "chart-tip", hidden: true });
    this.el = h("div", { class: "chart", style: { height: `${opts.height ?? 240}px` } }, this.base, this.over, this.tip);
    this.over.addEventListener("mousedown", (e) => this.down(e));
    this.over.addEventListener("mousemove", (e) => this.move(e));
    this.over.addEventListener("mouseleave", () => this.leave());
    window.addEventListener("mouseup", (e) => this.up(e));
    this.over.addEventListener("dblclick", () => this.reset());
    this.over.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(this.el);
  }

  setOptions(o: Partial<ChartOptions>): void {
    Object.assign(this.opts, o);
    this.draw();
  }

  setData(series: Series[], keepView = true): void {
    this.series = series;
    if (!keepView) this.view = null;
    this.draw();
  }

  getView(): View | null {
    return this.view ? { ...this.view } : null;
  }

  setView(v: View | null): void {
    this.view = v;
    this.draw();
  }

  reset(): void {
    this.view = null;
    this.draw();
    this.opts.onReset?.();
  }

  destroy(): void {
    this.ro.disconnect();
  }

  private resize(): void {
    const r = this.el.getBoundingClientRect();
    if (r.width === 0) return;
    this.w = r.width;
    this.hgt = r.height;
    const dpr = window.devicePixelRatio || 1;
    for (const c of [this.base, this.over]) {
      c.width = Math.round(r.width * dpr);
      c.height = Math.round(r.height * dpr);
      c.style.width = `${r.width}px`;
      c.style.height = `${r.height}px`;
      c.getContext("2d")!.setTransform(dpr, 0, 0, dpr, 0, 0);
    }
    this.draw();
  }

  private fullX(): View {
    let lo = Infinity;
    let hi = -Infinity;
    for (const s of this.series) {
      if (s.x.length === 0) continue;
      lo = Math.min(lo, s.x[0]);
      hi = Math.max(hi, s.x[s.x.length - 1]);
    }
    if (!Number.isFinite(lo)) return { x0: 0, x1: 1 };
    if (lo === hi) return { x0: lo - 1, x1: hi + 1 };
    return { x0: lo, x1: hi };
  }

  private xv(): View {
    return this.view ?? this.fullX();
  }

  private fitY(v: View): void {
    let lo = Infinity;
    let hi = -Infinity;
    const log = this.opts.logY;
    for (const s of this.series) {
      const i0 = Math.max(0, lowerBound(s.x, v.x0) - 1);
      const i1 = Math.min(s.x.length, lowerBound(s.x, v.x1) + 1);
      for (const arr of [s.y, ...(s.raw ? [s.raw] : []), ...(s.band ?? [])]) {
        for (let i = i0; i < i1; i++) {
          const y = arr[i];
          if (!Number.isFinite(y) || (log && y <= 0)) continue;
          if (y < lo) lo = y;
          if (y > hi) hi = y;
        }
      }
    }
    if (!Number.isFinite(lo)) {
      lo = log ? 1 : 0;
      hi = log ? 10 : 1;
    }
    if (log) {
      lo = Math.log10(lo);
      hi = Math.log10(hi);
    }
    if (lo === hi) {
      lo -= 0.5;
      hi += 0.5;
    } else {
      const pad = (hi - lo) * 0.05;
      lo -= pad;
      hi += pad;
    }
    this.yr = { lo, hi };
  }

  private px(x: number, v: View): number {
    return PAD.l + ((x - v.x0) / (v.x1 - v.x0)) * (this.w - PAD.l - PAD.r);
  }

  private py(y: number): number {
    const t = this.opts.logY ? Math.log10(y) : y;
    return PAD.t + (1 - (t - this.yr.lo) / (this.yr.hi - this.yr.lo)) * (this.hgt - PAD.t - PAD.b);
  }

  private dataX(px: number): number {
    const v = this.xv();
    return v.x0 + ((px - PAD.l) / (this.w - PAD.l - PAD.r)) * (v.x1 - v.x0);
  }

  draw(): void {
    if (!this.w) return;
    const t0 = performance.now();
    const ctx = this.base.getContext("2d")!;
    ctx.clearRect(0, 0, this.w, this.hgt);
    const v = this.xv();
    this.fitY(v);
    const pw = this.w - PAD.l - PAD.r;
    const ph = this.hgt - PAD.t - PAD.b;
    ctx.font = "11px system-ui, sans-serif";
    ctx.strokeStyle = "#e3e6ea";
    ctx.fillStyle = "#5b6470";
    ctx.lineWidth = 1;
    // y grid
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    const yt = niceTicks(this.yr.lo, this.yr.hi, Math.max(2, Math.floor(ph / 40)));
    const logTicks = this.opts.logY ? yt.filter((t) => Number.isInteger(t)) : yt;
    const ys = this.opts.logY && logTicks.length >= 2 ? logTicks : yt;
    for (const t of ys) {
      const y = this.opts.logY ? this.py(Math.pow(10, t)) : this.py(t);
      ctx.beginPath();
      ctx.moveTo(PAD.l, Math.round(y) + 0.5);
      ctx.lineTo(PAD.l + pw, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.fillText(fmtNum(this.opts.logY ? Number(Math.pow(10, t).toPrecision(3)) : t), PAD.l - 6, y);
    }
    // x grid
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const span = v.x1 - v.x0;
    const xt = niceTicks(v.x0, v.x1, Math.max(2, Math.floor(pw / 90)));
    for (const t of xt) {
      const x = this.px(t, v);
      ctx.beginPath();
      ctx.moveTo(Math.round(x) + 0.5, PAD.t);
      ctx.lineTo(Math.round(x) + 0.5, PAD.t + ph);
      ctx.stroke();
      ctx.fillText(fmtX(t, this.opts.xKind, span), x, PAD.t + ph + 6);
    }
    ctx.strokeStyle = "#aab2bd";
    ctx.strokeRect(PAD.l + 0.5, PAD.t + 0.5, pw, ph);
    // series
    ctx.save();
    ctx.beginPath();
    ctx.rect(PAD.l, PAD.t, pw, ph);
    ctx.clip();
    for (const s of this.series) {
      if (s.band) this.fillBand(ctx, s.x, s.band[0], s.band[1], s.color, v);
      if (s.raw) this.line(ctx, s.x, s.raw, s.color, v, 0.25);
      this.line(ctx, s.x, s.y, s.color, v, 1);
    }
    ctx.restore();
    this.lastDrawMs = performance.now() - t0;
    this.el.dataset.drawMs = this.lastDrawMs.toFixed(1);
    this.el.dataset.points = String(this.series.reduce((a, s) => a + s.x.length, 0));
  }

  private line(ctx: CanvasRenderingContext2D, xs: Float64Array, ys: Float64Array, color: string, v: View, alpha: number): void {
    const i0 = Math.max(0, lowerBound(xs, v.x0) - 1);
    const i1 = Math.min(xs.length, lowerBound(xs, v.x1) + 1);
    ctx.globalAlpha = alpha;
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let pen = false;
    let single = true;
    for (let i = i0; i < i1; i++) {
      const y = ys[i];
      if (!Number.isFinite(y) || (this.opts.logY && y <= 0)) {
        pen = false;
        continue;
      }
      const X = this.px(xs[i], v);
      const Y = this.py(y);
      if (pen) {
        ctx.lineTo(X, Y);
        single = false;
      } else ctx.moveTo(X, Y);
      pen = true;
    }
    ctx.stroke();
    if (single && i1 - i0 === 1 && Number.isFinite(ys[i0])) {
      // one point: draw a dot so it is visible
      ctx.fillStyle = color;
      ctx.beginPath();
      ctx.arc(this.px(xs[i0], v), this.py(ys[i0]), 3, 0, Math.PI * 2);
      ctx.fill();
    }
    ctx.globalAlpha = 1;
  }

  /** The area between lo and hi, faint, in runs of finite points (a gap where either is missing). */
  private fillBand(ctx: CanvasRenderingContext2D, xs: Float64Array, lo: Float64Array, hi: Float64Array, color: string, v: View): void {
    const i0 = Math.max(0, lowerBound(xs, v.x0) - 1);
    const i1 = Math.min(xs.length, lowerBound(xs, v.x1) + 1);
    const ok = (i: number) => Number.isFinite(lo[i]) && Number.isFinite(hi[i]) && !(this.opts.logY && lo[i] <= 0);
    ctx.globalAlpha = 0.18;
    ctx.fillStyle = color;
    for (let a = i0; a < i1; ) {
      if (!ok(a)) {
        a++;
        continue;
      }
      let b = a;
      while (b + 1 < i1 && ok(b + 1)) b++;
      ctx.beginPath();
      for (let i = a; i <= b; i++) ctx.lineTo(this.px(xs[i], v), this.py(hi[i]));
      for (let i = b; i >= a; i--) ctx.lineTo(this.px(xs[i], v), this.py(lo[i]));
      ctx.closePath();
      ctx.fill();
      a = b + 1;
    }
    ctx.globalAlpha = 1;
  }

  private local(e: MouseEvent): { x: number; y: number } {
    const r = this.over.getBoundingClientRect();
    return { x: e.clientX - r.left, y: e.clientY - r.top };
  }

  private down(e: MouseEvent): void {
    if (e.button !== 0) return;
    const p = this.local(e);
    this.drag = { x: p.x, pan: e.shiftKey, v: this.xv() };
    e.preventDefault();
  }

  private up(e: MouseEvent): void {
    if (!this.drag) return;
    const d = this.drag;
    this.drag = null;
    const p = this.local(e);
    if (d.pan) {
      if (Math.abs(p.x - d.x) > 2) this.opts.onView?.(this.xv().x0, this.xv().x1, true);
      return;
    }
    const a = Math.min(d.x, p.x);
    const b = Math.max(d.x, p.x);
    this.clearOverlay();
    if (b - a < 5) return;
    const x0 = this.dataX(Math.max(a, PAD.l));
    const x1 = this.dataX(Math.min(b, this.w - PAD.r));
    if (!(x1 > x0)) return;
    this.view = { x0, x1 };
    this.draw();
    this.opts.onView?.(x0, x1, true);
  }

  private wheel(e: WheelEvent): void {
    if (!e.ctrlKey && !e.metaKey && !e.altKey) return;
    e.preventDefault();
    const v = this.xv();
    const at = this.dataX(this.local(e).x);
    const f = e.deltaY > 0 ? 1.25 : 0.8;
    this.view = { x0: at - (at - v.x0) * f, x1: at + (v.x1 - at) * f };
    this.draw();
    this.opts.onView?.(this.view.x0, this.view.x1, false);
  }

  private clearOverlay(): CanvasRenderingContext2D {
    const ctx = this.over.getContext("2d")!;
    ctx.clearRect(0, 0, this.w, this.hgt);
    return ctx;
  }

  private leave(): void {
    if (!this.drag) {
      this.clearOverlay();
      this.tip.hidden = true;
    }
  }

  private move(e: MouseEvent): void {
    const p = this.local(e);
    const ctx = this.clearOverlay();
    if (this.drag) {
      if (this.drag.pan) {
        const dv = this.drag.v;
        const dx = ((p.x - this.drag.x) / (this.w - PAD.l - PAD.r)) * (dv.x1 - dv.x0);
        this.view = { x0: dv.x0 - dx, x1: dv.x1 - dx };
        this.draw();
      } else {
        ctx.fillStyle = "rgba(31,95,139,0.12)";
        ctx.fillRect(Math.min(this.drag.x, p.x), PAD.t, Math.abs(p.x - this.drag.x), this.hgt - PAD.t - PAD.b);
      }
      return;
    }
    if (p.x < PAD.l || p.x > this.w - PAD.r || this.series.length === 0) {
      this.tip.hidden = true;
      return;
    }
    const x = this.dataX(p.x);
    const v = this.xv();
    ctx.strokeStyle = "#889";
    ctx.beginPath();
    ctx.moveTo(Math.round(p.x) + 0.5, PAD.t);
    ctx.lineTo(Math.round(p.x) + 0.5, this.hgt - PAD.b);
    ctx.stroke();
    const rows: { s: Series; y: number; x: number }[] = [];
    for (const s of this.series) {
      if (s.x.length === 0) continue;
      let i = lowerBound(s.x, x);
      if (i >= s.x.length || (i > 0 && x - s.x[i - 1] < s.x[i] - x)) i = Math.max(0, i - 1);
      const X = this.px(s.x[i], v);
      if (Math.abs(X - p.x) > 40) continue;
      rows.push({ s, y: s.y[i], x: s.x[i] });
      if (Number.isFinite(s.y[i]) && !(this.opts.logY && s.y[i] <= 0)) {
        ctx.fillStyle = s.color;
        ctx.beginPath();
        ctx.arc(X, this.py(s.y[i]), 3.5, 0, Math.PI * 2);
        ctx.fill();
      }
    }
    if (rows.length === 0) {
      this.tip.hidden = true;
      return;
    }
    rows.sort((a, b) => (b.y || 0) - (a.y || 0));
    const tip = this.tip;
    while (tip.firstChild) tip.removeChild(tip.firstChild);
    const span = v.x1 - v.x0;
    tip.appendChild(h("div", { class: "tip-x" }, fmtX(rows[0].x, this.opts.xKind, span)));
    for (const r of rows.slice(0, 12)) {
      tip.appendChild(
        h("div", { class: "tip-row" }, h("span", { class: "swatch", style: { background: r.s.color } }), h("span", { class: "tip-label" }, r.s.label), h("b", null, fmtNum(r.y))),
      );
    }
    if (rows.length > 12) tip.appendChild(h("div", { class: "muted" }, `+${rows.length - 12} more`));
    tip.hidden = false;
    const left = p.x + 14 + 220 > this.w ? p.x - 14 - 220 : p.x + 14;
    tip.style.left = `${Math.max(0, left)}px`;
    tip.style.top = `${PAD.t}px`;
  }
}

/** TensorBoard-style exponential moving average, debiased at the start. */
export function smooth(y: Float64Array, weight: number): Float64Array {
  const out = new Float64Array(y.length);
  let last = 0;
  let n = 0;
  for (let i = 0; i < y.length; i++) {
    const v = y[i];
    if (!Number.isFinite(v)) {
      out[i] = v;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    n++;
    out[i] = last / (1 - Math.pow(weight, n));
  }
  return out;
}
