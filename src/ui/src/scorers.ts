// Registered scorers (mlflow.genai.scorers) as the MLflow 3 scorer API returns them, and what a
// serialized scorer says: its kind and its readable parts. Everything here is data: rendering is
// in views/scorers.ts.

import { mlGet } from "./api";

export interface ScorerVersion {
  experiment_id: number | string;
  scorer_name: string;
  scorer_version: number;
  serialized_scorer: string;
  creation_time: number;
  scorer_id: string;
}

/** The readable parts of a serialized scorer; `data` is the whole JSON (null when it is not JSON). */
export interface ScorerContent {
  kind: string;
  description?: string;
  model?: string;
  guidelines?: string[];
  instructions?: string;
  code?: string;
  data: Record<string, unknown> | null;
}

/** The newest version of each scorer of the experiment (the API answers {} when there are none). */
export async function listScorers(experimentId: string): Promise<ScorerVersion[]> {
  const r = await mlGet<{ scorers?: ScorerVersion[] }>("scorers/list", { experiment_id: experimentId });
  return r.scorers ?? [];
}

/** Every version of one scorer, newest first. */
export async function scorerVersions(experimentId: string, name: string): Promise<ScorerVersion[]> {
  const r = await mlGet<{ scorers?: ScorerVersion[] }>("scorers/versions", { experiment_id: experimentId, name });
  return (r.scorers ?? []).slice().sort((a, b) => Number(b.scorer_version) - Number(a.scorer_version));
}

function obj(v: unknown): Record<string, unknown> | undefined {
  return v && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v ? v : undefined;
}

/** What kind of scorer a serialized one is: its built-in class, a judge, custom code or guidelines. */
function kindOf(d: Record<string, unknown>): string {
  const builtin = str(d.builtin_scorer_class);
  if (builtin) return builtin;
  if (obj(d.instructions_judge_pydantic_data) || obj(d.memory_augmented_judge_data)) return "judge";
  if (str(d.call_source) || str(d.original_func_name)) return "custom code";
  if (Array.isArray(obj(d.builtin_scorer_pydantic_data)?.guidelines)) return "guidelines";
  return "unknown";
}

/** Reads a serialized scorer (MLflow's JSON text); text that is not JSON gives kind "unknown". */
export function scorerContent(serialized: string): ScorerContent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(serialized);
  } catch {
    return { kind: "unknown", data: null };
  }
  const d = obj(parsed);
  if (!d) return { kind: "unknown", data: null };
  const builtin = obj(d.builtin_scorer_pydantic_data) ?? {};
  const judge = obj(d.instructions_judge_pydantic_data) ?? {};
  const guidelines = builtin.guidelines;
  return {
    kind: kindOf(d),
    description: str(d.description),
    model: str(judge.model) ?? str(builtin.model),
    guidelines: Array.isArray(guidelines) ? guidelines.map(String) : typeof guidelines === "string" ? [guidelines] : undefined,
    instructions: str(judge.instructions),
    code: str(d.call_source),
    data: d,
  };
}
