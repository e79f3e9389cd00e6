// The runs table's data when an experiment holds too many runs to load whole: the server
// (api/2.0/labtrack/runs/table) sorts, filters, counts and groups, and the table fetches only the
// windows of rows it shows, with only its columns. Rows come back as Run objects holding just
// those columns, so columns.ts renders them as it renders whole runs.

import { ltPost } from "./api";
import type { Agg } from "./columns";
import { MetricValue, num, Run, ViewType } from "./model";
import { serverSort } from "./summaries";

/** Experiments with more runs than this are windowed; fewer load whole (tree, live updates). */
export function windowedAbove(): number {
  const v = Number(localStorage.getItem("labtrack.windowedAbove") ?? "");
  return Number.isFinite(v) && v > 0 ? v : 20000;
}

const BLOCK = 200; // rows per request: a few screens

export interface TableQuery {
  experimentIds: string[];
  filter: string;
  viewType: ViewType;
  sort: string; // "<column id>:asc|desc"
  columns: string[];
  group?: string;
  groupValue?: string;
}

export interface Keys {
  metrics: string[];
  params: string[];
  tags: string[];
}

export interface GroupStats {
  value: string;
  count: number;
  metrics: Record<string, Agg>;
}

interface WindowReply {
  total: number | null;
  offset: number;
  runs: Record<string, unknown[]>;
  metrics: Record<string, ([unknown, unknown, unknown] | null)[]>;
  params: Record<string, (string | null)[]>;
  tags: Record<string, (string | null)[]>;
}

function body(q: TableQuery, extra: Record<string, unknown>): Record<string, unknown> {
  return {
    experiment_ids: q.experimentIds,
    filter: q.filter,
    run_view_type: q.viewType,
    sort: serverSort(q.sort), // a best step sorts as the step of the min or the max
    columns: q.columns,
    group: q.group || undefined,
    group_value: q.groupValue,
    ...extra,
  };
}

function toRuns(r: WindowReply): Run[] {
  const a = r.runs;
  const out: Run[] = [];
  const ids = (a.run_id ?? []) as string[];
  for (let i = 0; i < ids.length; i++) {
    const metrics: Record<string, MetricValue> = Object.create(null);
    for (const k in r.metrics) {
      const m = r.metrics[k][i];
      if (m) metrics[k] = { value: num(m[0]), step: num(m[1]) || 0, timestamp: num(m[2]) };
    }
    const pick = (src: Record<string, (string | null)[]>) => {
      const o: Record<string, string> = Object.create(null);
      for (const k in src) {
        const v = src[k][i];
        if (v !== null && v !== undefined) o[k] = v;
      }
      return o;
    };
    const tags = pick(r.tags);
    out.push({
      id: ids[i],
      name: String(a.run_name[i] ?? ""),
      experimentId: String(a.experiment_id[i] ?? ""),
      user: String(a.user_id[i] ?? ""),
      status: String(a.status[i] ?? ""),
      start: num(a.start_time[i]),
      end: num(a.end_time[i]),
      artifactUri: "",
      lifecycle: String(a.lifecycle_stage[i] ?? "active"),
      metrics,
      params: pick(r.params),
      tags,
      modelOutputs: [],
    });
  }
  return out;
}

/** The metric, param and tag keys of the query's runs (``sample``: of the newest runs only). */
export async function tableKeys(q: TableQuery, sample?: number): Promise<Keys> {
  const r = await ltPost<{ keys: Keys }>("runs/table", body(q, { keys: true, sample }));
  return r.keys;
}

/** Per value of ``q.group``: its run count and the mean ± std, min, max of each metric column. */
export async function tableGroups(q: TableQuery): Promise<GroupStats[]> {
  const r = await ltPost<{ groups: { value: string; count: number; metrics: Record<string, Record<string, unknown>> }[] }>(
    "runs/table",
    body(q, { stats: true }),
  );
  return r.groups.map((g) => {
    const metrics: Record<string, Agg> = Object.create(null);
    for (const k in g.metrics) {
      const m = g.metrics[k];
      metrics[k] = { n: num(m.n), mean: num(m.mean), std: num(m.std), min: num(m.min), max: num(m.max) };
    }
    return { value: g.value, count: g.count, metrics };
  });
}

/** One query's rows, fetched a block at a time as the table scrolls to them. */
export class RunWindow {
  total = -1;
  private blocks = new Map<number, Run[] | Promise<void>>();
  private failed: unknown = null;

  constructor(
    readonly q: TableQuery,
    private readonly onRows: (runs: Run[]) => void,
  ) {}

  /** Fetches the block holding ``index`` (the first block also tells the total). */
  load(index: number): Promise<void> {
    const b = Math.floor(index / BLOCK);
    const have = this.blocks.get(b);
    if (have instanceof Promise) return have;
    if (have) return Promise.resolve();
    // A group's window is not counted: the group statistics gave its size.
    const count = this.q.groupValue === undefined;
    const p = ltPost<WindowReply>("runs/table", body(this.q, { offset: b * BLOCK, limit: BLOCK, count })).then(
      (r) => {
        if (r.total !== null) this.total = r.total;
        const runs = toRuns(r);
        this.blocks.set(b, runs);
        this.onRows(runs);
      },
      (e) => {
        this.blocks.delete(b);
        this.failed = e;
        throw e;
      },
    );
    this.blocks.set(b, p);
    return p;
  }

  /** The run at ``index`` when its block is here; otherwise undefined and its block is fetched. */
  at(index: number): Run | undefined {
    const block = this.blocks.get(Math.floor(index / BLOCK));
    if (Array.isArray(block)) return block[index % BLOCK];
    if (!block && !this.failed) void this.load(index).catch(() => undefined);
    return undefined;
  }

  /** The runs fetched so far, in table order. */
  loaded(): Run[] {
    const out: Run[] = [];
    for (const b of [...this.blocks.keys()].sort((x, y) => x - y)) {
      const v = this.blocks.get(b);
      if (Array.isArray(v)) out.push(...v);
    }
    return out;
  }
}

/** How many runs the query matches (one count in the database, no rows). */
export async function tableCount(q: TableQuery): Promise<number> {
  const r = await ltPost<WindowReply>("runs/table", body(q, { offset: 0, limit: 0 }));
  return r.total ?? 0;
}
