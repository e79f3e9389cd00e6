// Registered models: a searchable list (MLflow's filter grammar, or plain text matched
// against names) with each model's latest version per stage and its aliases.

import { ApiError, mlPost } from "../api";
import { h, replace } from "../dom";
import { fmtTime } from "../format";
import { modelFilter, RegisteredModel, searchModels, STAGES } from "../registry";
import { href, Route, setQuery } from "../router";

export function stageBadge(stage: string): HTMLElement {
  const known = (STAGES as readonly string[]).includes(stage) ? stage.toLowerCase() : "other";
  return h("span", { class: `stage stage-${known}`, dataset: { stage } }, stage);
}

export function versionHref(name: string, version: string): string {
  return href(["models", name, "versions", version]);
}

export function modelsView(root: HTMLElement, route: Route): void {
  let models: RegisteredModel[] = [];
  let seq = 0;
  const search = h("input", {
    type: "search",
    class: "models-search",
    placeholder: "Search models: a name, or a filter such as name LIKE 'cnn%' or tags.team = 'vision'",
    "aria-label": "search models",
    value: route.q.get("q") ?? "",
    onkeydown: (e: KeyboardEvent) => {
      if (e.key === "Enter") void load();
    },
  });
  const searchErr = h("div", { class: "error inline-error filter-error", role: "alert" });
  const newName = h("input", { type: "text", class: "new-model-name", placeholder: "New model name", "aria-label": "new model name" });
  const createErr = h("div", { class: "error inline-error create-error", role: "alert" });
  const create = async (e: Event) => {
    e.preventDefault();
    const name = newName.value.trim();
    if (!name) return;
    try {
      await mlPost("registered-models/create", { name });
      newName.value = "";
      createErr.textContent = "";
      await load();
    } catch (err) {
      createErr.textContent = (err as Error).message;
    }
  };
  const status = h("div", { class: "muted model-count" });
  const list = h("div", { class: "model-list" });
  document.title = "Models · labtrack";
  replace(
    root,
    h("div", { class: "page-head" }, h("h1", null, "Registered models")),
    h(
      "div",
      { class: "toolbar" },
      h("div", { class: "filter-box" }, search, h("button", { class: "apply-search", onclick: () => void load() }, "Search"), searchErr),
      h("form", { class: "create-model", onsubmit: create }, newName, h("button", { type: "submit" }, "Create model")),
    ),
    createErr,
    status,
    list,
  );

  function row(m: RegisteredModel): HTMLElement {
    const aliases = Object.keys(m.aliases).sort();
    const tags = Object.keys(m.tags).sort();
    return h(
      "tr",
      { class: "model-row", dataset: { model: m.name } },
      h("td", { class: "model-name" }, h("a", { href: href(["models", m.name]), class: "model-link" }, m.name)),
      h(
        "td",
        { class: "latest-versions" },
        m.latest.length
          ? m.latest.map((v) =>
              h("a", { class: "chip latest-version", href: versionHref(m.name, v.version), dataset: { stage: v.stage, version: v.version } }, stageBadge(v.stage), ` v${v.version}`),
            )
          : h("span", { class: "muted" }, "no versions"),
      ),
      h(
        "td",
        { class: "model-aliases" },
        aliases.map((a) => h("a", { class: "chip alias-chip", href: versionHref(m.name, m.aliases[a]), dataset: { alias: a } }, `@${a}`, h("span", { class: "muted" }, ` → v${m.aliases[a]}`))),
      ),
      h("td", { class: "model-tags" }, tags.map((k) => h("span", { class: "chip tag-chip", title: `${k} = ${m.tags[k]}` }, `${k}: ${m.tags[k]}`))),
      h("td", null, fmtTime(m.updated)),
    );
  }

  async function load(): Promise<void> {
    const n = ++seq;
    const text = search.value;
    setQuery({ q: text.trim() || undefined });
    searchErr.textContent = "";
    try {
      const found = await searchModels(modelFilter(text));
      if (n !== seq) return;
      models = found;
      search.classList.remove("invalid");
    } catch (e) {
      if (n !== seq) return;
      searchErr.textContent = (e as Error).message;
      if (e instanceof ApiError && e.status === 400) search.classList.add("invalid");
      return;
    }
    status.textContent = `${models.length} model${models.length === 1 ? "" : "s"}`;
    replace(
      list,
      models.length
        ? h(
            "table",
            { class: "grid models-table" },
            h("thead", null, h("tr", null, h("th", null, "Name"), h("th", null, "Latest versions"), h("th", null, "Aliases"), h("th", null, "Tags"), h("th", null, "Last modified"))),
            h("tbody", null, models.map(row)),
          )
        : h("p", { class: "muted" }, text.trim() ? "No model matches." : "No registered models yet. Register one from a run with lt.register_model(\"runs:/<run id>/model\", \"name\")."),
    );
  }

  void load();
}
