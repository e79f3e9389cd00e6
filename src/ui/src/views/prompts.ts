// Prompts: the list of registered prompts, and one prompt's versions with their commit
// messages and aliases, a version's template with its {{variables}} marked, a line diff
// between two versions, and alias editing. Templates are user text: always text nodes.

import { mlGet, mlSend } from "../api";
import { h, replace } from "../dom";
import { fmtTime } from "../format";
import { diffLines, listPrompts, pieces, promptVersions, template, variables } from "../prompts";
import { ModelVersion, RegisteredModel } from "../registry";
import { current as currentRoute, href, Route, setQuery } from "../router";

function templateBlock(text: string): HTMLElement {
  return h(
    "pre",
    { class: "prompt-template" },
    pieces(text).map((p) => (p.variable ? h("span", { class: "prompt-var" }, p.text) : p.text)),
  );
}

export function promptsView(root: HTMLElement, route: Route): void {
  const search = h("input", {
    type: "search",
    class: "prompts-search",
    placeholder: "Search prompts by name",
    "aria-label": "search prompts",
    value: route.q.get("q") ?? "",
    onkeydown: (e: KeyboardEvent) => {
      if (e.key === "Enter") void load();
    },
  });
  const err = h("div", { class: "error inline-error", role: "alert" });
  const list = h("div", { class: "prompt-list" });
  document.title = "Prompts · labtrack";
  replace(
    root,
    h("div", { class: "page-head" }, h("h1", null, "Prompts"), h("a", { class: "button", href: "#/playground" }, "Open the playground")),
    h("div", { class: "toolbar" }, search, h("button", { onclick: () => void load() }, "Search")),
    err,
    list,
  );

  async function load(): Promise<void> {
    setQuery({ q: search.value.trim() || undefined });
    let prompts: RegisteredModel[];
    try {
      prompts = await listPrompts(search.value);
      err.textContent = "";
    } catch (e) {
      err.textContent = (e as Error).message;
      return;
    }
    if (!prompts.length) {
      replace(list, h("p", { class: "muted" }, "No prompts yet. Register one with lt.register_prompt or mlflow.genai.register_prompt, or from the playground."));
      return;
    }
    replace(
      list,
      h(
        "table",
        { class: "grid prompts-table" },
        h("thead", null, h("tr", null, h("th", null, "Prompt"), h("th", null, "Latest version"), h("th", null, "Aliases"), h("th", null, "Tags"), h("th", null, "Updated"))),
        h(
          "tbody",
          null,
          prompts.map((p) => {
            const latest = p.latest.reduce((m, v) => Math.max(m, Number(v.version)), 0);
            const tags = Object.entries(p.tags).filter(([k]) => !k.startsWith("mlflow.") && !k.startsWith("_mlflow"));
            return h(
              "tr",
              { class: "prompt-row", dataset: { name: p.name } },
              h("td", null, h("a", { class: "prompt-link", href: href(["prompts", p.name]) }, p.name)),
              h("td", { class: "num" }, latest ? `v${latest}` : ""),
              h("td", null, Object.keys(p.aliases).sort().map((a) => h("span", { class: "chip alias-chip" }, `@${a}`, h("span", { class: "muted" }, ` → v${p.aliases[a]}`)))),
              h("td", null, tags.map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`))),
              h("td", null, fmtTime(p.updated)),
            );
          }),
        ),
      ),
    );
  }
  void load();
}

export function promptView(root: HTMLElement, route: Route): void {
  const name = route.parts[1];
  document.title = `${name} · Prompts · labtrack`;
  const err = h("div", { class: "error inline-error", role: "alert" });
  const body = h("div", { class: "prompt-page" });
  replace(
    root,
    h("div", { class: "crumbs" }, h("a", { href: "#/prompts" }, "Prompts"), " / ", name),
    h("div", { class: "page-head" }, h("h1", { class: "prompt-name" }, name)),
    err,
    body,
  );

  async function load(): Promise<void> {
    let versions: ModelVersion[];
    const aliases: Record<string, string> = Object.create(null);
    try {
      versions = await promptVersions(name);
      const model = await mlGet<{ registered_model: { aliases?: { alias: string; version: string }[] } }>("registered-models/get", { name });
      for (const a of model.registered_model.aliases ?? []) aliases[a.alias] = String(a.version);
      err.textContent = "";
    } catch (e) {
      err.textContent = (e as Error).message;
      return;
    }
    if (!versions.length) {
      replace(body, h("p", { class: "muted" }, "This prompt has no versions."));
      return;
    }
    const q = currentRoute().q; // the diff choice rewrites the query without a re-render
    const chosen = q.get("v") && versions.some((v) => v.version === q.get("v")) ? q.get("v")! : versions[0].version;
    const current = versions.find((v) => v.version === chosen)!;
    const other = q.get("diff") ?? (versions.length > 1 ? versions.find((v) => v.version !== chosen)!.version : "");
    const diffWith = versions.find((v) => v.version === other && v.version !== chosen);

    const versionRows = versions.map((v) =>
      h(
        "tr",
        { class: `prompt-version-row${v.version === chosen ? " selected" : ""}`, dataset: { version: v.version } },
        h("td", null, h("a", { href: href(["prompts", name], { v: v.version }) }, `v${v.version}`)),
        h("td", { class: "commit-message" }, v.description),
        h("td", null, v.aliases.map((a) => h("span", { class: "chip alias-chip" }, `@${a}`))),
        h("td", null, fmtTime(v.created)),
      ),
    );
    const diffSelect = h(
      "select",
      {
        class: "diff-with",
        "aria-label": "compare with version",
        onchange: (e: Event) => {
          setQuery({ diff: (e.target as HTMLSelectElement).value || undefined });
          void load();
        },
      },
      h("option", { value: "" }, "(no diff)"),
      versions.filter((v) => v.version !== chosen).map((v) => h("option", { value: v.version, selected: v.version === diffWith?.version }, `v${v.version}`)),
    );
    const diff = diffWith
      ? h(
          "pre",
          { class: "prompt-diff" },
          diffLines(template(diffWith), template(current)).map((l) =>
            h("div", { class: `diff-${l.kind}` }, `${l.kind === "add" ? "+ " : l.kind === "del" ? "- " : "  "}${l.text}`),
          ),
        )
      : h("p", { class: "muted" }, "Pick another version to see what changed.");

    const aliasName = h("input", { type: "text", class: "alias-name", placeholder: "alias, e.g. production", "aria-label": "alias name" });
    const aliasErr = h("div", { class: "error inline-error", role: "alert" });
    const setAlias = async (e: Event) => {
      e.preventDefault();
      const alias = aliasName.value.trim();
      if (!alias) return;
      try {
        await mlSend("POST", "registered-models/alias", { name, alias, version: chosen });
        await load();
      } catch (x) {
        aliasErr.textContent = (x as Error).message;
      }
    };
    const dropAlias = async (alias: string) => {
      try {
        await mlSend("DELETE", "registered-models/alias", { name, alias });
        await load();
      } catch (x) {
        aliasErr.textContent = (x as Error).message;
      }
    };
    const vars = variables(template(current));
    replace(
      body,
      h("h2", null, "Versions"),
      h("table", { class: "grid prompt-versions" }, h("thead", null, h("tr", null, h("th", null, "Version"), h("th", null, "Commit message"), h("th", null, "Aliases"), h("th", null, "Created"))), h("tbody", null, versionRows)),
      h("h2", null, `Template of v${chosen}`),
      templateBlock(template(current)),
      h("p", { class: "prompt-vars" }, "Variables: ", vars.length ? vars.map((v) => h("code", { class: "chip" }, v)) : h("span", { class: "muted" }, "none")),
      h("p", null, h("a", { class: "button open-playground", href: href(["playground"], { prompt: name, version: chosen }) }, "Try it in the playground")),
      h("h2", null, "Diff"),
      h("div", { class: "toolbar" }, `v${chosen} against `, diffSelect),
      diff,
      h("h2", null, "Aliases"),
      h(
        "ul",
        { class: "alias-list" },
        Object.keys(aliases)
          .sort()
          .map((a) => h("li", null, h("span", { class: "chip alias-chip" }, `@${a}`), ` → v${aliases[a]} `, h("button", { class: "danger", onclick: () => void dropAlias(a) }, "remove"))),
      ),
      h("form", { class: "alias-form", onsubmit: setAlias }, aliasName, h("button", { type: "submit" }, `Point at v${chosen}`)),
      aliasErr,
    );
  }
  void load();
}
