// The model registry and logged models as the UI speaks them: registered models, their
// versions (stages, aliases, tags, descriptions) and the models a run logged. Shapes are
// normalized once here; key maps have no prototype, like the run maps in model.ts.

import { mlGet, mlPost } from "./api";
import { num } from "./model";

export const STAGES = ["None", "Staging", "Production", "Archived"] as const;

export interface ModelVersion {
  name: string;
  version: string;
  stage: string;
  status: string;
  source: string;
  runId: string;
  modelId: string;
  description: string;
  user: string;
  created: number;
  updated: number;
  tags: Record<string, string>;
  aliases: string[];
}

export interface RegisteredModel {
  name: string;
  description: string;
  created: number;
  updated: number;
  user: string;
  latest: ModelVersion[];
  tags: Record<string, string>;
  aliases: Record<string, string>; // alias -> version
}

export interface LoggedModel {
  id: string;
  name: string;
  experimentId: string;
  runId: string;
  type: string;
  status: string;
  artifactUri: string;
  created: number;
}

type KV = { key: string; value: unknown };

function kvs(list: unknown): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  if (Array.isArray(list)) for (const t of list as KV[]) out[String(t.key)] = String(t.value ?? "");
  return out;
}

function str(v: unknown): string {
  return v === undefined || v === null ? "" : String(v);
}

export function toVersion(v: Record<string, unknown>): ModelVersion {
  return {
    name: str(v.name),
    version: str(v.version),
    stage: str(v.current_stage) || "None",
    status: str(v.status),
    source: str(v.source),
    runId: str(v.run_id),
    modelId: str(v.model_id),
    description: str(v.description),
    user: str(v.user_id),
    created: num(v.creation_timestamp),
    updated: num(v.last_updated_timestamp),
    tags: kvs(v.tags),
    aliases: Array.isArray(v.aliases) ? (v.aliases as unknown[]).map(str) : [],
  };
}

export function toModel(m: Record<string, unknown>): RegisteredModel {
  const aliases: Record<string, string> = Object.create(null);
  if (Array.isArray(m.aliases)) for (const a of m.aliases as Record<string, unknown>[]) aliases[str(a.alias)] = str(a.version);
  return {
    name: str(m.name),
    description: str(m.description),
    created: num(m.creation_timestamp),
    updated: num(m.last_updated_timestamp),
    user: str(m.user_id),
    latest: Array.isArray(m.latest_versions) ? (m.latest_versions as Record<string, unknown>[]).map(toVersion) : [],
    tags: kvs(m.tags),
    aliases,
  };
}

function toLoggedModel(m: Record<string, unknown>): LoggedModel {
  const info = (m.info ?? {}) as Record<string, unknown>;
  return {
    id: str(info.model_id),
    name: str(info.name),
    experimentId: str(info.experiment_id),
    runId: str(info.source_run_id),
    type: str(info.model_type),
    status: str(info.status).replace(/^LOGGED_MODEL_/, ""),
    artifactUri: str(info.artifact_uri),
    created: num(info.creation_timestamp_ms),
  };
}

/** A string literal of MLflow's filter grammar: single quotes, a doubled quote inside. */
export function literal(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** What the models search box sends: a whole filter when it reads as one, else a name match. */
export function modelFilter(text: string): string {
  const t = text.trim();
  if (!t) return "";
  // "name = 'x'", "tags.team != 'a'", "name LIKE 'a%'": already MLflow's grammar
  if (/(=|\bI?LIKE\b|\bIN\b)\s*[('"]/i.test(t)) return t;
  const escaped = t.replace(/[\\%_]/g, (c) => `\\${c}`);
  return `name ILIKE ${literal(`%${escaped}%`)}`;
}

export async function searchModels(filter: string): Promise<RegisteredModel[]> {
  const out: RegisteredModel[] = [];
  let token: string | undefined;
  do {
    const resp = await mlGet<{ registered_models?: Record<string, unknown>[]; next_page_token?: string }>("registered-models/search", {
      filter: filter || undefined,
      max_results: 1000,
      order_by: "name ASC",
      page_token: token,
    });
    for (const m of resp.registered_models ?? []) out.push(toModel(m));
    token = resp.next_page_token || undefined;
  } while (token);
  return out;
}

export async function getModel(name: string): Promise<RegisteredModel> {
  const resp = await mlGet<{ registered_model: Record<string, unknown> }>("registered-models/get", { name });
  return toModel(resp.registered_model);
}

export async function searchVersions(filter: string): Promise<ModelVersion[]> {
  const out: ModelVersion[] = [];
  let token: string | undefined;
  do {
    const resp = await mlGet<{ model_versions?: Record<string, unknown>[]; next_page_token?: string }>("model-versions/search", {
      filter,
      max_results: 1000,
      order_by: "version_number DESC",
      page_token: token,
    });
    for (const v of resp.model_versions ?? []) out.push(toVersion(v));
    token = resp.next_page_token || undefined;
  } while (token);
  return out;
}

export async function getVersion(name: string, version: string): Promise<ModelVersion> {
  const resp = await mlGet<{ model_version: Record<string, unknown> }>("model-versions/get", { name, version });
  return toVersion(resp.model_version);
}

/** Logged models whose source run is `runId`, plus any the run lists in outputs.model_outputs. */
export async function loggedModelsOfRun(experimentId: string, runId: string, outputIds: string[]): Promise<LoggedModel[]> {
  const out: LoggedModel[] = [];
  let token: string | undefined;
  do {
    const resp = await mlPost<{ models?: Record<string, unknown>[]; next_page_token?: string }>("logged-models/search", {
      experiment_ids: [experimentId],
      filter: `source_run_id = ${literal(runId)}`,
      max_results: 100,
      page_token: token,
    });
    for (const m of resp.models ?? []) out.push(toLoggedModel(m));
    token = resp.next_page_token || undefined;
  } while (token && out.length < 1000);
  const seen = new Set(out.map((m) => m.id));
  for (const id of outputIds) {
    if (seen.has(id)) continue;
    seen.add(id);
    try {
      const resp = await mlGet<{ model: Record<string, unknown> }>(`logged-models/${encodeURIComponent(id)}`);
      out.push(toLoggedModel(resp.model));
    } catch {
      // a deleted or foreign logged model: leave it out
    }
  }
  return out;
}

/** Artifact paths of MLflow 2-style models logged into the run's own artifacts (the mlflow.log-model.history tag). */
export function historyModelPaths(tags: Record<string, string>): { path: string; flavors: string[] }[] {
  const raw = tags["mlflow.log-model.history"];
  if (!raw) return [];
  try {
    const list = JSON.parse(raw) as unknown;
    if (!Array.isArray(list)) return [];
    const out: { path: string; flavors: string[] }[] = [];
    for (const item of list as Record<string, unknown>[]) {
      if (!item || typeof item.artifact_path !== "string") continue;
      const fl = item.flavors && typeof item.flavors === "object" ? Object.keys(item.flavors as object) : [];
      out.push({ path: item.artifact_path, flavors: fl });
    }
    return out;
  } catch {
    return [];
  }
}
