// Prompts as the UI speaks them: MLflow keeps a prompt as a registered model tagged
// mlflow.prompt.is_prompt and each version as a model version whose mlflow.prompt.text tag is
// the template and whose description is the commit message. Also the gateway calls the
// playground makes, and a line diff between two templates.

import { ApiError, mlPost } from "./api";
import { literal, ModelVersion, RegisteredModel, searchModels, searchVersions } from "./registry";

export const IS_PROMPT = "mlflow.prompt.is_prompt";
export const TEXT_TAG = "mlflow.prompt.text";
const TYPE_TAG = "_mlflow_prompt_type";
const VARIABLE = /\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*(?:\.[a-zA-Z_][a-zA-Z0-9_]*)*)\s*\}\}/g;
const PROMPT_FILTER = `tags.\`${IS_PROMPT}\` = 'true'`;

export function listPrompts(nameLike: string): Promise<RegisteredModel[]> {
  const t = nameLike.trim();
  const escaped = t.replace(/[\\%_]/g, (c) => `\\${c}`);
  return searchModels(t ? `${PROMPT_FILTER} AND name ILIKE ${literal(`%${escaped}%`)}` : PROMPT_FILTER);
}

export function promptVersions(name: string): Promise<ModelVersion[]> {
  return searchVersions(`name = ${literal(name)} AND ${PROMPT_FILTER}`);
}

/** The template of a prompt version (chat templates are shown as their JSON). */
export function template(v: ModelVersion): string {
  return v.tags[TEXT_TAG] ?? "";
}

/** The distinct {{variables}} of the templates, in order of first use. */
export function variables(...templates: string[]): string[] {
  const out: string[] = [];
  for (const t of templates) for (const m of t.matchAll(VARIABLE)) if (!out.includes(m[1])) out.push(m[1]);
  return out;
}

/** The template with each {{variable}} replaced by its value ("" when missing). */
export function fill(text: string, values: Record<string, string>): string {
  return text.replace(VARIABLE, (_m, name: string) => values[name] ?? "");
}

/** Pieces of a template: plain text and {{variables}}, for rendering variables apart. */
export function pieces(text: string): { text: string; variable: boolean }[] {
  const out: { text: string; variable: boolean }[] = [];
  let last = 0;
  for (const m of text.matchAll(VARIABLE)) {
    const at = m.index ?? 0;
    if (at > last) out.push({ text: text.slice(last, at), variable: false });
    out.push({ text: m[0], variable: true });
    last = at + m[0].length;
  }
  if (last < text.length) out.push({ text: text.slice(last), variable: false });
  return out;
}

/** Registers `text` as the next version of prompt `name` (made if new), as mlflow.genai does. */
export async function registerVersion(name: string, text: string, commitMessage: string): Promise<string> {
  try {
    await mlPost("registered-models/create", { name, tags: [{ key: IS_PROMPT, value: "true" }] });
  } catch (e) {
    if (!(e instanceof ApiError && e.code === "RESOURCE_ALREADY_EXISTS")) throw e;
  }
  const resp = await mlPost<{ model_version: { version: string } }>("model-versions/create", {
    name,
    source: "prompt-template",
    description: commitMessage || undefined,
    tags: [
      { key: IS_PROMPT, value: "true" },
      { key: TEXT_TAG, value: text },
      { key: TYPE_TAG, value: "text" },
    ],
  });
  return String(resp.model_version.version);
}


/** One line of a diff: kept, removed (only in a) or added (only in b). */
export interface DiffLine {
  kind: "same" | "del" | "add";
  text: string;
}

/** A line diff by longest common subsequence (templates are short). */
export function diffLines(a: string, b: string): DiffLine[] {
  const x = a.split("\n");
  const y = b.split("\n");
  const n = x.length;
  const m = y.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) {
      out.push({ kind: "same", text: x[i] });
      i++;
      j++;
    } else if (lcs[i + 1][j] >= lcs[i][j + 1]) out.push({ kind: "del", text: x[i++] });
    else out.push({ kind: "add", text: y[j++] });
  }
  while (i < n) out.push({ kind: "del", text: x[i++] });
  while (j < m) out.push({ kind: "add", text: y[j++] });
  return out;
}
