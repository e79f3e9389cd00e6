// One registered model (description, tags, aliases, versions with their source runs) and one
// model version (stage transitions, aliases, tags, description). Every change is a registry
// call; the page then re-reads what the server holds.

import { mlPost, mlSend } from "../api";
import { Child, h, replace } from "../dom";
import { fmtTime } from "../format";
import { descriptionEditor, tagEditor } from "../editors";
import { displayName, getRun } from "../model";
import { getModel, getVersion, literal, ModelVersion, RegisteredModel, searchVersions, STAGES } from "../registry";
import { href, Route } from "../router";
import { stageBadge, versionHref } from "./models";

/** A link to a version's source run, named by the run once it arrives. */
function runLink(runId: string, names: Map<string, Promise<string>>): Node | string {
  if (!runId) return "";
  const a = h("a", { class: "source-run", href: href(["runs", runId]) }, runId.slice(0, 8));
  let p = names.get(runId);
  if (!p && names.size < 100) {
    p = getRun(runId).then(displayName, () => runId.slice(0, 8));
    names.set(runId, p);
  }
  void p?.then((n) => {
    a.textContent = n;
  });
  return a;
}

function crumbs(...parts: (Node | string)[]): HTMLElement {
  const out: (Node | string)[] = [h("a", { href: "#/models" }, "Models")];
  for (const p of parts) out.push(" / ", p);
  return h("div", { class: "crumbs" }, ...out);
}

export function modelView(root: HTMLElement, route: Route): void {
  const name = route.parts[1];
  const runNames = new Map<string, Promise<string>>();
  document.title = `${name} · Models · labtrack`;

  async function load(): Promise<void> {
    let model: RegisteredModel;
    let versions: ModelVersion[];
    try {
      [model, versions] = await Promise.all([getModel(name), searchVersions(`name = ${literal(name)}`)]);
    } catch (e) {
      replace(root, crumbs(), h("div", { class: "error" }, (e as Error).message));
      return;
    }
    const aliases = Object.keys(model.aliases).sort();
    const latest = new Map(model.latest.map((v) => [v.stage, v.version]));
    const vrow = (v: ModelVersion) =>
      h(
        "tr",
        { class: "version-row", dataset: { version: v.version } },
        h("td", null, h("a", { class: "version-link", href: versionHref(name, v.version) }, `Version ${v.version}`)),
        h("td", { class: "version-stage" }, stageBadge(v.stage), latest.get(v.stage) === v.version && v.stage !== "None" ? h("span", { class: "muted" }, " latest") : null),
        h("td", { class: "version-aliases" }, v.aliases.map((a) => h("span", { class: "chip alias-chip" }, `@${a}`))),
        h("td", { class: "version-run" }, runLink(v.runId, runNames)),
        h("td", { class: "version-created" }, fmtTime(v.created)),
        h("td", { class: "version-tags" }, Object.keys(v.tags).sort().map((k) => h("span", { class: "chip tag-chip" }, `${k}: ${v.tags[k]}`))),
        h("td", { class: "version-description", title: v.description }, v.description.split("\n")[0].slice(0, 120)),
      );
    replace(
      root,
      crumbs(),
      h("div", { class: "page-head" }, h("h1", { class: "model-name" }, model.name)),
      h(
        "div",
        { class: "muted model-meta" },
        `Created ${fmtTime(model.created)} · last modified ${fmtTime(model.updated)}${model.user ? ` · ${model.user}` : ""}`,
      ),
      descriptionEditor(model.description, async (text) => {
        await mlSend("PATCH", "registered-models/update", { name, description: text });
      }),
      h(
        "div",
        { class: "model-alias-list" },
        h("h2", null, "Aliases"),
        aliases.length
          ? aliases.map((a) => h("a", { class: "chip alias-chip", href: versionHref(name, model.aliases[a]), dataset: { alias: a } }, `@${a}`, h("span", { class: "muted" }, ` → v${model.aliases[a]}`)))
          : h("p", { class: "muted" }, "No aliases. Set one on a version's page."),
      ),
      h("h2", null, `Versions (${versions.length})`),
      versions.length
        ? h(
            "table",
            { class: "grid versions-table" },
            h("thead", null, h("tr", null, ["Version", "Stage", "Aliases", "Source run", "Created", "Tags", "Description"].map((t) => h("th", null, t)))),
            h("tbody", null, versions.map(vrow)),
          )
        : h("p", { class: "muted" }, "No versions yet."),
      tagEditor(model.tags, {
        set: async (key, value) => void (await mlPost("registered-models/set-tag", { name, key, value })),
        remove: async (key) => void (await mlSend("DELETE", "registered-models/delete-tag", { name, key })),
        reload: async () => (await getModel(name)).tags,
      }),
    );
  }
  replace(root, crumbs(name), h("p", { class: "muted" }, "Loading…"));
  void load();
}

