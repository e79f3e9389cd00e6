// An experiment's registered scorers (mlflow.genai.scorers): each scorer's newest version and
// kind, the chosen scorer's versions, and one version's content (guidelines, judge instructions,
// model, or its JSON). Names and serialized scorers are user data: text nodes only.

import { h, replace } from "../dom";
import { fmtTime } from "../format";
import { getExperiment } from "../model";
import { href, Route } from "../router";
import { listScorers, ScorerContent, scorerContent, ScorerVersion, scorerVersions } from "../scorers";

function registerHint(expId: string): HTMLElement {
  return h(
    "div",
    { class: "empty-hint scorers-empty" },
    "No scorers are registered in this experiment. Register one with the mlflow client, for example:",
    h("pre", null, `from mlflow.genai.scorers import Guidelines\nGuidelines(name="polite", guidelines=["Be polite"]).register(experiment_id=${JSON.stringify(expId)})`),
  );
}

function field(label: string, body: Node | string): HTMLElement {
  return h("tr", null, h("th", null, label), h("td", null, body));
}

/** One version's content: the readable parts, and the serialized JSON (open when nothing else reads). */
function contentBlock(c: ScorerContent, raw: string): HTMLElement {
  const readable = Boolean(c.guidelines || c.instructions || c.code);
  return h(
    "div",
    { class: "scorer-content" },
    h(
      "table",
      { class: "kv" },
      field("Kind", h("span", { class: "scorer-kind" }, c.kind)),
      c.model ? field("Model", h("code", { class: "scorer-model" }, c.model)) : null,
      c.description ? field("Description", c.description) : null,
    ),
    c.guidelines ? [h("h3", null, "Guidelines"), h("ul", { class: "scorer-guidelines" }, c.guidelines.map((g) => h("li", null, g)))] : null,
    c.instructions ? [h("h3", null, "Instructions"), h("pre", { class: "prompt-template scorer-instructions" }, c.instructions)] : null,
    c.code ? [h("h3", null, "Code"), h("pre", { class: "prompt-template scorer-code" }, c.code)] : null,
    h(
      "details",
      { class: "scorer-json", open: !readable },
      h("summary", null, "Serialized scorer"),
      h("pre", { class: "preview-text json" }, c.data ? JSON.stringify(c.data, null, 2) : raw),
    ),
  );
}

export function scorersView(root: HTMLElement, route: Route): void {
  const expId = route.parts[1];
  const link = (q: Record<string, string | undefined>) => href(["experiments", expId, "scorers"], q);
  const title = h("h1", null, "Scorers");
  const count = h("span", { class: "muted scorer-count" });
  const err = h("div", { class: "error inline-error", role: "alert" });
  const list = h("div", { class: "scorer-list" });
  const detail = h("div", { class: "scorer-detail" });
  document.title = "Scorers · labtrack";
  replace(
    root,
    h(
      "div",
      { class: "page-head" },
      title,
      count,
      h("a", { class: "button", href: href(["experiments", expId, "runs"]) }, "Runs"),
      h("a", { class: "button", href: href(["experiments", expId, "traces"]) }, "Traces"),
    ),
    err,
    list,
    detail,
  );
  void getExperiment(expId).then(
    (e) => {
      title.textContent = `Scorers of ${e.name}`;
      document.title = `Scorers · ${e.name} · labtrack`;
    },
    () => undefined,
  );

  function showList(scorers: ScorerVersion[], chosen: string): void {
    count.textContent = `${scorers.length} scorer${scorers.length === 1 ? "" : "s"}`;
    replace(
      list,
      h(
        "table",
        { class: "grid scorers-table" },
        h("thead", null, h("tr", null, ["Scorer", "Newest version", "Kind", "Registered"].map((c) => h("th", null, c)))),
        h(
          "tbody",
          null,
          scorers.map((s) =>
            h(
              "tr",
              { class: `scorer-row${s.scorer_name === chosen ? " selected" : ""}`, dataset: { name: s.scorer_name } },
              h("td", null, h("a", { class: "scorer-link", href: link({ scorer: s.scorer_name }) }, s.scorer_name)),
              h("td", { class: "num scorer-newest" }, `v${s.scorer_version}`),
              h("td", { class: "scorer-kind" }, scorerContent(s.serialized_scorer).kind),
              h("td", { class: "nowrap" }, fmtTime(s.creation_time)),
            ),
          ),
        ),
      ),
    );
  }

  async function showVersions(name: string, wanted: string | null): Promise<void> {
    const versions = await scorerVersions(expId, name);
    if (!versions.length) return replace(detail);
    const v = versions.find((x) => String(x.scorer_version) === wanted) ?? versions[0];
    replace(
      detail,
      h("h2", { class: "scorer-name" }, "Versions of ", name),
      h(
        "table",
        { class: "grid scorer-versions" },
        h("thead", null, h("tr", null, h("th", null, "Version"), h("th", null, "Registered"))),
        h(
          "tbody",
          null,
          versions.map((x) =>
            h(
              "tr",
              { class: `scorer-version-row${x === v ? " selected" : ""}`, dataset: { version: String(x.scorer_version) } },
              h("td", null, h("a", { class: "scorer-version-link", href: link({ scorer: name, v: String(x.scorer_version) }) }, `v${x.scorer_version}`)),
              h("td", { class: "nowrap" }, fmtTime(x.creation_time)),
            ),
          ),
        ),
      ),
      h("h2", { class: "scorer-version-title" }, `v${v.scorer_version} of `, name),
      contentBlock(scorerContent(v.serialized_scorer), v.serialized_scorer),
    );
  }

  async function load(): Promise<void> {
    try {
      const scorers = await listScorers(expId);
      err.textContent = "";
      if (!scorers.length) {
        count.textContent = "";
        replace(list, registerHint(expId));
        return;
      }
      const wanted = route.q.get("scorer");
      const chosen = scorers.some((s) => s.scorer_name === wanted) ? (wanted as string) : scorers[0].scorer_name;
      showList(scorers, chosen);
      await showVersions(chosen, route.q.get("v"));
    } catch (e) {
      err.textContent = (e as Error).message;
    }
  }
  void load();
}
