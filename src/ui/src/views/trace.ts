// One trace: its span tree beside a timeline, the selected span's inputs and outputs as
// collapsible JSON, its attributes, events and error, the trace's assessments with a form to
// add feedback, and links to its run and model. Every logged value is a text node.

import { h, replace } from "../dom";
import { fmtTime } from "../format";
import { href, Route } from "../router";
import {
  addFeedback,
  assessmentValue,
  durationMs,
  getTrace,
  spanTree,
  SpanNode,
  timeMs,
  tokens,
  Trace,
  traceName,
} from "../traces";
import { fmtLatency, stateBadge } from "./traces";

const OPEN_LEVELS = 2; // JSON opened this deep at first
const LONG_TEXT = 2000; // a longer string starts folded

/** A JSON value as nested <details>, every key and leaf a text node. */
export function jsonTree(value: unknown, depth = 0): HTMLElement {
  if (value === null || value === undefined) return h("span", { class: "json-null" }, "null");
  if (typeof value === "string") {
    if (value.length > LONG_TEXT) {
      return h("details", { class: "json-long" }, h("summary", null, `"${value.slice(0, 200)}…" (${value.length} characters)`), h("pre", { class: "json-str" }, value));
    }
    return h("span", { class: "json-str" }, JSON.stringify(value));
  }
  if (typeof value !== "object") return h("span", { class: `json-${typeof value}` }, String(value));
  const isArray = Array.isArray(value);
  const entries: [string, unknown][] = isArray ? (value as unknown[]).map((v, i) => [String(i), v]) : Object.entries(value as object);
  if (!entries.length) return h("span", { class: "json-empty" }, isArray ? "[]" : "{}");
  const summary = isArray ? `[ ${entries.length} item${entries.length === 1 ? "" : "s"} ]` : `{ ${entries.length} key${entries.length === 1 ? "" : "s"} }`;
  return h(
    "details",
    { class: "json", open: depth < OPEN_LEVELS },
    h("summary", null, summary),
    h(
      "ul",
      { class: "json-items" },
      entries.map(([k, v]) => h("li", null, h("span", { class: "json-key" }, isArray ? `${k}: ` : `${k}: `), jsonTree(v, depth + 1))),
    ),
  );
}

function section(title: string, ...body: (Node | string | null)[]): HTMLElement {
  return h("section", { class: "span-section" }, h("h3", null, title), ...body);
}

function spanDetail(n: SpanNode): HTMLElement {
  const attrs = Object.entries(n.attributes).filter(([k]) => k !== "mlflow.traceRequestId");
  const error = n.status === "ERROR";
  return h(
    "div",
    { class: "span-detail" },
    h("h2", { class: "span-title" }, n.name, h("span", { class: "badge" }, n.type), error ? h("span", { class: "status status-failed" }, "ERROR") : null),
    h("div", { class: "muted" }, `${fmtLatency((n.endMs ?? n.startMs) - n.startMs)} · starts at +${fmtLatency(n.startMs)}`),
    error ? h("div", { class: "error span-error" }, n.statusMessage || "This span failed.") : null,
    section("Inputs", h("div", { class: "json-root span-inputs" }, jsonTree(n.inputs))),
    section("Outputs", h("div", { class: "json-root span-outputs" }, jsonTree(n.outputs))),
    section(
      "Attributes",
      attrs.length
        ? h("table", { class: "kv span-attributes" }, attrs.map(([k, v]) => h("tr", null, h("th", null, k), h("td", null, jsonTree(v, OPEN_LEVELS)))))
        : h("p", { class: "muted" }, "None"),
    ),
    section(
      "Events",
      n.events.length
        ? h(
            "ul",
            { class: "span-events" },
            n.events.map((e) =>
              h(
                "li",
                null,
                h("b", null, e.name),
                ` at +${fmtLatency(e.atMs)}`,
                typeof e.attributes["exception.stacktrace"] === "string"
                  ? h("pre", { class: "stacktrace" }, String(e.attributes["exception.stacktrace"]))
                  : null,
                h("div", { class: "json-root" }, jsonTree(Object.fromEntries(Object.entries(e.attributes).filter(([k]) => k !== "exception.stacktrace")), 1)),
              ),
            ),
          )
        : h("p", { class: "muted" }, "None"),
    ),
  );
}

export function traceView(root: HTMLElement, route: Route): void {
  const traceId = route.parts[1];
  document.title = `Trace ${traceId} · labtrack`;
  replace(root, h("p", { class: "muted" }, "Loading…"));
  void getTrace(traceId).then(
    (t) => render(root, t),
    (e: Error) => replace(root, h("div", { class: "error", role: "alert" }, e.message)),
  );
}

