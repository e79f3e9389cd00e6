// What a training run records by itself, on the run page: its SLURM context (slurm.* tags),
// its input datasets, its evaluation (lt.evaluate / mlflow.evaluate metrics and plots), system
// metrics kept apart from the model's own, and log_table artifacts as sortable tables.
// Everything logged is rendered as text (or an <img> of an artifact URL), never as HTML.

import { mlGet } from "../api";
import { h, replace } from "../dom";
import { fmtNum } from "../format";
import { ArtifactFile, artifactUrl, listArtifacts, Run } from "../model";
import { href } from "../router";

export const SYSTEM_PREFIX = "system/";

/** System metrics (system/cpu_utilization_percentage...) are charted in a group of their own. */
export function isSystemMetric(key: string): boolean {
  return key.startsWith(SYSTEM_PREFIX);
}

/** [the model's own metrics, system metrics], each sorted. */
export function splitMetrics(keys: string[]): [string[], string[]] {
  const sorted = [...keys].sort((a, b) => a.localeCompare(b));
  return [sorted.filter((k) => !isSystemMetric(k)), sorted.filter(isSystemMetric)];
}

const SLURM_LABELS: [string, string][] = [
  ["slurm.job_id", "Job"],
  ["slurm.array_job_id", "Array job"],
  ["slurm.array_task_id", "Array task"],
  ["slurm.job_name", "Job name"],
  ["slurm.nodelist", "Nodes"],
  ["slurm.num_nodes", "Node count"],
  ["slurm.partition", "Partition"],
  ["slurm.cpus", "CPUs"],
  ["slurm.gpus", "GPUs"],
  ["slurm.cluster", "Cluster"],
  ["slurm.account", "Account"],
];

/** The SLURM allocation a run ran in (the slurm.* tags lt sets inside a job), or null. */
export function slurmSection(run: Run): HTMLElement | null {
  const t = run.tags;
  if (!t["slurm.job_id"]) return null;
  const array = t["slurm.array_job_id"];
  const filter = array ? `tags.\`slurm.array_job_id\` = '${array.replace(/'/g, "")}'` : "";
  return h(
    "div",
    { class: "slurm-context" },
    h("h2", null, "SLURM context"),
    h(
      "table",
      { class: "kv slurm-tags" },
      h(
        "tbody",
        null,
        SLURM_LABELS.filter(([k]) => t[k]).map(([k, label]) => h("tr", { dataset: { tag: k } }, h("th", null, label), h("td", null, t[k]))),
      ),
    ),
    array
      ? h("p", null, h("a", { class: "array-runs", href: href(["experiments", run.experimentId, "runs"], { filter }) }, `All runs of array job ${array}`))
      : null,
  );
}

interface DatasetInput {
  tags?: { key: string; value: string }[];
  dataset: { name: string; digest: string; source_type?: string; source?: string; schema?: string; profile?: string };
}

