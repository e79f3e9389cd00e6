"""LightGBM autolog (MLflow's ``mlflow.lightgbm.autolog``) for ``lightgbm.train``."""

from __future__ import annotations

from typing import Any

from labtrack.autolog import boosting, core, records

FLAVOR = "lightgbm"
_UNLOGGED = {"params", "train_set", "valid_sets", "valid_names", "fobj", "feval", "init_model",
             "learning_rates", "callbacks"}


def autolog(log_input_examples: bool = False, log_model_signatures: bool = True, log_models: bool = True,
            log_datasets: bool = True, disable: bool = False, exclusive: bool = False,
            disable_for_unsupported_versions: bool = False, silent: bool = False,
            registered_model_name: str | None = None, extra_tags: dict[str, str] | None = None) -> None:
    """Log every ``lightgbm.train`` (MLflow's arguments)."""
    core.register(FLAVOR, "lightgbm", _patch)
    core.enable(FLAVOR, log_input_examples=log_input_examples, log_model_signatures=log_model_signatures,
                log_models=log_models, log_datasets=log_datasets, disable=disable, exclusive=exclusive,
                silent=silent, registered_model_name=registered_model_name, extra_tags=extra_tags)


def _patch() -> None:
    import lightgbm
    import lightgbm.engine

    core.patch_method(FLAVOR, lightgbm.engine, "train", _train)
    lightgbm.train = lightgbm.engine.train  # the package re-exports the function object


def _dataset_data(dataset: Any) -> tuple[Any, Any]:
    data = dataset.data
    label = dataset.label if dataset.label is not None else dataset.get_label()
    return data, label


def _train(original: Any, *args: Any, **kwargs: Any) -> Any:
    def add_callback(a: tuple, kw: dict[str, Any], report: Any) -> tuple[tuple, dict[str, Any]]:
        def record(env: Any) -> None:
            try:
                report(env.iteration, {f"{data}-{name}": value
                                       for data, name, value, *_ in env.evaluation_result_list})
            except Exception as err:
                core.warn_once(FLAVOR, f"{type(err).__name__}: {err}")

        kw = dict(kw)
        kw["callbacks"] = list(kw.get("callbacks") or []) + [record]
        return a, kw

    params = args[0] if args else kwargs.get("params")
    train_set = args[1] if len(args) > 1 else kwargs.get("train_set")
    datasets = [(train_set, "train", None)] if train_set is not None else []
    names = kwargs.get("valid_names") or [None] * len(kwargs.get("valid_sets") or [])
    datasets += [(d, "eval", n) for d, n in zip(kwargs.get("valid_sets") or [], names)]

    def after(session: core.Session, model: Any, results: list[dict[str, float]]) -> None:
        run_id = session.run_id
        conf = session.conf
        if model.best_iteration > 0 and results:
            extra = len(results)
            records.log_metrics(run_id, {"stopped_iteration": extra, "best_iteration": model.best_iteration})
            records.log_metrics(run_id, results[model.best_iteration - 1], step=extra)
        names = model.feature_name()
        boosting.log_importance(run_id, {
            kind: dict(zip(names, (float(v) for v in model.feature_importance(importance_type=kind))))
            for kind in ("split", "gain")})
        if conf.get("log_models"):
            from labtrack.models.boosters import log_booster

            log_booster(model, "lightgbm", run_id=run_id,
                        registered_model_name=conf.get("registered_model_name"))

    return boosting.train_call(FLAVOR, original, args, kwargs, booster_params=params, unlogged=_UNLOGGED,
                               add_callback=add_callback, train_data=_dataset_data, datasets=datasets,
                               after_training=after)
