// Columns of the runs table: attributes, latest metrics, params and tags, each with a getter
// for sorting, grouping and filtering. Column ids: "attr.<name>", "metrics.<k>", "params.<k>", "tags.<k>",
// and "summary.<stat>.<k>" (summaries.ts).

import { fmtDuration, fmtNum, fmtTime, runDuration } from "./format";
import { Experiment, Run } from "./model";
import { parseSummaryId, STAT_LABEL, summaryValue } from "./summaries";

export interface Column {
  id: string;
  label: string;
  kind: "attr" | "metrics" | "params" | "tags";
  width: number;
  numeric: boolean;
  get(run: Run): number | string | undefined;
  text(run: Run): string;
}

export const ATTRS = ["name", "status", "start", "duration", "user", "experiment", "source", "version", "id"] as const;

const ATTR_LABEL: Record<string, string> = {
  name: "Run name",
  status: "Status",
  start: "Created",
  duration: "Duration",
  user: "User",
  experiment: "Experiment",
  source: "Source",
  version: "Git commit",
  id: "Run ID",
};

/** Parses a param or tag value as a number when all of it is one, for sorting and plots. */
export function asNumber(v: string | undefined): number | undefined {
  if (v === undefined || v.trim() === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

export function column(id: string, experiments: Map<string, Experiment>): Column {
  const dot = id.indexOf(".");
  const kind = id.slice(0, dot) as Column["kind"];
  const key = id.slice(dot + 1);
  const summary = parseSummaryId(id);
  if (summary) {
    // A summary of a metric's whole history (summaries.ts), shown and sorted as a metric.
    const [stat, mkey] = summary;
    return {
      id, label: `${mkey} ${STAT_LABEL[stat]}`, kind: "metrics", width: 120, numeric: true,
      get: (r) => summaryValue(r, stat, mkey),
      text: (r) => {
        const v = summaryValue(r, stat, mkey);
        return v === undefined ? "" : stat === "best_step" ? String(v) : fmtNum(v);
      },
    };
  }
  if (kind === "metrics") {
    return {
      id, label: key, kind, width: 130, numeric: true,
      get: (r) => r.metrics[key]?.value,
      text: (r) => (r.metrics[key] ? fmtNum(r.metrics[key].value) : ""),
    };
  }
  if (kind === "params" || kind === "tags") {
    const src = (r: Run) => (kind === "params" ? r.params : r.tags)[key];
    return {
      id, label: key, kind, width: kind === "params" ? 100 : 130, numeric: false,
      get: (r) => {
        const v = src(r);
        const n = asNumber(v);
        return n === undefined ? v : n;
      },
      text: (r) => src(r) ?? "",
    };
  }
  const attr = key;
  const base = { id, label: ATTR_LABEL[attr] ?? attr, kind: "attr" as const, numeric: false, width: 120 };
  switch (attr) {
    case "name":
      return { ...base, width: 220, get: (r) => r.name, text: (r) => r.name };
    case "status":
      return { ...base, width: 96, get: (r) => r.status, text: (r) => r.status };
    case "start":
      return { ...base, width: 160, numeric: true, get: (r) => r.start, text: (r) => fmtTime(r.start) };
    case "duration":
      return {
        ...base, width: 90, numeric: true,
        get: (r) => runDuration(r.start, r.end, r.status),
        text: (r) => fmtDuration(runDuration(r.start, r.end, r.status)),
      };
    case "user":
      return { ...base, width: 100, get: (r) => r.user, text: (r) => r.user };
    case "experiment":
      return {
        ...base, width: 140,
        get: (r) => experiments.get(r.experimentId)?.name ?? r.experimentId,
        text: (r) => experiments.get(r.experimentId)?.name ?? r.experimentId,
      };
    case "source":
      return { ...base, width: 160, get: (r) => r.tags["mlflow.source.name"], text: (r) => r.tags["mlflow.source.name"] ?? "" };
    case "version":
      return {
        ...base, width: 80,
        get: (r) => r.tags["mlflow.source.git.commit"],
        text: (r) => (r.tags["mlflow.source.git.commit"] ?? "").slice(0, 8),
      };
    default:
      return { ...base, width: 260, get: (r) => r.id, text: (r) => r.id };
  }
}

export function compareValues(a: number | string | undefined, b: number | string | undefined): number {
  const am = a === undefined || (typeof a === "number" && Number.isNaN(a));
  const bm = b === undefined || (typeof b === "number" && Number.isNaN(b));
  if (am || bm) return am && bm ? 0 : am ? 1 : -1; // missing values last
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "number") return -1;
  if (typeof b === "number") return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export interface Agg {
  n: number;
  mean: number;
  std: number;
  min: number;
  max: number;
}

export function aggregate(values: number[]): Agg | undefined {
  const v = values.filter((x) => Number.isFinite(x));
  if (v.length === 0) return undefined;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const x of v) {
    sum += x;
    if (x < min) min = x;
    if (x > max) max = x;
  }
  const mean = sum / v.length;
  let ss = 0;
  for (const x of v) ss += (x - mean) * (x - mean);
  const std = v.length > 1 ? Math.sqrt(ss / (v.length - 1)) : 0;
  return { n: v.length, mean, std, min, max };
}

// Column widths fitted to what they show: the whole header (with its kind badge and sort
// arrow) and the widest value among the first rows, then stretched so the columns fill the
// table's width.  Values wider than MAX_WIDTH are cut (with their full text on hover).
const FIT_SAMPLE = 300;
const MIN_WIDTH = 56;
const MAX_WIDTH = 420;
const CELL_PAD = 18; // .td's padding (8 + 8) and a pixel each side for rounding

/** The text of a run's name cell, as the table shows it (for fitting its width). */
export type NameOf = (run: Run) => string;

export function fitWidths(
  columns: Column[],
  runs: Run[],
  available: number,
  measure: (text: string, header: boolean) => number,
  nameOf: NameOf,
): number[] {
  const sample = runs.length > FIT_SAMPLE ? runs.slice(0, FIT_SAMPLE) : runs;
  const natural = columns.map((c) => {
    let w = measure(c.label, true) + (c.kind !== "attr" ? 20 : 0) + 18; // kind badge, sort arrow
    for (const r of sample) {
      const t = c.id === "attr.name" ? nameOf(r) : c.text(r);
      if (t) w = Math.max(w, measure(t, false) + (c.id === "attr.name" ? 56 : c.id === "attr.status" ? 14 : 0));
    }
    return Math.min(MAX_WIDTH, Math.max(MIN_WIDTH, Math.ceil(w + CELL_PAD)));
  });
  const total = natural.reduce((a, b) => a + b, 0);
  if (total >= available || total === 0) return natural;
  // Stretch: each column gets a share of the room left in proportion to its width.
  const widths = natural.map((w) => Math.floor(w + ((available - total) * w) / total));
  widths[widths.length - 1] += available - widths.reduce((a, b) => a + b, 0);
  return widths;
}
