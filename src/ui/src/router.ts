// Hash routing: "#/experiments/1/runs?filter=..." keeps the document at the prefix root, so
// every relative request URL resolves the same on every page.

export interface Route {
  parts: string[];
  q: URLSearchParams;
}

export function current(): Route {
  const raw = location.hash.replace(/^#\/?/, "");
  const i = raw.indexOf("?");
  const path = i < 0 ? raw : raw.slice(0, i);
  const qs = i < 0 ? "" : raw.slice(i + 1);
  return fromMlflow({ parts: path.split("/").filter(Boolean).map(decodeURIComponent), q: new URLSearchParams(qs) });
}

// MLflow's run tabs -> ours, for links such as #/experiments/1/runs/<id>/artifacts.
const MLFLOW_RUN_TABS: Record<string, string> = {
  overview: "overview", "model-metrics": "charts", "system-metrics": "charts", artifacts: "artifacts",
};

/**
 * The links the mlflow client prints ("View run", "View experiment") open the same pages here:
 * #/experiments/<id>/runs/<run_id>[/<tab>[/<artifact path>]] is the run, #/experiments/<id> the
 * experiment's runs. MLflow's #/models/<name>[/versions/<v>] are already our own routes.
 */
function fromMlflow(r: Route): Route {
  const [a, exp, c, runId, tab, ...rest] = r.parts;
  if (a === "experiments" && exp && c === "runs" && runId) {
    const ours = tab ? MLFLOW_RUN_TABS[tab] : undefined;
    if (ours && ours !== "overview" && !r.q.has("tab")) r.q.set("tab", ours);
    if (ours === "artifacts" && rest.length && !r.q.has("path")) r.q.set("path", rest.join("/"));
    return { parts: ["runs", runId], q: r.q };
  }
  if (a === "experiments" && exp && r.parts.length === 2) return { parts: ["experiments", exp, "runs"], q: r.q };
  return r;
}

export function href(parts: string[], q?: Record<string, string | undefined> | URLSearchParams): string {
  const path = parts.map(encodeURIComponent).join("/");
  let qs = "";
  if (q) {
    const p = q instanceof URLSearchParams ? q : new URLSearchParams();
    if (!(q instanceof URLSearchParams)) for (const [k, v] of Object.entries(q)) if (v !== undefined && v !== "") p.set(k, v);
    qs = p.toString();
  }
  return `#/${path}${qs ? `?${qs}` : ""}`;
}

export function go(parts: string[], q?: Record<string, string | undefined>): void {
  location.hash = href(parts, q).slice(1);
}

/** Rewrites the query part of the current hash without a re-render (table state, chart options). */
export function setQuery(updates: Record<string, string | undefined>): void {
  const r = current();
  for (const [k, v] of Object.entries(updates)) {
    if (v === undefined || v === "") r.q.delete(k);
    else r.q.set(k, v);
  }
  history.replaceState(history.state, "", href(r.parts, r.q));
}
