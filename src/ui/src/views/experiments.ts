// Experiments: search, create, rename, delete, restore; pick several to see their runs together.

import { ApiError, ltGet, mlPost } from "../api";
import { confirmAction, h, replace } from "../dom";
import { fmtTime } from "../format";
import { Experiment, searchExperiments } from "../model";
import { href, Route, setQuery } from "../router";

/** Per experiment, from labtrack's experiments/activity (absent on a plain MLflow server). */
interface Activity {
  experiment_id: string;
  runs: number;
  running: number;
  last_activity: number | null;
}

export function experimentsView(root: HTMLElement, route: Route): void {
  let all: Experiment[] = [];
  let activity = new Map<string, Activity>();
  const picked = new Set<string>();
  const search = h("input", {
    type: "search",
    class: "exp-search",
    placeholder: "Search experiments by name",
    value: route.q.get("q") ?? "",
    oninput: () => {
      setQuery({ q: search.value });
      draw();
    },
  });
  const showDeleted = h("input", {
    type: "checkbox",
    class: "show-deleted",
    checked: route.q.get("deleted") === "1",
    onchange: () => {
      setQuery({ deleted: showDeleted.checked ? "1" : undefined });
      void load();
    },
  });
  const newName = h("input", { type: "text", class: "new-exp-name", placeholder: "New experiment name" });
  const createErr = h("div", { class: "error inline-error", role: "alert" });
  const create = async (e: Event) => {
    e.preventDefault();
    const name = newName.value.trim();
    if (!name) return;
    try {
      await mlPost("experiments/create", { name });
      newName.value = "";
      createErr.textContent = "";
      await load();
    } catch (err) {
      createErr.textContent = (err as Error).message;
    }
  };
  const compareBtn = h("a", { class: "button compare-exps", hidden: true }, "Runs of selected");
  const list = h("div", { class: "exp-list" });
  const status = h("div", { class: "muted" });
  const hint = h(
    "div",
    { class: "empty-hint", hidden: true },
    h("p", null, "No runs yet. Log one from a notebook or script:"),
    h("pre", null, 'import labtrack as lt\n\nlt.set_experiment("my-experiment")\nwith lt.start_run():\n    lt.log_param("lr", 0.01)\n    lt.log_metric("loss", 0.42, step=1)'),
    h("p", { class: "muted" }, "Or with the mlflow client: export MLFLOW_TRACKING_URI and MLFLOW_TRACKING_TOKEN as `labtrack server` printed them."),
  );
  replace(
    root,
    h("div", { class: "page-head" }, h("h1", null, "Experiments"), compareBtn),
    h(
      "div",
      { class: "toolbar" },
      search,
      h("label", null, showDeleted, " Show deleted"),
      h("form", { class: "create-exp", onsubmit: create }, newName, h("button", { type: "submit" }, "Create")),
    ),
    createErr,
    status,
    hint,
    list,
  );

  function updatePicked(): void {
    compareBtn.hidden = picked.size < 1;
    compareBtn.setAttribute("href", href(["experiments", [...picked].join(","), "runs"]));
    compareBtn.textContent = `Runs of ${picked.size} selected`;
  }

  function row(e: Experiment): HTMLElement {
    const deleted = e.lifecycle === "deleted";
    const nameCell = h("td", { class: "exp-name" });
    const err = h("span", { class: "error" });
    const showName = () =>
      replace(
        nameCell,
        deleted ? h("span", null, e.name) : h("a", { href: href(["experiments", e.id, "runs"]) }, e.name),
        deleted ? h("span", { class: "badge deleted" }, "deleted") : null,
        err,
      );
    showName();
    const rename = () => {
      const input = h("input", { type: "text", value: e.name, class: "rename-input", "aria-label": "new name" });
      const save = async (ev: Event) => {
        ev.preventDefault();
        try {
          await mlPost("experiments/update", { experiment_id: e.id, new_name: input.value.trim() });
          e.name = input.value.trim();
          showName();
        } catch (x) {
          err.textContent = (x as ApiError).message;
          showName();
        }
      };
      replace(nameCell, h("form", { onsubmit: save }, input, h("button", { type: "submit" }, "Save"), h("button", { type: "button", onclick: showName }, "Cancel")));
      input.focus();
      input.select();
    };
    const cb = h("input", {
      type: "checkbox",
      "aria-label": `select ${e.name}`,
      checked: picked.has(e.id),
      onchange: () => {
        if (cb.checked) picked.add(e.id);
        else picked.delete(e.id);
        updatePicked();
      },
    });
    const act = async (path: string, msg?: string) => {
      if (msg && !confirmAction(msg)) return;
      try {
        await mlPost(path, { experiment_id: e.id });
        await load();
      } catch (x) {
        err.textContent = (x as Error).message;
      }
    };
    return h(
      "tr",
      { class: deleted ? "deleted" : "", dataset: { id: e.id } },
      h("td", null, cb),
      nameCell,
      h("td", { class: "mono" }, e.id),
      runsCell(e.id),
      h("td", null, fmtTime(e.created)),
      h("td", { class: "last-activity" }, fmtTime(lastActivity(e))),
      h(
        "td",
        { class: "actions" },
        deleted
          ? h("button", { class: "restore", onclick: () => act("experiments/restore") }, "Restore")
          : [
              h("button", { class: "rename", onclick: rename }, "Rename"),
              h("button", { class: "delete danger", onclick: () => act("experiments/delete", `Delete experiment "${e.name}" and its runs?`) }, "Delete"),
            ],
      ),
    );
  }

  function runsCell(id: string): HTMLElement {
    const a = activity.get(id);
    if (!a) return h("td", { class: "num exp-runs" }, activity.size ? "0" : "");
    return h("td", { class: "num exp-runs" }, String(a.runs), a.running ? h("span", { class: "muted" }, ` (${a.running} running)`) : null);
  }

  /** The experiment's own last change, or its runs' last start or end if later. */
  function lastActivity(e: Experiment): number {
    return Math.max(e.updated || 0, activity.get(e.id)?.last_activity ?? 0);
  }

  function draw(): void {
    const q = search.value.trim().toLowerCase();
    const shown = all.filter((e) => !q || e.name.toLowerCase().includes(q) || e.id === q);
    status.textContent = `${shown.length} of ${all.length} experiments`;
    replace(
      list,
      h(
        "table",
        { class: "grid exp-table" },
        h("thead", null, h("tr", null, h("th", null, ""), h("th", null, "Name"), h("th", null, "ID"), h("th", { class: "num" }, "Runs"), h("th", null, "Created"), h("th", null, "Last activity"), h("th", null, ""))),
        h("tbody", null, shown.map(row)),
      ),
    );
  }

  async function load(): Promise<void> {
    try {
      const [found, act] = await Promise.all([
        searchExperiments(showDeleted.checked ? "ALL" : "ACTIVE_ONLY"),
        ltGet<{ experiments: Activity[] }>("experiments/activity").catch(() => ({ experiments: [] as Activity[] })),
      ]);
      all = found;
      activity = new Map(act.experiments.map((a) => [a.experiment_id, a]));
      all.sort((a, b) => (a.lifecycle === b.lifecycle ? 0 : a.lifecycle === "deleted" ? 1 : -1) || lastActivity(b) - lastActivity(a) || a.name.localeCompare(b.name));
      hint.hidden = act.experiments.some((a) => a.runs > 0) || !all.length;
      draw();
    } catch (e) {
      status.textContent = "";
      replace(list, h("div", { class: "error" }, (e as Error).message));
    }
  }
  void load();
}
