// Canvas plots for the compare view: parallel coordinates and a param-vs-metric scatter.

import { niceTicks } from "./chart";
import { h } from "./dom";
import { fmtNum } from "./format";

export interface Axis {
  label: string;
  values: (number | string | undefined)[]; // one per item
}

interface Scale {
  pos(v: number | string | undefined): number | undefined; // 0..1, bottom to top
  ticks: { at: number; text: string }[];
}

function scaleFor(values: (number | string | undefined)[]): Scale {
  const nums = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  const strs = values.filter((v): v is string => typeof v === "string");
  if (strs.length === 0 && nums.length) {
    let lo = Math.min(...nums);
    let hi = Math.max(...nums);
    if (lo === hi) {
      lo -= 1;
      hi += 1;
    }
    const pad = (hi - lo) * 0.04; // keep dots off the frame
    lo -= pad;
    hi += pad;
    return {
      pos: (v) => (typeof v === "number" && Number.isFinite(v) ? (v - lo) / (hi - lo) : undefined),
      ticks: niceTicks(lo, hi, 4).map((t) => ({ at: (t - lo) / (hi - lo), text: fmtNum(t) })),
    };
  }
  const cats = [...new Set(values.filter((v) => v !== undefined).map(String))].sort();
  const n = Math.max(1, cats.length - 1);
  return {
    pos: (v) => (v === undefined ? undefined : cats.length === 1 ? 0.5 : cats.indexOf(String(v)) / n),
    ticks: cats.slice(0, 12).map((c, i) => ({ at: cats.length === 1 ? 0.5 : i / n, text: c.length > 14 ? `${c.slice(0, 13)}…` : c })),
  };
}

function canvas(width: number, height: number): [HTMLCanvasElement, CanvasRenderingContext2D] {
  const c = h("canvas", { class: "plot-canvas" });
  const dpr = window.devicePixelRatio || 1;
  c.width = width * dpr;
  c.height = height * dpr;
  c.style.width = `${width}px`;
  c.style.height = `${height}px`;
  const ctx = c.getContext("2d")!;
  ctx.scale(dpr, dpr);
  ctx.font = "11px system-ui, sans-serif";
  return [c, ctx];
}

/** One vertical axis per param/metric, one polyline per run, coloured by the item's colour. */
export function parallelCoordinates(axes: Axis[], colors: string[], labels: string[], width = 900, height = 320): HTMLElement {
  const [c, ctx] = canvas(width, height);
  const top = 34;
  const bottom = 24;
  const left = 60;
  const right = 60;
  const scales = axes.map((a) => scaleFor(a.values));
  const ax = (i: number) => left + (axes.length === 1 ? 0 : (i * (width - left - right)) / (axes.length - 1));
  const ay = (p: number) => top + (1 - p) * (height - top - bottom);
  for (let j = 0; j < colors.length; j++) {
    ctx.strokeStyle = colors[j];
    ctx.globalAlpha = 0.8;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let pen = false;
    axes.forEach((a, i) => {
      const p = scales[i].pos(a.values[j]);
      if (p === undefined) {
        pen = false;
        return;
      }
      if (pen) ctx.lineTo(ax(i), ay(p));
      else ctx.moveTo(ax(i), ay(p));
      pen = true;
    });
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
  axes.forEach((a, i) => {
    const x = ax(i);
    ctx.strokeStyle = "#556";
    ctx.beginPath();
    ctx.moveTo(x + 0.5, top);
    ctx.lineTo(x + 0.5, height - bottom);
    ctx.stroke();
    ctx.fillStyle = "#223";
    ctx.textAlign = "center";
    ctx.fillText(a.label.length > 22 ? `${a.label.slice(0, 21)}…` : a.label, x, 14);
    ctx.fillStyle = "#667";
    ctx.textAlign = i === axes.length - 1 ? "left" : "right";
    for (const t of scales[i].ticks) ctx.fillText(t.text, x + (i === axes.length - 1 ? 4 : -4), ay(t.at) + 4);
  });
  const legend = h(
    "div",
    { class: "legend" },
    labels.map((l, j) => h("span", { class: "legend-item" }, h("span", { class: "swatch", style: { background: colors[j] } }), l)),
  );
  return h("div", { class: "plot parallel", dataset: { axes: String(axes.length), lines: String(colors.length) } }, c, legend);
}

/** x against y, one dot per run, with a hover label. */
export function scatter(x: Axis, y: Axis, colors: string[], labels: string[], width = 520, height = 340): HTMLElement {
  const [c, ctx] = canvas(width, height);
  const pad = { l: 60, r: 16, t: 12, b: 40 };
  const sx = scaleFor(x.values);
  const sy = scaleFor(y.values);
  const px = (p: number) => pad.l + p * (width - pad.l - pad.r);
  const py = (p: number) => pad.t + (1 - p) * (height - pad.t - pad.b);
  ctx.strokeStyle = "#e3e6ea";
  ctx.fillStyle = "#667";
  ctx.textAlign = "center";
  for (const t of sx.ticks) {
    ctx.beginPath();
    ctx.moveTo(px(t.at), pad.t);
    ctx.lineTo(px(t.at), height - pad.b);
    ctx.stroke();
    ctx.fillText(t.text, px(t.at), height - pad.b + 14);
  }
  ctx.textAlign = "right";
  for (const t of sy.ticks) {
    ctx.beginPath();
    ctx.moveTo(pad.l, py(t.at));
    ctx.lineTo(width - pad.r, py(t.at));
    ctx.stroke();
    ctx.fillText(t.text, pad.l - 6, py(t.at) + 4);
  }
  ctx.fillStyle = "#223";
  ctx.textAlign = "center";
  ctx.fillText(x.label, pad.l + (width - pad.l - pad.r) / 2, height - 6);
  const pts: { X: number; Y: number; j: number }[] = [];
  for (let j = 0; j < colors.length; j++) {
    const a = sx.pos(x.values[j]);
    const b = sy.pos(y.values[j]);
    if (a === undefined || b === undefined) continue;
    const X = px(a);
    const Y = py(b);
    pts.push({ X, Y, j });
    ctx.fillStyle = colors[j];
    ctx.beginPath();
    ctx.arc(X, Y, 5, 0, Math.PI * 2);
    ctx.fill();
  }
  const tip = h("div", { class: "chart-tip", hidden: true });
  c.addEventListener("mousemove", (e) => {
    const r = c.getBoundingClientRect();
    const mx = e.clientX - r.left;
    const my = e.clientY - r.top;
    let best: (typeof pts)[number] | undefined;
    let bd = 144;
    for (const p of pts) {
      const d = (p.X - mx) ** 2 + (p.Y - my) ** 2;
      if (d < bd) {
        bd = d;
        best = p;
      }
    }
    if (!best) {
      tip.hidden = true;
      return;
    }
    tip.hidden = false;
    tip.textContent = `${labels[best.j]}: ${x.label}=${String(x.values[best.j])}, ${y.label}=${fmtNum(Number(y.values[best.j]))}`;
    tip.style.left = `${Math.min(best.X + 10, width - 200)}px`;
    tip.style.top = `${best.Y + 10}px`;
  });
  c.addEventListener("mouseleave", () => (tip.hidden = true));
  return h("div", { class: "plot scatter", dataset: { points: String(pts.length) } }, h("div", { class: "muted y-label" }, `y: ${y.label}`), h("div", { class: "plot-wrap" }, c, tip));
}