export function versionView(root: HTMLElement, route: Route): void {
  const name = route.parts[1];
  const version = route.parts[3];
  const runNames = new Map<string, Promise<string>>();
  document.title = `${name} v${version} · labtrack`;

  async function load(): Promise<void> {
    let v: ModelVersion;
    try {
      v = await getVersion(name, version);
    } catch (e) {
      replace(root, crumbs(h("a", { href: href(["models", name]) }, name)), h("div", { class: "error" }, (e as Error).message));
      return;
    }
    const rows: [string, Child][] = [
      ["Stage", stageBadge(v.stage)],
      ["Status", v.status],
      ["Aliases", v.aliases.length ? v.aliases.map((a) => h("span", { class: "chip alias-chip" }, `@${a}`)) : ""],
      ["Source run", runLink(v.runId, runNames)],
      ["Source", h("code", null, v.source)],
      ["Logged model", v.modelId ? h("code", null, v.modelId) : ""],
      ["Created", fmtTime(v.created)],
      ["Last updated", fmtTime(v.updated)],
      ["User", v.user],
    ];
    replace(
      root,
      crumbs(h("a", { class: "model-crumb", href: href(["models", name]) }, name), `Version ${v.version}`),
      h("div", { class: "page-head" }, h("h1", { class: "version-title" }, `${name} · version ${v.version}`), stageBadge(v.stage)),
      h("table", { class: "kv version-overview" }, h("tbody", null, rows.map(([k, val]) => h("tr", null, h("th", null, k), h("td", null, val))))),
      stageSection(v),
      aliasSection(v),
      descriptionEditor(v.description, async (text) => {
        await mlSend("PATCH", "model-versions/update", { name, version, description: text });
      }),
      tagEditor(v.tags, {
        set: async (key, value) => void (await mlPost("model-versions/set-tag", { name, version, key, value })),
        remove: async (key) => void (await mlSend("DELETE", "model-versions/delete-tag", { name, version, key })),
        reload: async () => (await getVersion(name, version)).tags,
      }),
    );
  }

  function stageSection(v: ModelVersion): HTMLElement {
    const select = h("select", { class: "stage-select", "aria-label": "new stage" }, STAGES.map((s) => h("option", { value: s }, s)));
    select.value = v.stage === "None" ? "Staging" : v.stage;
    const archive = h("input", { type: "checkbox", class: "archive-existing" });
    const err = h("span", { class: "error", role: "alert" });
    const submit = async (e: Event) => {
      e.preventDefault();
      try {
        await mlPost("model-versions/transition-stage", {
          name,
          version,
          stage: select.value,
          archive_existing_versions: archive.checked,
        });
        await load();
      } catch (x) {
        err.textContent = (x as Error).message;
      }
    };
    return h(
      "div",
      { class: "stage-section" },
      h("h2", null, "Stage"),
      h(
        "form",
        { class: "transition-form", onsubmit: submit },
        "Move to ",
        select,
        h("label", null, archive, " Archive existing versions in that stage"),
        h("button", { type: "submit", class: "transition-stage" }, "Transition"),
        err,
      ),
    );
  }

  function aliasSection(v: ModelVersion): HTMLElement {
    const err = h("span", { class: "error", role: "alert" });
    const act = async (fn: () => Promise<unknown>) => {
      try {
        await fn();
        await load();
      } catch (x) {
        err.textContent = (x as Error).message;
      }
    };
    const input = h("input", { type: "text", class: "new-alias", placeholder: "alias, e.g. champion", "aria-label": "new alias" });
    return h(
      "div",
      { class: "alias-section" },
      h("h2", null, "Aliases"),
      h(
        "div",
        { class: "alias-list" },
        v.aliases.length
          ? v.aliases.map((a) =>
              h(
                "span",
                { class: "chip alias-chip", dataset: { alias: a } },
                `@${a}`,
                h("button", { class: "chip-x delete-alias", "aria-label": `delete alias ${a}`, onclick: () => void act(() => mlSend("DELETE", "registered-models/alias", { name, alias: a })) }, "×"),
              ),
            )
          : h("span", { class: "muted" }, "No aliases point here."),
      ),
      h(
        "form",
        {
          class: "add-alias",
          onsubmit: (e: Event) => {
            e.preventDefault();
            const alias = input.value.trim();
            if (alias) void act(() => mlPost("registered-models/alias", { name, alias, version }));
          },
        },
        input,
        h("button", { type: "submit" }, "Set alias"),
        err,
      ),
    );
  }

  replace(root, crumbs(h("a", { href: href(["models", name]) }, name), `Version ${version}`), h("p", { class: "muted" }, "Loading…"));
  void load();
}
