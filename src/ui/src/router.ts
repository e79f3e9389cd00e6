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
  return { parts: path.split("/").filter(Boolean).map(decodeURIComponent), q: new URLSearchParams(qs) };
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