function render(root: HTMLElement, t: Trace): void {
  const info = t.trace_info;
  const exp = info.trace_location.mlflow_experiment?.experiment_id ?? "";
  const run = info.trace_metadata?.["mlflow.sourceRun"];
  const model = info.trace_metadata?.["mlflow.modelId"];
  const tok = tokens(info);
  const { flat, totalMs } = spanTree(t.spans);
  const detail = h("div", { class: "span-pane" });
  const rows = h("div", { class: "span-rows", role: "tree" });
  let selected: HTMLElement | null = null;

  const select = (n: SpanNode, row: HTMLElement) => {
    selected?.classList.remove("selected");
    row.classList.add("selected");
    selected = row;
    replace(detail, spanDetail(n));
  };
  for (const n of flat) {
    const left = (n.startMs / totalMs) * 100;
    const width = Math.max(0.5, (((n.endMs ?? totalMs) - n.startMs) / totalMs) * 100);
    const row: HTMLElement = h(
      "div",
      { class: `span-row${n.status === "ERROR" ? " span-failed" : ""}`, role: "treeitem", tabindex: "0", dataset: { spanName: n.name } },
      h("div", { class: "span-name", style: { paddingLeft: `${n.depth * 16 + 4}px` } }, n.name, h("span", { class: "span-type muted" }, n.type)),
      h("div", { class: "span-dur num" }, fmtLatency((n.endMs ?? n.startMs) - n.startMs)),
      h("div", { class: "span-lane" }, h("div", { class: `span-bar type-${n.type.toLowerCase()}`, style: { left: `${left}%`, width: `${Math.min(width, 100 - left)}%` } })),
    );
    row.addEventListener("click", () => select(n, row));
    row.addEventListener("keydown", (e: KeyboardEvent) => {
      if (e.key === "Enter") select(n, row);
    });
    rows.appendChild(row);
  }

  const assessments = info.assessments ?? [];
  const nameIn = h("input", { type: "text", class: "fb-name", placeholder: "name, e.g. correct", "aria-label": "feedback name" });
  const valueIn = h("input", { type: "text", class: "fb-value", placeholder: "value: true, 0.8 or text", "aria-label": "feedback value" });
  const whyIn = h("input", { type: "text", class: "fb-rationale", placeholder: "rationale (optional)", "aria-label": "feedback rationale" });
  const fbErr = h("div", { class: "error inline-error", role: "alert" });
  const form = h(
    "form",
    {
      class: "feedback-form",
      onsubmit: (e: Event) => {
        e.preventDefault();
        const name = nameIn.value.trim();
        if (!name) {
          fbErr.textContent = "Give the feedback a name.";
          return;
        }
        let value: unknown = valueIn.value;
        try {
          value = JSON.parse(valueIn.value);
        } catch {
          /* plain text */
        }
        addFeedback(info.trace_id, name, value, whyIn.value.trim()).then(
          () => void getTrace(info.trace_id).then((fresh) => render(root, fresh)),
          (err: Error) => {
            fbErr.textContent = err.message;
          },
        );
      },
    },
    nameIn,
    valueIn,
    whyIn,
    h("button", { type: "submit" }, "Add feedback"),
    fbErr,
  );

  const kv = (obj: Record<string, string> | undefined, cls: string) => {
    const entries = Object.entries(obj ?? {}).sort(([a], [b]) => a.localeCompare(b));
    return entries.length
      ? h("table", { class: `kv ${cls}` }, entries.map(([k, v]) => h("tr", null, h("th", null, k), h("td", null, v))))
      : h("p", { class: "muted" }, "None");
  };

  replace(
    root,
    h(
      "div",
      { class: "page-head" },
      h("h1", { class: "trace-name" }, traceName(info)),
      stateBadge(info.state),
      h("span", { class: "muted" }, fmtTime(timeMs(info.request_time))),
      h("span", { class: "muted trace-latency" }, fmtLatency(durationMs(info.execution_duration))),
      tok ? h("span", { class: "badge trace-tokens" }, `${tok.total ?? "?"} tokens (in ${tok.input ?? "?"}, out ${tok.output ?? "?"})`) : null,
    ),
    h(
      "div",
      { class: "trace-links" },
      exp ? h("a", { href: href(["experiments", exp, "traces"]) }, "All traces of the experiment") : null,
      run ? h("a", { class: "trace-run", href: href(["runs", run]) }, `Run ${run}`) : null,
      (info.labtrack_linked_runs ?? []).filter((r) => r !== run).map((r) => h("a", { class: "trace-linked-run", href: href(["runs", r]) }, `Linked run ${r}`)),
      model ? h("a", { class: "trace-model", href: `ajax-api/2.0/mlflow/logged-models/${encodeURIComponent(model)}` }, `Model ${model}`) : null,
      h("code", { class: "muted" }, info.trace_id),
    ),
    h("div", { class: "trace-layout" }, h("div", { class: "span-tree" }, h("div", { class: "span-head" }, h("span", null, "Span"), h("span", null, "Duration"), h("span", null, "Timeline")), rows), detail),
    h("h2", null, "Assessments"),
    assessments.length
      ? h(
          "table",
          { class: "grid assessments-table" },
          h("thead", null, h("tr", null, ["Name", "Kind", "Value", "Rationale", "Source", "Valid", "Created"].map((c) => h("th", null, c)))),
          h(
            "tbody",
            null,
            assessments.map((a) =>
              h(
                "tr",
                { class: a.valid === false ? "deleted" : "" },
                h("td", null, a.assessment_name),
                h("td", null, a.feedback ? "feedback" : "expectation"),
                h("td", { class: "assessment-value" }, jsonTree(assessmentValue(a), OPEN_LEVELS)),
                h("td", { class: "assessment-rationale" }, a.rationale ?? ""),
                h("td", null, `${a.source?.source_type ?? ""} ${a.source?.source_id ?? ""}`),
                h("td", null, a.valid === false ? "overridden" : "yes"),
                h("td", { class: "nowrap" }, a.create_time ? fmtTime(timeMs(a.create_time)) : ""),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No assessments yet."),
    form,
    h("h2", null, "Request and response"),
    h("div", { class: "kv-previews" }, h("pre", { class: "trace-request" }, info.request_preview ?? ""), h("pre", { class: "trace-response" }, info.response_preview ?? "")),
    h("h2", null, "Tags"),
    kv(info.tags, "trace-tags"),
    h("h2", null, "Metadata"),
    kv(info.trace_metadata, "trace-metadata"),
  );
  const first = rows.firstElementChild as HTMLElement | null;
  if (first && flat.length) select(flat[0], first);
}
