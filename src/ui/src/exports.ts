// Downloads from the runs table (issue 20): the table as CSV or Parquet (what is shown, or
// everything) and the full histories of the selected runs as one long table. The server
// writes the files (api/2.0/labtrack/runs/export, runs/export-histories); a failure (a bad
// filter, pyarrow missing) is shown beside the buttons, not saved as a file.

import { ApiError } from "./api";
import { h, replace } from "./dom";
import { parseSummaryId, serverId, summaryOrder } from "./summaries";

export interface TableState {
  experimentIds: string[];
  filter: string; // the server filter, with the metric ranges as clauses
  sort: string; // "<column id>:asc|desc"
  columns: string[]; // the shown column ids
  viewType: string;
  selected: string[];
}

const ORDER_ATTR: Record<string, string> = {
  "attr.name": "attributes.run_name",
  "attr.status": "attributes.status",
  "attr.start": "attributes.start_time",
  "attr.user": "attributes.user_id",
  "attr.id": "attributes.run_id",
};

/** The table's sort as an MLflow order_by entry ([] where MLflow cannot order by it). */
export function orderBy(sort: string): string[] {
  const [id, dir] = sort.split(":");
  const d = dir === "asc" ? "ASC" : "DESC";
  if (ORDER_ATTR[id]) return [`${ORDER_ATTR[id]} ${d}`];
  const summary = parseSummaryId(id);
  if (summary) return summaryOrder(summary[0], summary[1], d);
  const dot = id.indexOf(".");
  const kind = id.slice(0, dot);
  if (kind === "metrics" || kind === "params" || kind === "tags") return [`${kind}.\`${id.slice(dot + 1).replace(/`/g, "")}\` ${d}`];
  return [];
}

/** Metric ranges [key, min, max] as filter clauses joined to `filter`: the server then counts, sorts,
 * windows and exports what the table shows. */
export function withRanges(filter: string, ranges: [string, number | null, number | null][]): string {
  const parts = filter ? [filter] : [];
  for (const [k, a, b] of ranges) {
    const key = `metrics.\`${k.replace(/`/g, "")}\``;
    parts.push(`${key} >= ${a ?? -Number.MAX_VALUE}`);
    if (b !== null) parts.push(`${key} <= ${b}`);
  }
  return parts.join(" and ");
}

/** POSTs `body` to api/2.0/labtrack/<path> and saves the answer under the server's file name. */
export async function download(path: string, body: unknown): Promise<string> {
  const resp = await fetch(`api/2.0/labtrack/${path}`, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!resp.ok) {
    let b: { message?: string; error_code?: string } = {};
    try {
      b = (await resp.json()) as typeof b;
    } catch {
      // not JSON: the status line says enough
    }
    throw new ApiError(b.message || `${resp.status} ${resp.statusText}`, resp.status, b.error_code || String(resp.status));
  }
  const name = /filename="([^"]+)"/.exec(resp.headers.get("Content-Disposition") ?? "")?.[1] ?? "export";
  const url = URL.createObjectURL(await resp.blob());
  const a = h("a", { download: name, hidden: true });
  a.href = url; // set directly: h() lets only relative and http(s) links through, and this is our own blob
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return name;
}

/** The "Export" button and its menu; `state` is read when a choice is clicked. */
export function exportMenu(state: () => TableState): HTMLElement {
  const menu = h("div", { class: "popover export-menu", hidden: true });
  const note = h("div", { class: "export-status muted", role: "status" });
  const run = async (label: string, path: string, body: unknown) => {
    note.className = "export-status muted";
    note.textContent = `Preparing ${label}…`;
    try {
      note.textContent = `Saved ${await download(path, body)}`;
    } catch (e) {
      note.className = "export-status error";
      note.textContent = (e as Error).message;
    }
  };
  const table = (format: "csv" | "parquet", shown: boolean) => {
    const s = state();
    const body = shown
      ? { experiment_ids: s.experimentIds, filter: s.filter, order_by: orderBy(s.sort), columns: s.columns.map(serverId), run_view_type: s.viewType, format }
      : { experiment_ids: s.experimentIds, run_view_type: s.viewType, format };
    void run(`${format.toUpperCase()}`, "runs/export", body);
  };
  const histories = (format: "csv" | "parquet") => {
    const ids = state().selected;
    if (!ids.length) {
      note.className = "export-status error";
      note.textContent = "Select runs first: their histories are exported.";
      return;
    }
    void run(`the histories of ${ids.length} runs`, "runs/export-histories", { run_ids: ids, format });
  };
  const item = (cls: string, label: string, fn: () => void) =>
    h("button", { class: `export-item ${cls}`, onclick: () => { menu.hidden = true; fn(); } }, label);
  replace(
    menu,
    h("div", { class: "muted" }, "The table as shown (filter, sort, columns)"),
    item("export-csv-shown", "Export CSV (shown)", () => table("csv", true)),
    item("export-parquet-shown", "Export Parquet (shown)", () => table("parquet", true)),
    h("div", { class: "muted" }, "Every run and column"),
    item("export-csv-all", "Export CSV (all)", () => table("csv", false)),
    item("export-parquet-all", "Export Parquet (all)", () => table("parquet", false)),
    h("div", { class: "muted" }, "Metric histories of the selected runs, one long table"),
    item("export-histories", "Export histories of selected (CSV)", () => histories("csv")),
    item("export-histories-parquet", "Export histories of selected (Parquet)", () => histories("parquet")),
  );
  const btn = h("button", { class: "export-btn", "aria-haspopup": "menu", onclick: () => { menu.hidden = !menu.hidden; } }, "Export");
  const close = (e: MouseEvent) => {
    if (!btn.isConnected) document.removeEventListener("click", close); // the view is gone
    else if (!menu.hidden && !menu.contains(e.target as Node) && e.target !== btn) menu.hidden = true;
  };
  document.addEventListener("click", close);
  return h("span", { class: "popover-anchor export" }, btn, menu, note);
}
