// Traces as the MLflow 3 trace API returns them (TraceInfo and OTLP spans), and the helpers the
// traces list and the trace page share. Everything here is data: rendering is in views/.

import { mlGet, mlPost, mlSend } from "./api";

export interface TraceInfo {
  trace_id: string;
  trace_location: { mlflow_experiment?: { experiment_id: string } };
  request_time: string;
  execution_duration?: string;
  state: string;
  trace_metadata?: Record<string, string>;
  tags?: Record<string, string>;
  request_preview?: string;
  response_preview?: string;
  assessments?: Assessment[];
  labtrack_linked_runs?: string[]; // runs linked with link_traces_to_run (labtrack's own field)
}

export interface Assessment {
  assessment_id: string;
  assessment_name: string;
  source?: { source_type?: string; source_id?: string };
  create_time?: string;
  feedback?: { value?: unknown; error?: { error_message?: string } };
  expectation?: { value?: unknown; serialized_value?: { value?: string } };
  rationale?: string;
  valid?: boolean;
  overrides?: string;
}

export interface AnyValue {
  string_value?: string;
  bool_value?: boolean;
  int_value?: number | string;
  double_value?: number | string;
  array_value?: { values?: AnyValue[] };
  kvlist_value?: { values?: { key: string; value?: AnyValue }[] };
  bytes_value?: string;
}

export interface OtlpSpan {
  span_id: string;
  parent_span_id?: string;
  name: string;
  start_time_unix_nano: number | string;
  end_time_unix_nano?: number | string;
  attributes?: { key: string; value?: AnyValue }[];
  events?: { name: string; time_unix_nano?: number | string; attributes?: { key: string; value?: AnyValue }[] }[];
  status?: { code?: string | number; message?: string };
}

export interface Trace {
  trace_info: TraceInfo;
  spans: OtlpSpan[];
}

/** A span with its attributes decoded and its place in the tree. */
export interface SpanNode {
  id: string;
  parent: string | null;
  name: string;
  type: string;
  status: string;
  statusMessage: string;
  startMs: number; // since the trace began
  endMs: number | null;
  inputs: unknown;
  outputs: unknown;
  attributes: Record<string, unknown>;
  events: { name: string; atMs: number; attributes: Record<string, unknown> }[];
  depth: number;
  children: SpanNode[];
}

export function anyValue(v: AnyValue | undefined): unknown {
  if (!v) return null;
  if (v.string_value !== undefined) return v.string_value;
  if (v.bool_value !== undefined) return v.bool_value;
  if (v.int_value !== undefined) return Number(v.int_value);
  if (v.double_value !== undefined) return Number(v.double_value);
  if (v.array_value) return (v.array_value.values ?? []).map(anyValue);
  if (v.kvlist_value) {
    const out: Record<string, unknown> = {};
    for (const kv of v.kvlist_value.values ?? []) out[kv.key] = anyValue(kv.value);
    return out;
  }
  if (v.bytes_value !== undefined) return v.bytes_value;
  return null;
}

function attrs(list: { key: string; value?: AnyValue }[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of list ?? []) out[a.key] = anyValue(a.value);
  return out;
}

const STATUS: Record<string, string> = { "0": "UNSET", "1": "OK", "2": "ERROR" };

