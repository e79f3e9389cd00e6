// Metric histories for charts, always downsampled by the server (labtrack's
// api/2.0/labtrack/metrics/history-downsampled keeps each bucket's min and max), so a
// million-point metric costs the browser a few thousand points. Zooming asks for the window.

import { ApiError, ltGet, mlGet } from "./api";
import { num, SeriesPoint } from "./model";

export interface Downsampled {
  points: SeriesPoint[];
  total: number;
  downsampled: boolean;
  /** false: the server stopped counting, and total is a lower bound */
  exact?: boolean;
}

let serverHasEndpoint = true;

function parsePoints(list: unknown): SeriesPoint[] {
  const out: SeriesPoint[] = [];
  if (Array.isArray(list)) {
    for (const m of list as Record<string, unknown>[]) {
      out.push({ step: num(m.step) || 0, timestamp: num(m.timestamp), value: num(m.value) });
    }
  }
  out.sort((a, b) => a.step - b.step || a.timestamp - b.timestamp);
  return out;
}

/** Min/max per bucket, for servers without labtrack's endpoint (a plain MLflow server). */
function bucket(points: SeriesPoint[], maxPoints: number): Downsampled {
  if (points.length <= maxPoints) return { points, total: points.length, downsampled: false };
  const per = Math.ceil(points.length / Math.max(1, Math.floor(maxPoints / 2)));
  const out: SeriesPoint[] = [];
  for (let i = 0; i < points.length; i += per) {
    let lo = i;
    let hi = i;
    for (let j = i; j < Math.min(points.length, i + per); j++) {
      if (points[j].value < points[lo].value) lo = j;
      if (points[j].value > points[hi].value) hi = j;
    }
    out.push(points[Math.min(lo, hi)]);
    if (lo !== hi) out.push(points[Math.max(lo, hi)]);
  }
  return { points: out, total: points.length, downsampled: true };
}

export async function fetchSeries(
  runId: string,
  key: string,
  maxPoints: number,
  minStep?: number,
  maxStep?: number,
): Promise<Downsampled> {
  if (serverHasEndpoint) {
    try {
      const r = await ltGet<{ metrics?: unknown; total?: unknown; total_exact?: unknown; downsampled?: unknown }>("metrics/history-downsampled", {
        run_id: runId,
        metric_key: key,
        max_points: maxPoints,
        min_step: minStep === undefined ? undefined : Math.floor(minStep),
        max_step: maxStep === undefined ? undefined : Math.ceil(maxStep),
      });
      const points = parsePoints(r.metrics);
      return { points, total: num(r.total) || points.length, downsampled: Boolean(r.downsampled), exact: r.total_exact !== false };
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 404 || e.code === "RESOURCE_DOES_NOT_EXIST") throw e;
      serverHasEndpoint = false;
    }
  }
  const all: SeriesPoint[] = [];
  let token: string | undefined;
  do {
    const r = await mlGet<{ metrics?: unknown; next_page_token?: string }>("metrics/get-history", {
      run_id: runId,
      metric_key: key,
      max_results: 25000,
      page_token: token,
    });
    all.push(...parsePoints(r.metrics));
    token = r.next_page_token || undefined;
  } while (token);
  all.sort((a, b) => a.step - b.step || a.timestamp - b.timestamp);
  const inWindow = all.filter((p) => (minStep === undefined || p.step >= minStep) && (maxStep === undefined || p.step <= maxStep));
  return bucket(inWindow, maxPoints);
}

/** Runs at most `limit` promises at a time, in order. */
export async function pool<T, R>(items: T[], limit: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  });
  await Promise.all(workers);
  return out;
}
