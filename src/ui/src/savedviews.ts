// Saved views of an experiment's runs page, kept on the server (api/2.0/labtrack/views/...): the
// page's hash query (filter, columns, sort, group, ranges, chart settings) and the dashboard's
// panels under a name. A view's link, #/experiments/<id>/views/<view_id>, opens it in any browser;
// opening one puts its query back into the hash, with "saved=<view_id>" to know which view it is.

import { ltGet, ltPost } from "./api";
import { confirmAction, h, replace } from "./dom";
import { Experiment, Run } from "./model";
import { current, href, Route, setQuery } from "./router";
import { Dashboard, Panel, parsePanels } from "./views/dashboard";

export interface SavedView {
  view_id: string;
  experiment_id: string;
  name: string;
  state: { query: string; panels: Panel[] };
  created_by: string;
  creation_time: number;
  last_update_time: number;
}

// Kept out of a view's query: the selection is one person's, "saved" and "panels" are stored apart.
const NOT_SAVED = ["sel", "saved", "panels"];

/** The current page's state, as a view keeps it. */
export function pageState(): { query: string; panels: Panel[] } {
  const q = current().q;
  const panels = parsePanels(q.get("panels"));
  for (const k of NOT_SAVED) q.delete(k);
  return { query: q.toString(), panels };
}

export function viewLink(v: Pick<SavedView, "experiment_id" | "view_id">): string {
  return href(["experiments", v.experiment_id, "views", v.view_id]);
}

/** The runs page a view shows: its query, its panels, and which view it is. */
export function viewPage(v: SavedView): string {
  const q = new URLSearchParams(v.state.query);
  if (v.state.panels.length) q.set("panels", JSON.stringify(v.state.panels));
  q.set("saved", v.view_id);
  return href(["experiments", v.experiment_id, "runs"], q);
}

/** #/experiments/<id>/views/<view_id>: fetches the view and opens its runs page in place of the link. */
export function savedViewRoute(root: HTMLElement, route: Route): void {
  const [, exp, , id] = route.parts;
  replace(root, h("p", { class: "muted" }, "Opening the saved view…"));
  ltGet<{ view: SavedView }>("views/get", { view_id: id })
    .then((r) => location.replace(viewPage(r.view)))
    .catch((e: Error) =>
      replace(root, h("div", { class: "error", role: "alert" }, `Cannot open this saved view: ${e.message}`), h("a", { href: href(["experiments", exp, "runs"]) }, "Back to the runs")),
    );
}

