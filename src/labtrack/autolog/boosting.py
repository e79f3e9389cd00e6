"""What XGBoost's and LightGBM's native ``train`` record under autolog (MLflow's names): the
booster params and ``train``'s own arguments as params, ``<data>-<metric>`` per iteration (step =
iteration), ``stopped_iteration``/``best_iteration`` after early stopping, feature importance as
``feature_importance_<type>.json``/``.png``, the datasets, and the model in the library's flavor."""

from __future__ import annotations

import inspect
import json
from typing import Any

from labtrack.autolog import core, records


def call_params(function: Any, args: tuple, kwargs: dict[str, Any], unlogged: set[str]) -> dict[str, Any]:
    """``train``'s arguments as passed, then its defaults for the rest, minus ``unlogged``."""
    try:
        parameters = list(inspect.signature(function).parameters.values())
    except (TypeError, ValueError):
        return {}
    out: dict[str, Any] = {p.name: v for p, v in zip(parameters, args)}
    out.update(kwargs)
    for p in parameters:
        if p.name not in out and p.default is not inspect.Parameter.empty and p.kind not in (
                inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            out[p.name] = p.default
    return {k: v for k, v in out.items() if k not in unlogged}


def clean(metrics: dict[str, float]) -> dict[str, float]:
    """``ndcg@3`` is no valid metric name: MLflow writes ``ndcg_at_3``."""
    return {k.replace("@", "_at_"): v for k, v in metrics.items()}


def log_importance(run_id: str, importance_by_type: dict[str, dict[str, float]]) -> None:
    for kind, values in importance_by_type.items():
        if not values:
            continue
        records.log_file(run_id, lambda p, v=values: p.write_text(json.dumps(v)),
                         f"feature_importance_{kind}.json")

        def draw(kind: str = kind, values: dict[str, float] = values) -> Any:
            import matplotlib.pyplot as plt

            names = list(values)
            scores = [float(values[n]) for n in names]
            order = sorted(range(len(names)), key=lambda i: scores[i])
            fig, ax = plt.subplots(figsize=(6.4, max(2.0, 0.25 * len(names) + 1)))
            ax.barh([names[i] for i in order], [scores[i] for i in order], align="center", height=0.5)
            ax.set_title(f"Feature Importance ({kind})")
            fig.tight_layout()
            return fig

        try:
            records.log_figure(run_id, draw, f"feature_importance_{kind}.png")
        except Exception:
            continue


def train_call(flavor: str, original: Any, args: tuple, kwargs: dict[str, Any], *, booster_params: Any,
               unlogged: set[str], add_callback: Any, train_data: Any, datasets: list[tuple[Any, str, str | None]],
               after_training: Any) -> Any:
    """The frame both libraries' ``train`` patches share."""
    results: list[dict[str, float]] = []

    def before(session: core.Session) -> None:
        run_id = session.run_id
        records.log_params(run_id, dict(booster_params or {}))
        records.log_params(run_id, call_params(original, args, kwargs, unlogged))
        if session.conf.get("log_datasets"):
            for data, context, name in datasets:
                try:
                    features, labels = train_data(data)
                    records.log_dataset(run_id, features, labels, context=context, name=name)
                except Exception:
                    continue

    def log_iteration(step: int, values: dict[str, float], run_id: list[str | None]) -> None:
        metrics = clean(values)
        results.append(metrics)
        records.log_metrics(run_id[0], metrics, step=step)

    holder: list[str | None] = [None]
    new_args, new_kwargs = add_callback(args, kwargs, lambda step, values: log_iteration(step, values, holder))

    def before_with_id(session: core.Session) -> None:
        holder[0] = session.run_id
        before(session)

    def after(session: core.Session, state: Any, model: Any) -> None:
        after_training(session, model, results)

    return core.logged_call(flavor, original, new_args, new_kwargs, before_with_id, after)
