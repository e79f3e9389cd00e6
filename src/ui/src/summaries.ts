// Metric summary columns of the runs table (issue 20): the min, max and last value of a
// metric over its whole history, and its best step (the step of the min or the max, by
// direction.ts). Column ids "summary.<stat>.<key>"; the values come from the server's
// runs/metric-summaries (one row per run and key), fetched for the runs in the table and kept
// here by run id. Filtering and server-side order use the filter grammar's labtrack extension,
// metrics.`<key>`.min|max|last.

import { ltPost } from "./api";
import { metricDirection } from "./direction";
import { Run } from "./model";

export const STATS = ["min", "max", "last", "best_step"] as const;
export type Stat = (typeof STATS)[number];
export const STAT_LABEL: Record<Stat, string> = { min: "min", max: "max", last: "last", best_step: "best step" };

export interface Summary {
  min: number | null;
  max: number | null;
  last: number | null;
  min_step: number | null;
  max_step: number | null;
  last_step: number | null;
}

const cache = new Map<string, Record<string, Summary>>(); // run id -> key -> summary
const fetchedKeys = new Map<string, Set<string>>(); // run id -> keys asked for (present or not)
const MAX_CACHED = 200_000;

export function summaryId(stat: Stat, key: string): string {
  return `summary.${stat}.${key}`;
}

/** [stat, key] of a summary column id, or undefined. */
export function parseSummaryId(id: string): [Stat, string] | undefined {
  const m = /^summary\.(min|max|last|best_step)\.(.+)$/.exec(id);
  return m ? [m[1] as Stat, m[2]] : undefined;
}

function num(v: unknown): number | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "number") return v;
  if (v === "NaN") return NaN;
  if (v === "Infinity") return Infinity;
  if (v === "-Infinity") return -Infinity;
  return null;
}

/** The value of a summary column for a run (undefined while not fetched, or none logged). */
export function summaryValue(run: Run, stat: Stat, key: string): number | undefined {
  const s = cache.get(run.id)?.[key];
  if (!s) return undefined;
  let v: number | null;
  if (stat === "best_step") v = metricDirection(key, run.tags[`labtrack.direction.${key}`]) === "min" ? s.min_step : s.max_step;
  else v = s[stat];
  return v === null ? undefined : v;
}

/**
 * Fetches what is missing for `runs` and `keys` (a running run's every time: it still moves).
 * Resolves true when something new arrived.
 */
export async function ensureSummaries(runs: Run[], keys: string[]): Promise<boolean> {
  if (!keys.length || !runs.length) return false;
  const need = runs.filter((r) => r.status === "RUNNING" || keys.some((k) => !fetchedKeys.get(r.id)?.has(k))).map((r) => r.id);
  if (!need.length) return false;
  if (cache.size > MAX_CACHED) {
    cache.clear();
    fetchedKeys.clear();
  }
  for (let i = 0; i < need.length; i += 1000) {
    const ids = need.slice(i, i + 1000);
    const resp = await ltPost<{ summaries: Record<string, Record<string, Record<string, unknown>>> }>("runs/metric-summaries", { run_ids: ids, keys });
    for (const id of ids) {
      const got = resp.summaries[id] ?? {};
      const mine = cache.get(id) ?? {};
      for (const k of keys) {
        const s = got[k];
        if (s) {
          mine[k] = { min: num(s.min), max: num(s.max), last: num(s.last), min_step: num(s.min_step), max_step: num(s.max_step), last_step: num(s.last_step) };
        } else delete mine[k];
      }
      cache.set(id, mine);
      let asked = fetchedKeys.get(id);
      if (!asked) fetchedKeys.set(id, (asked = new Set()));
      for (const k of keys) asked.add(k);
    }
  }
  return true;
}

/**
 * A column id as the server takes it (the export, the windowed table): a best step becomes
 * the step of the min or of the max, by the metric's direction; other ids stay as they are.
 */
export function serverId(id: string): string {
  const summary = parseSummaryId(id);
  if (!summary || summary[0] !== "best_step") return id;
  return `summary.${metricDirection(summary[1])}_step.${summary[1]}`;
}

/** A sort ("<column id>:asc|desc") as the server takes it (see serverId). */
export function serverSort(sort: string): string {
  const i = sort.lastIndexOf(":");
  return i < 0 ? sort : `${serverId(sort.slice(0, i))}${sort.slice(i)}`;
}

/** The order_by entry of a summary column (none for the best step: the server has no such order). */
export function summaryOrder(stat: Stat, key: string, dir: "ASC" | "DESC"): string[] {
  return stat === "best_step" ? [] : [`metrics.\`${key.replace(/`/g, "")}\`.${stat} ${dir}`];
}
