// The SLURM job behind a run (`labtrack run --backend slurm`): the scheduler's state, the
// node, the tails of the job's stdout and stderr, and a button that cancels the job.
// Everything shown is text: a job's output is whatever the user's code printed.

import { ltGet, ltPost } from "../api";
import { confirmAction, h, replace } from "../dom";
import { Run } from "../model";

const JOB = "labtrack.slurm.job_id";
const ENDED = new Set(["FINISHED", "FAILED", "KILLED"]);

interface Tail {
  text: string;
  size: number;
  truncated: boolean;
}

/** The run page's "SLURM job" section, or null for a run that has no job. */
export function jobSection(run: Run, onChange: () => void): HTMLElement | null {
  const t = run.tags;
  const job = t[JOB];
  if (!job) return null;
  const facts: [string, string | undefined][] = [
    ["Job", job],
    ["Scheduler state", t["labtrack.slurm.state"]],
    ["Node", t["labtrack.slurm.node"] ?? t["slurm.nodelist"]],
    ["Partition", t["slurm.partition"]],
    ["Array job", t["slurm.array_job_id"]],
    ["Reason", t["labtrack.slurm.reason"]],
    ["Exit code", t["labtrack.slurm.exit_code"]],
  ];
  const status = h("span", { class: "error job-error" });
  const cancel = ENDED.has(run.status)
    ? null
    : h("button", {
        class: "cancel-job",
        onclick: async () => {
          if (!confirmAction(`Cancel SLURM job ${job}? The run ends KILLED.`)) return;
          try {
            await ltPost("jobs/cancel", { run_id: run.id });
            onChange();
          } catch (e) {
            status.textContent = (e as Error).message;
          }
        },
      }, "Cancel job");
  const logs = h("div", { class: "job-logs" });
  const box = h(
    "div",
    { class: "slurm-job" },
    h("div", { class: "section-head" }, h("h2", null, "SLURM job"), cancel, status),
    h("table", { class: "kv job-facts" }, h("tbody", null, facts.filter(([, v]) => v).map(([k, v]) => h("tr", null, h("th", null, k), h("td", null, v ?? ""))))),
    logs,
  );
  void drawTails(run.id, logs);
  return box;
}

async function drawTails(runId: string, box: HTMLElement): Promise<void> {
  const parts: HTMLElement[] = [];
  for (const stream of ["stdout", "stderr"] as const) {
    try {
      const tail = await ltGet<Tail>("jobs/logs", { run_id: runId, stream });
      const head = `${stream}${tail.truncated ? ` (last ${Math.round(tail.text.length / 1024)} KiB of ${Math.round(tail.size / 1024)} KiB)` : ""}`;
      parts.push(h("h3", null, head), h("pre", { class: `job-log job-${stream}` }, tail.text || "(empty)"));
    } catch (e) {
      parts.push(h("h3", null, stream), h("p", { class: "muted" }, (e as Error).message));
    }
  }
  replace(box, ...parts);
}
