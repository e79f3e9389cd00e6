// An experiment's traces: MLflow's trace filter, sorting by time, latency or status, token usage,
// and pages loaded on demand. Previews are user data: text nodes only.

import { h, replace } from "../dom";
import { fmtDuration, fmtTime } from "../format";
import { getExperiment } from "../model";
import { href, Route, setQuery } from "../router";
import { durationMs, searchTraces, SORTS, timeMs, tokens, TraceInfo, traceName } from "../traces";

function preview(text: string | undefined): string {
  const t = text ?? "";
  return t.length > 120 ? `${t.slice(0, 120)}…` : t;
}

export function stateBadge(state: string): HTMLElement {
  const cls = state === "OK" ? "status-finished" : state === "ERROR" ? "status-failed" : "status-running";
  return h("span", { class: `status trace-state ${cls}` }, state);
}

export function tracesView(root: HTMLElement, route: Route): void {
  const expId = route.parts[1];
  let sort = SORTS[route.q.get("sort") ?? ""] ? (route.q.get("sort") as string) : "newest";
  const filter = h("input", {
    type: "search",
    class: "filter-input trace-filter",
    value: route.q.get("filter") ?? "",
    placeholder: "Filter: trace.status = 'ERROR' and tags.team = 'nlp' and span.type = 'LLM'",
    "aria-label": "filter traces",
    onkeydown: (e: KeyboardEvent) => {
      if (e.key === "Enter") void load();
    },
  });
  const sortSel = h(
    "select",
    {
      class: "trace-sort",
      "aria-label": "sort traces",
      onchange: () => {
        sort = sortSel.value;
        void load();
      },
    },
    Object.entries(SORTS).map(([k, s]) => h("option", { value: k, selected: k === sort }, s.label)),
  );
  sortSel.value = sort;
  const err = h("div", { class: "error inline-error", role: "alert" });
  const count = h("span", { class: "muted trace-count" });
  const tbody = h("tbody");
  const more = h("button", { class: "more-traces", hidden: true, onclick: () => void page() }, "Load more");
  const title = h("h1", null, "Traces");
  let token: string | undefined;
  let shown = 0;
  document.title = "Traces · labtrack";
  replace(
    root,
    h("div", { class: "page-head" }, title, count, h("a", { class: "button", href: href(["experiments", expId, "runs"]) }, "Runs"), h("a", { class: "button scorers-link", href: href(["experiments", expId, "scorers"]) }, "Scorers")),
    h("div", { class: "toolbar" }, h("div", { class: "filter-box" }, filter), sortSel, h("button", { onclick: () => void load() }, "Search")),
    err,
    h(
      "table",
      { class: "grid traces-table" },
      h(
        "thead",
        null,
        h("tr", null, ["Trace", "Request", "Response", "State", "Time", "Latency", "Tokens", "Run", "Assessments"].map((c) => h("th", null, c))),
      ),
      tbody,
    ),
    more,
  );
  void getExperiment(expId).then(
    (e) => {
      title.textContent = `Traces of ${e.name}`;
      document.title = `Traces · ${e.name} · labtrack`;
    },
    () => undefined,
  );

  function row(t: TraceInfo): HTMLElement {
    const tok = tokens(t);
    const run = t.trace_metadata?.["mlflow.sourceRun"] ?? t.labtrack_linked_runs?.[0];
    const n = (t.assessments ?? []).filter((a) => a.valid !== false).length;
    return h(
      "tr",
      { class: "trace-row", dataset: { traceId: t.trace_id } },
      h("td", null, h("a", { class: "trace-link", href: href(["traces", t.trace_id]) }, traceName(t))),
      h("td", { class: "preview" }, preview(t.request_preview)),
      h("td", { class: "preview" }, preview(t.response_preview)),
      h("td", null, stateBadge(t.state)),
      h("td", { class: "nowrap" }, fmtTime(timeMs(t.request_time))),
      h("td", { class: "num latency" }, fmtLatency(durationMs(t.execution_duration))),
      h("td", { class: "num tokens", title: tok ? `in ${tok.input ?? "?"}, out ${tok.output ?? "?"}` : "" }, tok?.total ?? ""),
      h("td", null, run ? h("a", { href: href(["runs", run]) }, run.slice(0, 8)) : ""),
      h("td", { class: "num" }, n || ""),
    );
  }

  async function page(): Promise<void> {
    try {
      const r = await searchTraces(expId, filter.value.trim(), SORTS[sort].order, token);
      err.textContent = "";
      for (const t of r.traces ?? []) tbody.appendChild(row(t));
      shown += (r.traces ?? []).length;
      token = r.next_page_token || undefined;
      more.hidden = !token;
      count.textContent = `${shown}${token ? "+" : ""} trace${shown === 1 ? "" : "s"}`;
      if (!shown) replace(tbody, h("tr", null, h("td", { colspan: "9", class: "muted" }, "No traces match. Log some with @lt.trace or @mlflow.trace.")));
    } catch (e) {
      err.textContent = (e as Error).message;
    }
  }

  async function load(): Promise<void> {
    setQuery({ filter: filter.value.trim() || undefined, sort: sort === "newest" ? undefined : sort });
    replace(tbody);
    token = undefined;
    shown = 0;
    await page();
  }
  void load();
}

export function fmtLatency(ms: number): string {
  if (!Number.isFinite(ms)) return "";
  return ms < 1000 ? `${Math.round(ms)} ms` : fmtDuration(ms);
}