/** The spans as a forest (roots first, children by start time), with times relative to the trace. */
export function spanTree(spans: OtlpSpan[]): { roots: SpanNode[]; flat: SpanNode[]; totalMs: number } {
  const t0 = Math.min(...spans.map((s) => Number(s.start_time_unix_nano)));
  const nodes = new Map<string, SpanNode>();
  for (const s of spans) {
    const a = attrs(s.attributes);
    const code = String(s.status?.code ?? "UNSET").replace("STATUS_CODE_", "");
    const node: SpanNode = {
      id: s.span_id,
      parent: s.parent_span_id || null,
      name: s.name,
      type: String(a["mlflow.spanType"] ?? "UNKNOWN"),
      status: STATUS[code] ?? code,
      statusMessage: s.status?.message ?? "",
      startMs: (Number(s.start_time_unix_nano) - t0) / 1e6,
      endMs: s.end_time_unix_nano !== undefined ? (Number(s.end_time_unix_nano) - t0) / 1e6 : null,
      inputs: a["mlflow.spanInputs"],
      outputs: a["mlflow.spanOutputs"],
      attributes: a,
      events: (s.events ?? []).map((e) => ({
        name: e.name,
        atMs: (Number(e.time_unix_nano ?? 0) - t0) / 1e6,
        attributes: attrs(e.attributes),
      })),
      depth: 0,
      children: [],
    };
    delete a["mlflow.spanInputs"];
    delete a["mlflow.spanOutputs"];
    nodes.set(node.id, node);
  }
  const roots: SpanNode[] = [];
  for (const n of nodes.values()) {
    const p = n.parent ? nodes.get(n.parent) : undefined;
    if (p) p.children.push(n);
    else roots.push(n);
  }
  const flat: SpanNode[] = [];
  const walk = (n: SpanNode, depth: number) => {
    n.depth = depth;
    flat.push(n);
    n.children.sort((x, y) => x.startMs - y.startMs);
    for (const c of n.children) walk(c, depth + 1);
  };
  roots.sort((x, y) => x.startMs - y.startMs);
  for (const r of roots) walk(r, 0);
  const totalMs = Math.max(1e-3, ...flat.map((n) => n.endMs ?? n.startMs));
  return { roots, flat, totalMs };
}

/** Milliseconds of a protobuf Duration ("1.663s"). */
export function durationMs(d: string | undefined): number {
  if (!d) return NaN;
  return parseFloat(d) * 1000;
}

export function timeMs(t: string): number {
  return Date.parse(t);
}

/** Total tokens of a trace (metadata mlflow.trace.tokenUsage), if recorded. */
export function tokens(info: TraceInfo): { input?: number; output?: number; total?: number } | null {
  const raw = info.trace_metadata?.["mlflow.trace.tokenUsage"];
  if (!raw) return null;
  try {
    const u = JSON.parse(raw) as { input_tokens?: number; output_tokens?: number; total_tokens?: number };
    return { input: u.input_tokens, output: u.output_tokens, total: u.total_tokens };
  } catch {
    return null;
  }
}

export function traceName(info: TraceInfo): string {
  return info.tags?.["mlflow.traceName"] || info.trace_id;
}

export function assessmentValue(a: Assessment): unknown {
  if (a.feedback) return a.feedback.value;
  if (a.expectation?.serialized_value?.value !== undefined) {
    try {
      return JSON.parse(a.expectation.serialized_value.value);
    } catch {
      return a.expectation.serialized_value.value;
    }
  }
  return a.expectation?.value;
}

export const SORTS: Record<string, { label: string; order: string[] }> = {
  newest: { label: "Newest first", order: ["timestamp_ms DESC"] },
  oldest: { label: "Oldest first", order: ["timestamp_ms ASC"] },
  slowest: { label: "Slowest first", order: ["execution_time_ms DESC"] },
  fastest: { label: "Fastest first", order: ["execution_time_ms ASC"] },
  status: { label: "By status", order: ["status ASC", "timestamp_ms DESC"] },
};

export function searchTraces(
  experimentId: string,
  filter: string,
  order: string[],
  pageToken?: string,
): Promise<{ traces?: TraceInfo[]; next_page_token?: string }> {
  return mlPost("traces/search", {
    locations: [{ type: "MLFLOW_EXPERIMENT", mlflow_experiment: { experiment_id: experimentId } }],
    filter: filter || undefined,
    order_by: order,
    max_results: 100,
    page_token: pageToken,
  });
}

export async function getTrace(traceId: string): Promise<Trace> {
  const r = await mlGet<{ trace: Trace }>("traces/get", { trace_id: traceId });
  return r.trace;
}

export function addFeedback(traceId: string, name: string, value: unknown, rationale: string): Promise<unknown> {
  return mlSend("POST", `traces/${encodeURIComponent(traceId)}/assessments`, {
    assessment: {
      assessment_name: name,
      trace_id: traceId,
      source: { source_type: "HUMAN", source_id: "labtrack-ui" },
      feedback: { value },
      rationale: rationale || undefined,
    },
  });
}
