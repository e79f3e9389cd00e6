// The prompt-engineering playground: candidates (a template and a gateway endpoint each, typed
// or loaded from a registered prompt version), a small table of inputs for their {{variables}},
// temperature and max tokens. Run sends every input to every candidate through the gateway and
// shows the outputs side by side; each attempt is logged as a run (params, the outputs table as
// an artifact, a trace per call) and a candidate's template can be registered as a new prompt
// version. Model outputs are user data: text nodes only.

import { mlGet, mlPost } from "../api";
import { h, replace } from "../dom";
import { fill, listPrompts, promptVersions, registerVersion, template, variables } from "../prompts";
import { href, Route } from "../router";

interface Endpoint {
  name: string;
  endpoint_type: string;
}

interface Candidate {
  label: string;
  endpoint: HTMLSelectElement;
  text: HTMLTextAreaElement;
  source: string; // prompts:/name/version when loaded from the registry
}

interface CallResult {
  output: string;
  error: string;
  latencyMs: number;
  tokens: number;
  traceId: string;
}

const LABELS = "ABCDEFGH";
const OUTPUTS_FILE = "playground_outputs.json";

async function gatewayChat(endpoint: string, content: string, temperature: number, maxTokens: number,
                           experimentId: string, runId: string): Promise<CallResult> {
  const started = performance.now();
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (experimentId) headers["X-MLflow-Experiment-Id"] = experimentId;
  if (runId) headers["X-Labtrack-Run-Id"] = runId;
  const result: CallResult = { output: "", error: "", latencyMs: 0, tokens: 0, traceId: "" };
  try {
    const resp = await fetch("v1/chat/completions", {
      method: "POST",
      credentials: "same-origin",
      headers,
      body: JSON.stringify({ model: endpoint, messages: [{ role: "user", content }], temperature, max_tokens: maxTokens }),
    });
    result.traceId = resp.headers.get("X-Labtrack-Trace-Id") ?? "";
    const body = (await resp.json().catch(() => ({}))) as {
      choices?: { message?: { content?: string } }[];
      usage?: { total_tokens?: number };
      message?: string;
    };
    if (!resp.ok) result.error = body.message || `${resp.status} ${resp.statusText}`;
    else {
      result.output = String(body.choices?.[0]?.message?.content ?? "");
      result.tokens = Number(body.usage?.total_tokens ?? 0);
    }
  } catch (e) {
    result.error = `Cannot reach the gateway (${String(e)})`;
  }
  result.latencyMs = performance.now() - started;
  return result;
}

async function experimentId(name: string): Promise<string> {
  try {
    const r = await mlGet<{ experiment: { experiment_id: string } }>("experiments/get-by-name", { experiment_name: name });
    return r.experiment.experiment_id;
  } catch {
    const r = await mlPost<{ experiment_id: string }>("experiments/create", { name });
    return r.experiment_id;
  }
}