/** The "Views" menu: open, save (as new or over the current view), rename, delete, and a view's link. */
function viewsMenu(expId: string): { el: HTMLElement; dispose: () => void } {
  const btn = h("button", { class: "views-btn", "aria-haspopup": "true" }, "Views ▾");
  const menu = h("div", { class: "popover views-menu", hidden: true, role: "dialog", "aria-label": "saved views" });
  const err = h("div", { class: "error inline-error views-error", role: "alert" });
  let views: SavedView[] = [];

  const fail = (e: unknown) => {
    err.textContent = (e as Error).message;
  };
  const shareUrl = (v: SavedView) => `${location.origin}${location.pathname}${location.search}${viewLink(v)}`;

  async function refresh(): Promise<void> {
    try {
      views = (await ltGet<{ views?: SavedView[] }>("views/list", { experiment_id: expId })).views ?? [];
      err.textContent = "";
    } catch (e) {
      fail(e);
    }
    render();
  }

  function render(): void {
    const savedId = current().q.get("saved") ?? "";
    const cur = views.find((v) => v.view_id === savedId);
    const name = h("input", { type: "text", class: "view-name", placeholder: "Name of the new view", "aria-label": "new view name" });
    const saveNew = async () => {
      try {
        const r = await ltPost<{ view: SavedView }>("views/create", { experiment_id: expId, name: name.value, state: pageState() });
        setQuery({ saved: r.view.view_id });
        await refresh();
      } catch (e) {
        fail(e);
      }
    };
    replace(
      menu,
      h("h3", null, "Saved views"),
      cur
        ? h(
            "div",
            { class: "current-view" },
            h("div", null, "This page is the view ", h("b", { class: "current-view-name" }, cur.name)),
            h("button", {
              class: "update-view",
              onclick: async () => {
                try {
                  await ltPost("views/update", { view_id: cur.view_id, state: pageState() });
                  await refresh();
                } catch (e) {
                  fail(e);
                }
              },
            }, "Save changes to this view"),
            h("label", null, "Link ", h("input", { type: "text", class: "view-url", readonly: true, value: shareUrl(cur), "aria-label": "link to this view", onfocus: (e: Event) => (e.target as HTMLInputElement).select() })),
          )
        : null,
      h(
        "ul",
        { class: "saved-views" },
        views.map((v) => {
          const li = h("li", { class: "saved-view", dataset: { viewId: v.view_id } });
          const show = () =>
            replace(
              li,
              h("a", { class: "view-link", href: viewLink(v), title: v.created_by ? `saved by ${v.created_by}` : undefined }, v.name),
              h("button", { class: "rename-view", "aria-label": `rename ${v.name}`, onclick: rename }, "Rename"),
              h("button", {
                class: "delete-view danger",
                "aria-label": `delete ${v.name}`,
                onclick: async () => {
                  if (!confirmAction(`Delete the saved view "${v.name}"?`)) return;
                  try {
                    await ltPost("views/delete", { view_id: v.view_id });
                    if (v.view_id === savedId) setQuery({ saved: undefined });
                    await refresh();
                  } catch (e) {
                    fail(e);
                  }
                },
              }, "Delete"),
            );
          function rename(): void {
            const input = h("input", { type: "text", class: "rename-input", value: v.name, "aria-label": `new name for ${v.name}` });
            const ok = async () => {
              try {
                await ltPost("views/update", { view_id: v.view_id, name: input.value });
                await refresh();
              } catch (e) {
                fail(e);
              }
            };
            input.addEventListener("keydown", (e) => {
              if (e.key === "Enter") void ok();
              if (e.key === "Escape") show();
            });
            replace(li, input, h("button", { class: "rename-ok", onclick: ok }, "OK"), h("button", { onclick: show }, "Cancel"));
            input.focus();
          }
          show();
          return li;
        }),
        views.length ? null : h("li", { class: "muted" }, "No saved views yet."),
      ),
      h(
        "form",
        { class: "save-view-form", onsubmit: (e: Event) => { e.preventDefault(); void saveNew(); } },
        name,
        h("button", { type: "submit", class: "save-view" }, "Save as new view"),
      ),
      err,
    );
  }

  btn.addEventListener("click", () => {
    menu.hidden = !menu.hidden;
    if (!menu.hidden) void refresh();
  });
  const close = (e: MouseEvent) => {
    const t = e.target as Node;
    if (!menu.hidden && t.isConnected && !menu.contains(t) && t !== btn) menu.hidden = true;
  };
  document.addEventListener("click", close);
  return { el: h("span", { class: "popover-anchor" }, btn, menu), dispose: () => document.removeEventListener("click", close) };
}

/**
 * What the runs page adds for views and dashboards: its toolbar items (the Views menu on a
 * one-experiment page, the Dashboard toggle), the dashboard pane, and `update` for each rebuild.
 */
export function viewTools(
  expParam: string,
  experiments: Map<string, Experiment>,
): { toolbar: HTMLElement; pane: HTMLElement; update: (runs: Run[]) => void; dispose: () => void } {
  const dashboard = new Dashboard(experiments);
  const menu = expParam && !expParam.includes(",") ? viewsMenu(expParam) : null;
  const toggle = h("button", {
    class: `dashboard-btn${dashboard.visible ? " active" : ""}`,
    "aria-pressed": String(dashboard.visible),
    onclick: () => {
      dashboard.toggle();
      toggle.classList.toggle("active", dashboard.visible);
      toggle.setAttribute("aria-pressed", String(dashboard.visible));
    },
  }, "Dashboard");
  return {
    toolbar: h("span", { class: "view-tools" }, menu?.el, toggle),
    pane: dashboard.el,
    update: (runs) => dashboard.setRuns(runs),
    dispose: () => {
      menu?.dispose();
      dashboard.dispose();
    },
  };
}
