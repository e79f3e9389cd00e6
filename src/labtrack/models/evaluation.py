"""``lt.evaluate`` / ``lt.models.evaluate``: MLflow's default evaluation of classifiers and regressors.

Given a model (a logged model URI, a fitted estimator or a plain ``predict``
callable) and labelled data (a DataFrame with a ``targets`` column, arrays, or
an ``lt.data`` dataset), it computes MLflow's default metrics under MLflow's
names, with the same scikit-learn calls, so the values equal those of
``mlflow.evaluate``; logs them at step 0 into the active run (or a new one);
records the data as a run input; and writes MLflow's plots as artifacts:
``confusion_matrix.png``, ``roc_curve_plot.png``, ``precision_recall_curve_plot.png``,
``lift_curve_plot.png`` and ``calibration_curve_plot.png`` for classifiers
(``per_class_metrics.csv`` for more than two classes) and, as labtrack's
addition, ``residuals_plot.png`` for regressors.  ``baseline_model`` and
``validation_thresholds`` validate the candidate as MLflow's ``MetricThreshold`` does.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from labtrack.errors import InvalidParameterValue, LabtrackError

MODEL_TYPES = ("classifier", "regressor")


@dataclass
class MetricThreshold:
    """A validation rule for one metric (MLflow's ``MetricThreshold`` fields)."""

    threshold: float | None = None
    min_absolute_change: float | None = None
    min_relative_change: float | None = None
    greater_is_better: bool | None = None

    def __post_init__(self) -> None:
        if self.greater_is_better is None:
            raise InvalidParameterValue("MetricThreshold needs greater_is_better")
        if self.min_absolute_change is not None and self.min_absolute_change <= 0:
            raise InvalidParameterValue("min_absolute_change must be a positive number")
        if self.min_relative_change is not None and not 0 < self.min_relative_change <= 1:
            raise InvalidParameterValue("min_relative_change must be between 0 and 1")


class ModelValidationFailedError(LabtrackError):
    """The candidate model failed one or more validation thresholds."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "MODEL_VALIDATION_FAILED")


@dataclass
class EvaluationResult:
    """What ``evaluate`` returns: metric values, artifact URIs, the run, and the baseline's."""

    metrics: dict[str, float]
    artifacts: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    baseline_model_metrics: dict[str, float] | None = None


# -- model and data ------------------------------------------------------------------------
def _model_functions(model: Any) -> tuple[Any, Any, Any]:
    """(predict, predict_proba or None, the raw sklearn estimator or None)."""
    if isinstance(model, str):
        from labtrack.models import pyfunc

        loaded = pyfunc.load_model(model)
        raw = getattr(getattr(loaded, "_impl", None), "sklearn_model", None)
        if loaded.loader_module == "mlflow.sklearn" and raw is not None:
            # as MLflow: a sklearn model's own predict_proba and score take part
            return raw.predict, getattr(raw, "predict_proba", None), raw
        return loaded.predict, None, None
    if hasattr(model, "predict"):
        is_sklearn = type(model).__module__.split(".")[0] in ("sklearn", "xgboost", "lightgbm")
        return model.predict, getattr(model, "predict_proba", None), model if is_sklearn else None
    if callable(model):
        return model, None, None
    raise InvalidParameterValue("model must be a model URI, an object with predict(), or a callable")


def _split(data: Any, targets: Any) -> tuple[Any, Any, Any]:
    """(features, labels, lt.data dataset) from a DataFrame, arrays or a dataset."""
    import numpy as np

    from labtrack.client import datasets

    if isinstance(data, datasets.Dataset):
        dataset = data
        if data.df is not None:
            target = targets or data.targets
            if target is None:
                raise InvalidParameterValue("evaluate needs targets: the label column's name")
            return data.df.drop(columns=[target]), data.df[target].to_numpy(), dataset
        if data.targets is None and targets is None:
            raise InvalidParameterValue("evaluate needs the dataset's targets")
        return data.features, np.asarray(data.targets if targets is None else targets), dataset
    if hasattr(data, "columns"):
        if not isinstance(targets, str) or targets not in data.columns:
            raise InvalidParameterValue("with a DataFrame, targets names its label column")
        dataset = datasets.from_pandas(data, targets=targets)
        return data.drop(columns=[targets]), data[targets].to_numpy(), dataset
    if targets is None:
        raise InvalidParameterValue("evaluate needs targets (an array of labels)")
    features, labels = np.asarray(data), np.asarray(targets)
    return features, labels, datasets.from_numpy(features, targets=labels)


# -- metrics -------------------------------------------------------------------------------
def _labels_of(y_true: Any, y_pred: Any, label_list: Any) -> Any:
    import numpy as np

    labels = np.array(label_list) if label_list is not None else np.unique(np.concatenate([y_true, y_pred]))
    labels.sort()
    if len(labels) < 2:
        raise InvalidParameterValue("classifier evaluation needs at least two labels; pass "
                                    "evaluator_config={'label_list': [...]}")
    return labels


def classifier_metrics(y_true: Any, y_pred: Any, y_proba: Any, config: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """MLflow's default classifier metrics and what the plots need."""
    import numpy as np
    from sklearn import metrics as m

    weights = config.get("sample_weights")
    labels = _labels_of(y_true, y_pred, config.get("label_list"))
    facts: dict[str, Any] = {"labels": labels}
    out: dict[str, float] = {}
    if len(labels) == 2:
        pos_label = config.get("pos_label")
        pos_index = int(np.where(labels == pos_label)[0][0]) if pos_label in labels else 1
        if pos_label is None:
            pos_label = labels[-1]
        ordered = np.append(np.delete(labels, np.where(labels == pos_label)), pos_label)
        facts.update(pos_label=pos_label, pos_index=pos_index, labels=ordered)
        try:
            tn, fp, fn, tp = m.confusion_matrix(y_true, y_pred, labels=ordered).ravel()
            out.update(true_negatives=tn, false_positives=fp, false_negatives=fn, true_positives=tp)
            out.update(_common(y_true, y_pred, y_proba, ordered, "binary", pos_label, weights))
        except ValueError:
            pass
        if y_proba is not None:
            score = np.asarray(y_proba)[:, pos_index]
            try:
                out["roc_auc"] = m.roc_auc_score(y_true=np.asarray(y_true) == pos_label, y_score=score,
                                                 sample_weight=weights)
            except ValueError:
                pass
            try:
                out["precision_recall_auc"] = m.average_precision_score(
                    y_true=y_true, y_score=score, pos_label=pos_label, sample_weight=weights)
            except ValueError:
                pass
    else:
        average = config.get("average", "weighted")
        out.update(_common(y_true, y_pred, y_proba, labels, average, None, weights))
        if average in ("macro", "weighted") and y_proba is not None:
            out["roc_auc"] = m.roc_auc_score(y_true=y_true, y_score=y_proba, sample_weight=weights,
                                             average=average, multi_class="ovr")
    return {k: float(v) for k, v in out.items()}, facts


def _common(y_true: Any, y_pred: Any, y_proba: Any, labels: Any, average: str, pos_label: Any,
            weights: Any) -> dict[str, float]:
    from sklearn import metrics as m

    out = {"example_count": len(y_true),
           "accuracy_score": m.accuracy_score(y_true, y_pred, sample_weight=weights)}
    for name, function in (("recall_score", m.recall_score), ("precision_score", m.precision_score),
                           ("f1_score", m.f1_score)):
        out[name] = function(y_true, y_pred, average=average, pos_label=pos_label, sample_weight=weights)
    if y_proba is not None:
        try:
            out["log_loss"] = m.log_loss(y_true, y_proba, labels=labels, sample_weight=weights)
        except ValueError:
            pass
    return out


def regressor_metrics(y_true: Any, y_pred: Any, config: dict[str, Any]) -> dict[str, float]:
    """MLflow's default regressor metrics."""
    import numpy as np
    from sklearn import metrics as m

    weights = config.get("sample_weights")
    total = (np.array(y_true) * np.array(weights)).sum() if weights is not None else sum(y_true)
    mse = m.mean_squared_error(y_true, y_pred, sample_weight=weights)
    out = {"example_count": len(y_true),
           "mean_absolute_error": m.mean_absolute_error(y_true, y_pred, sample_weight=weights),
           "mean_squared_error": mse,
           "root_mean_squared_error": math.sqrt(mse),
           "sum_on_target": total, "mean_on_target": total / len(y_true),
           "r2_score": m.r2_score(y_true, y_pred, sample_weight=weights),
           "max_error": m.max_error(y_true, y_pred),
           "mean_absolute_percentage_error": m.mean_absolute_percentage_error(
               y_true, y_pred, sample_weight=weights)}
    return {k: float(v) for k, v in out.items()}


def _compute(model: Any, features: Any, y_true: Any, model_type: str,
             config: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    import numpy as np

    predict, predict_proba, raw = _model_functions(model)
    y_pred = np.asarray(predict(features))
    if y_pred.ndim == 2 and y_pred.shape[1] == 1:
        y_pred = y_pred[:, 0]
    metrics: dict[str, float] = {}
    if raw is not None and hasattr(raw, "score"):
        try:  # MLflow scores sklearn models with their own score()
            metrics["score"] = float(raw.score(features, y_true, sample_weight=config.get("sample_weights")))
        except Exception:
            pass
    facts: dict[str, Any] = {"y_true": y_true, "y_pred": y_pred, "y_proba": None}
    if model_type == "classifier":
        y_proba = np.asarray(predict_proba(features)) if predict_proba is not None else None
        values, more = classifier_metrics(y_true, y_pred, y_proba, config)
        facts.update(more, y_proba=y_proba)
    else:
        values = regressor_metrics(y_true, y_pred, config)
    metrics.update(values)
    return metrics, facts


# -- plots -----------------------------------------------------------------------------------
def _plots(facts: dict[str, Any], model_type: str, config: dict[str, Any]) -> dict[str, Any]:
    """name -> drawing function (each returns a matplotlib figure)."""
    import numpy as np
    from sklearn import metrics as m

    y_true, y_pred, y_proba = facts["y_true"], facts["y_pred"], facts["y_proba"]
    weights = config.get("sample_weights")
    plots: dict[str, Any] = {}

    def figure() -> Any:
        import matplotlib.pyplot as plt

        return plt.subplots(1, 1, figsize=(6.0, 4.0), dpi=175)

    if model_type == "regressor":
        def residuals() -> Any:
            fig, ax = figure()
            ax.scatter(y_pred, np.asarray(y_true) - y_pred, s=8, alpha=0.6)
            ax.axhline(0, color="gray", linestyle="dashed", linewidth=1)
            ax.set_xlabel("Predicted value")
            ax.set_ylabel("Residual (true - predicted)")
            ax.set_title("Residuals")
            return fig

        plots["residuals_plot"] = residuals
        return plots

    labels = facts["labels"]

    def confusion() -> Any:
        fig, ax = figure()
        matrix = m.confusion_matrix(y_true, y_pred, labels=labels, normalize="true", sample_weight=weights)
        m.ConfusionMatrixDisplay(confusion_matrix=matrix, display_labels=labels).plot(cmap="Blues", ax=ax)
        ax.set_title("Normalized confusion matrix")
        return fig

    plots["confusion_matrix"] = confusion
    if y_proba is None:
        return plots
    binary = len(labels) == 2
    classes = [(facts["pos_label"], (np.asarray(y_true) == facts["pos_label"]).astype(int),
                y_proba[:, facts["pos_index"]])] if binary else [
        (label, (np.asarray(y_true) == label).astype(int), y_proba[:, i])
        for i, label in enumerate(sorted(labels))]

    def roc() -> Any:
        fig, ax = figure()
        for label, truth, score in classes:
            fpr, tpr, _ = m.roc_curve(truth, score, sample_weight=weights)
            auc = m.roc_auc_score(truth, score, sample_weight=weights)
            ax.plot(fpr, tpr, drawstyle="steps-post", linewidth=1,
                    label=f"AUC={auc:.3f}" if binary else f"label={label},AUC={auc:.3f}")
        ax.plot([0, 1], [0, 1], color="gray", alpha=0.3, linestyle="dashed")
        ax.set_xlabel("False Positive Rate")
        ax.set_ylabel("True Positive Rate")
        ax.set_title("ROC curve")
        ax.legend(loc="lower right")
        return fig

    def pr() -> Any:
        fig, ax = figure()
        for label, truth, score in classes:
            precision, recall, _ = m.precision_recall_curve(truth, score, sample_weight=weights)
            ap = m.average_precision_score(truth, score, sample_weight=weights)
            ax.plot(recall, precision, drawstyle="steps-post", linewidth=1,
                    label=f"AP={ap:.3f}" if binary else f"label={label},AP={ap:.3f}")
        ax.set_xlabel("Recall")
        ax.set_ylabel("Precision")
        ax.set_title("Precision recall curve")
        ax.legend(loc="lower left")
        return fig

    def calibration() -> Any:
        from sklearn.calibration import calibration_curve

        fig, ax = figure()
        bins = int(config.get("calibration_n_bins", 10))
        for label, truth, score in classes:
            try:
                true_frac, mean_pred = calibration_curve(truth, score, n_bins=bins)
            except ValueError:
                continue
            ax.plot(mean_pred, true_frac, marker="o", linewidth=1,
                    label="model" if binary else f"label={label}")
        ax.plot([0, 1], [0, 1], color="gray", linestyle="dashed", linewidth=1, label="perfectly calibrated")
        ax.set_xlabel("Mean predicted probability")
        ax.set_ylabel("Fraction of positives")
        ax.set_title("Calibration curve")
        ax.legend(loc="upper left")
        return fig

    def lift() -> Any:
        # Lift at each depth of the ranking: the positive rate among the top-scored fraction
        # over the overall positive rate, for the positive and the negative class.
        fig, ax = figure()
        for name, truth, score in ((f"Class {classes[0][0]}", classes[0][1], classes[0][2]),
                                   ("Other class", 1 - classes[0][1], 1 - classes[0][2])):
            order = np.argsort(-score)
            hits = np.cumsum(truth[order])
            depth = np.arange(1, len(truth) + 1)
            base = truth.mean() if truth.mean() > 0 else 1.0
            ax.plot(depth / len(truth), hits / depth / base, linewidth=1, label=name)
        ax.plot([0, 1], [1, 1], color="gray", linestyle="dashed", linewidth=1, label="Baseline")
        ax.set_xlabel("Percentage of sample")
        ax.set_ylabel("Lift")
        ax.set_title("Lift Curve")
        ax.legend(loc="upper right")
        return fig

    plots["roc_curve_plot"] = roc
    plots["precision_recall_curve_plot"] = pr
    plots["calibration_curve_plot"] = calibration
    if binary:
        plots["lift_curve_plot"] = lift
    return plots


def _per_class_table(facts: dict[str, Any], config: dict[str, Any]) -> Any:
    import numpy as np
    import pandas as pd

    rows = []
    for label in facts["labels"]:
        truth = (np.asarray(facts["y_true"]) == label).astype(int)
        guess = (np.asarray(facts["y_pred"]) == label).astype(int)
        values, _ = classifier_metrics(truth, guess, None, {"label_list": [0, 1], "pos_label": 1,
                                                            "sample_weights": config.get("sample_weights")})
        rows.append({"positive_class": label, **values})
    return pd.DataFrame(rows)


# -- validation ------------------------------------------------------------------------------
def validate(thresholds: dict[str, Any], candidate: dict[str, float],
             baseline: dict[str, float] | None) -> None:
    """Raise ``ModelValidationFailedError`` naming every failed rule (MLflow's semantics)."""
    failures = []
    for name, rule in thresholds.items():
        better = bool(rule.greater_is_better)
        if name not in candidate:
            failures.append(f"Metric {name!r} was not computed for the candidate model")
            continue
        value = candidate[name]

        def passes(a: float, b: float) -> bool:
            return a >= b if better else a <= b

        if rule.threshold is not None and not passes(value, rule.threshold):
            failures.append(f"Metric {name!r} value {value} does not meet threshold {rule.threshold}")
        wants_baseline = rule.min_absolute_change is not None or rule.min_relative_change is not None
        if not wants_baseline:
            continue
        if not baseline or name not in baseline:
            failures.append(f"Metric {name!r} needs a baseline model value")
            continue
        base = baseline[name]
        if rule.min_absolute_change is not None:
            target = base + rule.min_absolute_change if better else base - rule.min_absolute_change
            if not passes(Decimal(value), Decimal(target)):
                failures.append(f"Metric {name!r} value {value} is not {rule.min_absolute_change} "
                                f"better than the baseline's {base}")
        if rule.min_relative_change is not None:
            if base == 0:
                ok = passes(Decimal(value), Decimal(base + 1e-10 if better else base - 1e-10))
            else:
                change = (value - base) / abs(base) if better else (base - value) / abs(base)
                ok = change >= rule.min_relative_change
            if not ok:
                failures.append(f"Metric {name!r} value {value} is not {rule.min_relative_change:.0%} "
                                f"better than the baseline's {base}")
    if failures:
        raise ModelValidationFailedError("; ".join(failures))


# -- the entry point -----------------------------------------------------------------------------
def evaluate(model: Any = None, data: Any = None, *, model_type: str | None = None,
             targets: Any = None, evaluator_config: dict[str, Any] | None = None,
             baseline_model: Any = None, validation_thresholds: dict[str, Any] | None = None,
             run_id: str | None = None, **ignored: Any) -> EvaluationResult:
    """Evaluate ``model`` on ``data`` with MLflow's default metrics and plots; log them to a run."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from labtrack.client import datasets, fluent
    from labtrack.entities import Metric

    if model_type not in MODEL_TYPES:
        raise InvalidParameterValue(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    if model is None or data is None:
        raise InvalidParameterValue("evaluate needs a model and data")
    config = dict(evaluator_config or {})
    prefix = str(config.get("metric_prefix") or "")
    features, y_true, dataset = _split(data, targets)
    metrics, facts = _compute(model, features, y_true, model_type, config)
    baseline_metrics = None
    if baseline_model is not None:
        baseline_metrics, _ = _compute(baseline_model, features, y_true, model_type, config)
        baseline_metrics = {prefix + k: v for k, v in baseline_metrics.items()}
    metrics = {prefix + k: v for k, v in metrics.items()}

    started = None
    if run_id is None:
        active = fluent.active_run()
        if active is None:
            started = fluent.start_run()
            run_id = started.info.run_id
        else:
            run_id = active.info.run_id
    client = fluent._client()
    artifacts: dict[str, str] = {}
    try:
        try:
            datasets.log_input(dataset, context=prefix or None, run_id=run_id)
        except LabtrackError as err:  # e.g. a spooling compute node: the metrics still count
            import logging

            logging.getLogger("labtrack.evaluate").warning("labtrack: evaluation dataset not recorded: %s", err)
        import time

        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])
        with tempfile.TemporaryDirectory(prefix="labtrack-eval-") as tmp:
            folder = Path(tmp)
            for name, draw in _plots(facts, model_type, config).items():
                file = folder / f"{prefix}{name}.png"
                try:
                    fig = draw()
                    fig.savefig(file, bbox_inches="tight")
                    plt.close(fig)
                except Exception:  # a plot the data cannot support (one class in a bin...)
                    plt.close("all")
                    continue
                client.log_artifact(run_id, file)
                artifacts[name] = client.get_artifact_uri(run_id, file.name)
            if model_type == "classifier" and len(facts["labels"]) > 2:
                file = folder / f"{prefix}per_class_metrics.csv"
                _per_class_table(facts, config).to_csv(file, index=False)
                client.log_artifact(run_id, file)
                artifacts["per_class_metrics"] = client.get_artifact_uri(run_id, file.name)
        if validation_thresholds:
            validate(validation_thresholds, metrics, baseline_metrics)
    finally:
        if started is not None:
            fluent.end_run()
    return EvaluationResult(metrics=metrics, artifacts=artifacts, run_id=run_id,
                            baseline_model_metrics=baseline_metrics)
