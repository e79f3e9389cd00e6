// Plain shapes for what the REST API returns, normalized once (int64 may arrive as strings,
// non-finite doubles as "NaN"/"Infinity"). Key maps have no prototype, so a param named
// "__proto__" or "constructor" is just a key.

import { getJSON, mlGet, mlPost, query } from "./api";

export interface Experiment {
  id: string;
  name: string;
  artifactLocation: string;
  lifecycle: string;
  created: number;
  updated: number;
  tags: Record<string, string>;
}

export interface MetricValue {
  value: number;
  step: number;
  timestamp: number;
}

export interface Run {
  id: string;
  name: string;
  experimentId: string;
  user: string;
  status: string;
  start: number;
  end: number;
  artifactUri: string;
  lifecycle: string;
  metrics: Record<string, MetricValue>;
  params: Record<string, string>;
  tags: Record<string, string>;
  /** ids of the logged models this run produced (run.outputs.model_outputs) */
  modelOutputs: string[];
}

type KV = { key: string; value: unknown };

export function num(v: unknown): number {
  if (v === undefined || v === null || v === "") return NaN;
  return typeof v === "number" ? v : Number(v);
}

function kvs(list: unknown): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  if (Array.isArray(list)) for (const t of list as KV[]) out[t.key] = String(t.value ?? "");
  return out;
}

export function toExperiment(e: Record<string, unknown>): Experiment {
  return {
    id: String(e.experiment_id ?? e.experimentId ?? ""),
    name: String(e.name ?? ""),
    artifactLocation: String(e.artifact_location ?? e.artifactLocation ?? ""),
    lifecycle: String(e.lifecycle_stage ?? e.lifecycleStage ?? "active"),
    created: num(e.creation_time ?? e.creationTime),
    updated: num(e.last_update_time ?? e.lastUpdateTime),
    tags: kvs(e.tags),
  };
}

export function toRun(r: Record<string, unknown>): Run {
  const info = (r.info ?? {}) as Record<string, unknown>;
  const data = (r.data ?? {}) as Record<string, unknown>;
  const metrics: Record<string, MetricValue> = Object.create(null);
  if (Array.isArray(data.metrics)) {
    for (const m of data.metrics as Record<string, unknown>[]) {
      metrics[String(m.key)] = { value: num(m.value), step: num(m.step) || 0, timestamp: num(m.timestamp) };
    }
  }
  const tags = kvs(data.tags);
  const outputs = (r.outputs ?? {}) as Record<string, unknown>;
  const modelOutputs = Array.isArray(outputs.model_outputs)
    ? (outputs.model_outputs as Record<string, unknown>[]).map((m) => String(m.model_id ?? "")).filter(Boolean)
    : [];
  return {
    id: String(info.run_id ?? info.run_uuid ?? info.runId ?? ""),
    name: String(info.run_name ?? info.runName ?? tags["mlflow.runName"] ?? ""),
    experimentId: String(info.experiment_id ?? info.experimentId ?? ""),
    user: String(info.user_id ?? info.userId ?? tags["mlflow.user"] ?? ""),
    status: String(info.status ?? ""),
    start: num(info.start_time ?? info.startTime),
    end: num(info.end_time ?? info.endTime),
    artifactUri: String(info.artifact_uri ?? info.artifactUri ?? ""),
    lifecycle: String(info.lifecycle_stage ?? info.lifecycleStage ?? "active"),
    metrics,
    params: kvs(data.params),
    tags,
    modelOutputs,
  };
}

export type ViewType = "ACTIVE_ONLY" | "DELETED_ONLY" | "ALL";

export async function searchExperiments(viewType: ViewType): Promise<Experiment[]> {
  const out: Experiment[] = [];
  let token: string | undefined;
  do {
    const resp = await mlPost<{ experiments?: Record<string, unknown>[]; next_page_token?: string }>(
      "experiments/search",
      { max_results: 1000, view_type: viewType, page_token: token, order_by: ["last_update_time DESC"] },
    );
    for (const e of resp.experiments ?? []) out.push(toExperiment(e));
    token = resp.next_page_token || undefined;
  } while (token);
  return out;
}