function pretty(text: string | undefined): string {
  if (!text) return "";
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

/** The run's input datasets (lt.log_input / mlflow.log_input): name, digest, context, source, profile, schema. */
export function datasetsSection(run: Run): HTMLElement {
  const box = h("div", { class: "run-datasets" });
  void (async () => {
    let inputs: DatasetInput[] = [];
    try {
      const reply = await mlGet<{ run?: { inputs?: { dataset_inputs?: DatasetInput[] } } }>("runs/get", { run_id: run.id });
      inputs = reply.run?.inputs?.dataset_inputs ?? [];
    } catch {
      return;
    }
    if (!inputs.length) return;
    replace(
      box,
      h("h2", null, "Datasets"),
      h(
        "table",
        { class: "grid datasets-table" },
        h("thead", null, h("tr", null, h("th", null, "Name"), h("th", null, "Digest"), h("th", null, "Context"), h("th", null, "Source"), h("th", null, "Profile"), h("th", null, "Schema"))),
        h(
          "tbody",
          null,
          inputs.map((d) => {
            const context = (d.tags ?? []).find((t) => t.key === "mlflow.data.context")?.value ?? "";
            const filter = `datasets.digest = '${d.dataset.digest.replace(/'/g, "")}'`;
            return h(
              "tr",
              { class: "dataset-row", dataset: { name: d.dataset.name, digest: d.dataset.digest } },
              h("td", null, d.dataset.name),
              h("td", null, h("a", { class: "dataset-digest", href: href(["experiments", run.experimentId, "runs"], { filter }), title: "runs with this dataset" }, h("code", null, d.dataset.digest))),
              h("td", null, context),
              h("td", null, d.dataset.source_type ?? ""),
              h("td", null, h("code", { class: "dataset-profile" }, d.dataset.profile ?? "")),
              h("td", null, d.dataset.schema ? h("details", null, h("summary", null, "schema"), h("pre", { class: "dataset-schema" }, pretty(d.dataset.schema))) : ""),
            );
          }),
        ),
      ),
    );
  })();
  return box;
}

// MLflow's default evaluator metrics and plots (lt.evaluate writes the same names).
const EVAL_METRICS = [
  "example_count", "score", "accuracy_score", "precision_score", "recall_score", "f1_score", "log_loss", "roc_auc",
  "precision_recall_auc", "true_negatives", "false_positives", "false_negatives", "true_positives",
  "mean_absolute_error", "mean_squared_error", "root_mean_squared_error", "sum_on_target", "mean_on_target",
  "r2_score", "max_error", "mean_absolute_percentage_error",
];
const EVAL_PLOT = /(^|_)(confusion_matrix|roc_curve_plot|precision_recall_curve_plot|calibration_curve_plot|lift_curve_plot|residuals_plot)\.png$/;

/** An "Evaluation" section when the run holds evaluation plots: the metrics, then the plots. */
export function evaluationSection(run: Run): HTMLElement {
  const box = h("div", { class: "run-evaluation" });
  void (async () => {
    let files: ArtifactFile[] = [];
    try {
      files = await listArtifacts(run, "");
    } catch {
      return;
    }
    const plots = files.filter((f) => !f.isDir && EVAL_PLOT.test(f.path));
    if (!plots.length) return;
    const prefixes = new Set(plots.map((f) => f.path.replace(EVAL_PLOT, "$1").replace(/_$/, "")));
    const metricKeys = Object.keys(run.metrics).filter((k) =>
      [...prefixes].some((p) => EVAL_METRICS.includes(p ? k.slice(p.length + 1) : k) && (!p || k.startsWith(`${p}_`))),
    );
    replace(
      box,
      h("h2", null, "Evaluation"),
      metricKeys.length
        ? h("table", { class: "kv evaluation-metrics" }, h("tbody", null, metricKeys.sort().map((k) => h("tr", { dataset: { metric: k } }, h("th", null, k), h("td", { class: "num" }, fmtNum(run.metrics[k].value))))))
        : null,
      h(
        "div",
        { class: "evaluation-plots" },
        plots.map((f) => h("figure", { class: "evaluation-plot", dataset: { path: f.path } }, h("img", { src: artifactUrl(run, f.path), alt: f.path, loading: "lazy" }), h("figcaption", null, f.path))),
      ),
    );
  })();
  return box;
}

interface SplitTable {
  columns: string[];
  data: unknown[][];
}

/** Whether an artifact is a table (the run's mlflow.loggedArtifacts lists it as one). */
export function isLoggedTable(run: Run, path: string): boolean {
  try {
    const listed = JSON.parse(run.tags["mlflow.loggedArtifacts"] ?? "[]") as { path: string; type: string }[];
    return listed.some((a) => a.type === "table" && a.path === path);
  } catch {
    return false;
  }
}

function cellText(v: unknown): string {
  if (v === null || v === undefined) return "";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

/** A log_table artifact ({"columns": [...], "data": [[...]]}) as a table sorted by a click on a header. */
export function sortableTable(text: string): HTMLElement | null {
  let t: SplitTable;
  try {
    t = JSON.parse(text) as SplitTable;
  } catch {
    return null;
  }
  if (!Array.isArray(t.columns) || !Array.isArray(t.data)) return null;
  let sortCol = -1;
  let desc = false;
  const body = h("tbody");
  const head = h("tr");
  const draw = () => {
    const rows = [...t.data];
    if (sortCol >= 0) {
      rows.sort((a, b) => {
        const x = a[sortCol];
        const y = b[sortCol];
        const c = typeof x === "number" && typeof y === "number" ? x - y : cellText(x).localeCompare(cellText(y));
        return desc ? -c : c;
      });
    }
    replace(
      head,
      t.columns.map((c, i) =>
        h(
          "th",
          {
            class: `sortable${i === sortCol ? (desc ? " desc" : " asc") : ""}`,
            dataset: { col: String(i) },
            onclick: () => {
              desc = sortCol === i ? !desc : false;
              sortCol = i;
              draw();
            },
          },
          String(c),
          i === sortCol ? (desc ? " ▼" : " ▲") : "",
        ),
      ),
    );
    replace(body, rows.map((r) => h("tr", null, r.map((v) => h("td", { class: typeof v === "number" ? "num" : "" }, cellText(v))))));
  };
  draw();
  return h("div", { class: "wide" }, h("table", { class: "grid logged-table" }, h("thead", null, head), body));
}