export function playgroundView(root: HTMLElement, route: Route): void {
  document.title = "Playground · labtrack";
  let endpoints: Endpoint[] = [];
  const candidates: Candidate[] = [];
  const rows: Record<string, HTMLInputElement>[] = [];
  const err = h("div", { class: "error inline-error playground-error", role: "alert" });
  const candidateBox = h("div", { class: "candidates" });
  const inputsBox = h("div", { class: "inputs-table" });
  const outputsBox = h("div", { class: "outputs" });
  const logged = h("div", { class: "logged-run" });
  const temperature = h("input", { type: "number", class: "temperature", min: "0", max: "2", step: "0.1", value: "0.7", "aria-label": "temperature" });
  const maxTokens = h("input", { type: "number", class: "max-tokens", min: "1", max: "4096", step: "1", value: "32", "aria-label": "max tokens" });
  const expName = h("input", { type: "text", class: "experiment-name", value: "playground", "aria-label": "experiment" });
  const logRun = h("input", { type: "checkbox", class: "log-run", checked: true, "aria-label": "log this attempt as a run" });
  const runButton = h("button", { class: "run-playground", onclick: () => void run() }, "Run");

  replace(
    root,
    h("div", { class: "page-head" }, h("h1", null, "Playground"), h("a", { href: "#/prompts" }, "Prompts")),
    err,
    h("h2", null, "Candidates"),
    candidateBox,
    h("button", { class: "add-candidate", onclick: () => addCandidate("", "") }, "Add a candidate"),
    h("h2", null, "Inputs"),
    inputsBox,
    h("button", { class: "add-row", onclick: () => addRow() }, "Add a row"),
    h(
      "div",
      { class: "toolbar playground-params" },
      h("label", null, "Temperature ", temperature),
      h("label", null, "Max tokens ", maxTokens),
      h("label", null, logRun, " Log as a run in experiment "),
      expName,
      runButton,
    ),
    logged,
    h("h2", null, "Outputs"),
    outputsBox,
  );

  function endpointSelect(chosen: string): HTMLSelectElement {
    const chat = endpoints.filter((e) => e.endpoint_type === "llm/v1/chat");
    return h(
      "select",
      { class: "endpoint", "aria-label": "gateway endpoint" },
      chat.length ? chat.map((e) => h("option", { value: e.name, selected: e.name === chosen }, e.name)) : h("option", { value: "" }, "(no chat endpoints: start the server with --gateway-config)"),
    );
  }

  function addCandidate(text: string, source: string, endpoint = ""): void {
    if (candidates.length >= LABELS.length) return;
    const label = LABELS[candidates.length];
    const area = h("textarea", { class: "template", rows: 5, "aria-label": `template ${label}`, placeholder: "Write a prompt with {{variables}}", oninput: () => renderInputs() });
    area.value = text;
    const c: Candidate = { label, endpoint: endpointSelect(endpoint || (candidates[0]?.endpoint.value ?? "")), text: area, source };
    candidates.push(c);
    const promptPick = h("select", { class: "prompt-pick", "aria-label": `load a prompt into ${label}` }, h("option", { value: "" }, "Load a registered prompt…"));
    void listPrompts("").then(async (prompts) => {
      for (const p of prompts) for (const v of await promptVersions(p.name)) promptPick.append(h("option", { value: `${p.name}\n${v.version}` }, `${p.name} v${v.version}`));
    }, () => undefined);
    promptPick.addEventListener("change", async () => {
      const [name, version] = promptPick.value.split("\n");
      if (!name) return;
      const v = (await promptVersions(name)).find((x) => x.version === version);
      if (v) {
        area.value = template(v);
        c.source = `prompts:/${name}/${version}`;
        renderInputs();
      }
    });
    const regName = h("input", { type: "text", class: "register-name", placeholder: "prompt name", "aria-label": `prompt name for ${label}`, value: source.replace(/^prompts:\/([^/]+)\/.*$/, "$1") });
    const regMsg = h("input", { type: "text", class: "register-message", placeholder: "commit message", "aria-label": `commit message for ${label}` });
    const regOut = h("span", { class: "register-result" });
    const register = async (e: Event) => {
      e.preventDefault();
      const name = regName.value.trim();
      if (!name) return;
      try {
        const version = await registerVersion(name, area.value, regMsg.value.trim());
        replace(regOut, "Registered ", h("a", { href: href(["prompts", name], { v: version }) }, `${name} v${version}`));
      } catch (x) {
        replace(regOut, h("span", { class: "error" }, (x as Error).message));
      }
    };
    candidateBox.append(
      h(
        "div",
        { class: "candidate", dataset: { label } },
        h("div", { class: "toolbar" }, h("b", null, `Candidate ${label}`), c.endpoint, promptPick),
        area,
        h("form", { class: "register-form", onsubmit: register }, regName, regMsg, h("button", { type: "submit" }, "Register as a new prompt version"), regOut),
      ),
    );
    renderInputs();
  }

  function vars(): string[] {
    return variables(...candidates.map((c) => c.text.value));
  }

  function addRow(values: Record<string, string> = {}): void {
    const row: Record<string, HTMLInputElement> = Object.create(null);
    for (const [k, v] of Object.entries(values)) row[k] = h("input", { type: "text", value: v });
    rows.push(row);
    renderInputs();
  }

  function renderInputs(): void {
    const names = vars();
    if (!rows.length) rows.push(Object.create(null));
    replace(
      inputsBox,
      names.length
        ? h(
            "table",
            { class: "grid inputs" },
            h("thead", null, h("tr", null, h("th", null, "#"), names.map((n) => h("th", null, n)))),
            h(
              "tbody",
              null,
              rows.map((row, i) =>
                h(
                  "tr",
                  null,
                  h("td", { class: "num" }, String(i + 1)),
                  names.map((n) => {
                    row[n] ??= h("input", { type: "text", "aria-label": `${n} of row ${i + 1}` });
                    row[n].setAttribute("aria-label", `${n} of row ${i + 1}`);
                    row[n].classList.add("input-cell");
                    return h("td", null, row[n]);
                  }),
                ),
              ),
            ),
          )
        : h("p", { class: "muted" }, "No {{variables}} in the templates: each run sends them as they are."),
    );
  }

  async function run(): Promise<void> {
    err.textContent = "";
    replace(logged);
    const names = vars();
    const valid = candidates.filter((c) => c.endpoint.value && c.text.value.trim());
    if (!valid.length) {
      err.textContent = "Pick a gateway endpoint and write a template first.";
      return;
    }
    const temp = Number(temperature.value);
    const max = Math.max(1, Math.floor(Number(maxTokens.value)));
    runButton.disabled = true;
    try {
      let expId = "";
      let runId = "";
      let artifactUri = "";
      if (logRun.checked) {
        expId = await experimentId(expName.value.trim() || "playground");
        const created = await mlPost<{ run: { info: { run_id: string; artifact_uri: string } } }>("runs/create", {
          experiment_id: expId,
          run_name: `playground-${new Date().toISOString().slice(0, 19)}`,
          start_time: Date.now(),
          tags: [{ key: "mlflow.source.name", value: "labtrack playground" }],
        });
        runId = created.run.info.run_id;
        artifactUri = created.run.info.artifact_uri;
      }
      const inputs = rows.map((row) => Object.fromEntries(names.map((n) => [n, row[n]?.value ?? ""])));
      const results: CallResult[][] = [];
      for (const c of valid) {
        const column: CallResult[] = [];
        for (const values of inputs) column.push(await gatewayChat(c.endpoint.value, fill(c.text.value, values), temp, max, expId, runId));
        results.push(column);
      }
      renderOutputs(valid, inputs, names, results);
      if (runId) await logAttempt(expId, runId, artifactUri, valid, inputs, names, results, temp, max);
    } catch (e) {
      err.textContent = (e as Error).message;
    } finally {
      runButton.disabled = false;
    }
  }

  function renderOutputs(valid: Candidate[], inputs: Record<string, string>[], names: string[], results: CallResult[][]): void {
    replace(
      outputsBox,
      h(
        "table",
        { class: "grid outputs-table" },
        h("thead", null, h("tr", null, h("th", null, "Inputs"), valid.map((c) => h("th", null, `${c.label}: ${c.endpoint.value}`, c.source ? h("div", { class: "muted" }, c.source) : null)))),
        h(
          "tbody",
          null,
          inputs.map((values, i) =>
            h(
              "tr",
              { class: "output-row" },
              h("td", { class: "output-inputs" }, names.map((n) => h("div", null, h("b", null, `${n}: `), values[n]))),
              results.map((col) => {
                const r = col[i];
                return h(
                  "td",
                  { class: "output-cell" },
                  r.error ? h("div", { class: "error" }, r.error) : h("pre", { class: "output-text" }, r.output),
                  h(
                    "div",
                    { class: "muted" },
                    `${r.tokens} tokens · ${Math.round(r.latencyMs)} ms`,
                    r.traceId ? [" · ", h("a", { class: "trace-link", href: href(["traces", r.traceId]) }, "trace")] : null,
                  ),
                );
              }),
            ),
          ),
        ),
      ),
    );
  }

  async function logAttempt(expId: string, runId: string, artifactUri: string, valid: Candidate[], inputs: Record<string, string>[],
                            names: string[], results: CallResult[][], temp: number, max: number): Promise<void> {
    const params: { key: string; value: string }[] = [
      { key: "temperature", value: String(temp) },
      { key: "max_tokens", value: String(max) },
    ];
    for (const c of valid) {
      params.push({ key: `${c.label}.template`, value: c.text.value.slice(0, 6000) }, { key: `${c.label}.endpoint`, value: c.endpoint.value });
      if (c.source) params.push({ key: `${c.label}.prompt`, value: c.source });
    }
    const columns = ["candidate", "endpoint", ...names, "output", "error", "total_tokens", "latency_ms", "trace_id"];
    const data: unknown[][] = [];
    valid.forEach((c, j) =>
      inputs.forEach((values, i) => {
        const r = results[j][i];
        data.push([c.label, c.endpoint.value, ...names.map((n) => values[n]), r.output, r.error, r.tokens, Math.round(r.latencyMs), r.traceId]);
      }),
    );
    await mlPost("runs/log-batch", { run_id: runId, params, tags: [{ key: "mlflow.loggedArtifacts", value: JSON.stringify([{ path: OUTPUTS_FILE, type: "table" }]) }] });
    const prefix = "mlflow-artifacts:/";
    if (artifactUri.startsWith(prefix)) {
      const path = `${artifactUri.slice(prefix.length).replace(/^\/+/, "")}/${OUTPUTS_FILE}`;
      const put = await fetch(`ajax-api/2.0/mlflow-artifacts/artifacts/${path.split("/").map(encodeURIComponent).join("/")}`, {
        method: "PUT",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ columns, data }),
      });
      if (!put.ok) throw new Error(`The outputs table could not be stored (${put.status}).`);
    }
    await mlPost("runs/update", { run_id: runId, status: "FINISHED", end_time: Date.now() });
    replace(logged, "Logged as run ", h("a", { class: "logged-run-link", href: href(["runs", runId]) }, runId.slice(0, 8)), ` in experiment ${expId}.`);
  }

  void (async () => {
    try {
      const resp = await fetch("api/2.0/endpoints/", { credentials: "same-origin" });
      const body = (await resp.json()) as { endpoints?: Endpoint[]; message?: string };
      if (!resp.ok) throw new Error(body.message || `${resp.status}`);
      endpoints = body.endpoints ?? [];
    } catch (e) {
      err.textContent = `The gateway's endpoints could not be listed: ${(e as Error).message}`;
    }
    const name = route.q.get("prompt");
    const version = route.q.get("version");
    if (name && version) {
      const v = (await promptVersions(name).catch(() => [])).find((x) => x.version === version);
      addCandidate(v ? template(v) : "", v ? `prompts:/${name}/${version}` : "");
    } else addCandidate("", "");
  })();
}