export async function getExperiment(id: string): Promise<Experiment> {
  const resp = await mlGet<{ experiment: Record<string, unknown> }>("experiments/get", { experiment_id: id });
  return toExperiment(resp.experiment);
}

export interface RunPage {
  runs: Run[];
  next?: string;
}

export async function searchRunsPage(
  experimentIds: string[],
  filter: string,
  viewType: ViewType,
  maxResults: number,
  pageToken?: string,
  orderBy: string[] = ["attributes.start_time DESC"],
): Promise<RunPage> {
  const resp = await mlPost<{ runs?: Record<string, unknown>[]; next_page_token?: string }>("runs/search", {
    experiment_ids: experimentIds,
    filter,
    run_view_type: viewType,
    max_results: maxResults,
    order_by: orderBy,
    page_token: pageToken,
  });
  return { runs: (resp.runs ?? []).map(toRun), next: resp.next_page_token || undefined };
}

export async function getRun(id: string): Promise<Run> {
  const resp = await mlGet<{ run: Record<string, unknown> }>("runs/get", { run_id: id });
  return toRun(resp.run);
}

export interface SeriesPoint {
  step: number;
  timestamp: number;
  value: number;
}

/** The part of an artifact URI after mlflow-artifacts:/ (the proxied artifact service path). */
export function artifactRel(artifactUri: string): string | undefined {
  const m = /^mlflow-artifacts:(?:\/\/[^/]*)?\/+(.*)$/.exec(artifactUri);
  if (m) return m[1].replace(/\/+$/, "");
  const h = /\/api\/2\.0\/mlflow-artifacts\/artifacts\/+(.*)$/.exec(artifactUri);
  return h ? h[1].replace(/\/+$/, "") : undefined;
}

export function encodePath(p: string): string {
  return p
    .split("/")
    .filter((s) => s !== "")
    .map(encodeURIComponent)
    .join("/");
}

export interface ArtifactFile {
  path: string; // relative to the run's artifact root
  isDir: boolean;
  size?: number;
}

export async function listArtifacts(run: Run, dir: string): Promise<ArtifactFile[]> {
  const rel = artifactRel(run.artifactUri);
  if (rel !== undefined) {
    const p = [rel, dir].filter(Boolean).join("/");
    const resp = await mlGetArtifacts(p);
    return (resp.files ?? []).map((f) => ({
      path: [dir, String(f.path).split("/").pop()].filter(Boolean).join("/"),
      isDir: Boolean(f.is_dir),
      size: f.file_size === undefined ? undefined : num(f.file_size),
    }));
  }
  const resp = await mlGet<{ files?: { path: string; is_dir?: boolean; file_size?: unknown }[] }>("artifacts/list", {
    run_id: run.id,
    path: dir || undefined,
  });
  return (resp.files ?? []).map((f) => ({
    path: String(f.path),
    isDir: Boolean(f.is_dir),
    size: f.file_size === undefined ? undefined : num(f.file_size),
  }));
}

async function mlGetArtifacts(path: string): Promise<{ files?: { path: string; is_dir?: boolean; file_size?: unknown }[] }> {
  return getJSON(`api/2.0/mlflow-artifacts/artifacts${query({ path })}`);
}

/** The relative URL that downloads one artifact file. */
export function artifactUrl(run: Run, path: string): string {
  const rel = artifactRel(run.artifactUri);
  if (rel !== undefined) return `api/2.0/mlflow-artifacts/artifacts/${encodePath(rel)}/${encodePath(path)}`;
  return `get-artifact?run_id=${encodeURIComponent(run.id)}&path=${encodeURIComponent(path)}`;
}

export function displayName(run: Run): string {
  return run.name || run.id.slice(0, 8);
}
