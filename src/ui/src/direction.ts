// Which way a metric improves, judged by its name: one rule for every view that colours
// best and worst values, picks a "best step" or sorts by quality.  A run may override it
// with the tag `labtrack.direction.<metric>` set to "min" or "max".

export type Direction = "min" | "max";

/** The run tag that overrides a metric's direction: `labtrack.direction.<metric>` = "min" or "max". */
export const DIRECTION_TAG = "labtrack.direction.";

// Names that fall as a model improves.  Everything else (accuracy, f1, auc, reward,
// throughput...) is taken to rise.  Matched on the last path segment, as whole words.
const LOWER = /(^|[^a-z])(loss|error|err|mse|rmse|mae|mape|smape|wer|cer|perplexity|ppl|nll|bpd|bpc|distance|latency|regret|cost|fid|brier|log_loss|logloss|deviance|time|duration|seconds|sec|memory|mem)([^a-z]|$)/i;

/** The direction of `key`, from an override (run tag) if given, else from its name. */
export function metricDirection(key: string, override?: string): Direction {
  if (override === "min" || override === "max") return override;
  const last = key.split("/").pop() ?? key;
  return LOWER.test(last) ? "min" : "max";
}

/** True when `a` is better than `b` for a metric of direction `dir` (NaN is never better). */
export function isBetter(a: number, b: number, dir: Direction): boolean {
  if (Number.isNaN(a)) return false;
  if (Number.isNaN(b)) return true;
  return dir === "min" ? a < b : a > b;
}
