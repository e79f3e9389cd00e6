"""XGBoost autolog (MLflow's ``mlflow.xgboost.autolog``) for ``xgboost.train``."""

from __future__ import annotations

from typing import Any

from labtrack.autolog import boosting, core, records

FLAVOR = "xgboost"
_UNLOGGED = {"params", "dtrain", "evals", "obj", "feval", "evals_result", "xgb_model", "callbacks",
             "learning_rates"}


def autolog(importance_types: list[str] | None = None, log_input_examples: bool = False,
            log_model_signatures: bool = True, log_models: bool = True, log_datasets: bool = True,
            disable: bool = False, exclusive: bool = False, disable_for_unsupported_versions: bool = False,
            silent: bool = False, registered_model_name: str | None = None, model_format: str = "ubj",
            extra_tags: dict[str, str] | None = None) -> None:
    """Log every ``xgboost.train`` (MLflow's arguments)."""
    core.register(FLAVOR, "xgboost", _patch)
    core.enable(FLAVOR, importance_types=importance_types or ["weight"],
                log_input_examples=log_input_examples, log_model_signatures=log_model_signatures,
                log_models=log_models, log_datasets=log_datasets, disable=disable, exclusive=exclusive,
                silent=silent, registered_model_name=registered_model_name, model_format=model_format,
                extra_tags=extra_tags)


def _patch() -> None:
    import xgboost
    import xgboost.training

    owner = xgboost.training if "train" in vars(xgboost.training) else xgboost
    core.patch_method(FLAVOR, owner, "train", _train)
    if owner is not xgboost and vars(xgboost).get("train") is not None:
        xgboost.train = owner.train  # the package re-exports the function object


def _dmatrix_data(dmatrix: Any) -> tuple[Any, Any]:
    features = dmatrix.get_data()
    labels = dmatrix.get_label()
    return features, (labels if len(labels) else None)


def _train(original: Any, *args: Any, **kwargs: Any) -> Any:
    import xgboost

    class Recorder(xgboost.callback.TrainingCallback):
        def __init__(self, report: Any) -> None:
            self.report = report

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            try:
                values = {f"{data}-{metric}": series[-1] for data, metrics in evals_log.items()
                          for metric, series in metrics.items()}
                self.report(epoch, values)
            except Exception as err:
                core.warn_once(FLAVOR, f"{type(err).__name__}: {err}")
            return False

    def add_callback(a: tuple, kw: dict[str, Any], report: Any) -> tuple[tuple, dict[str, Any]]:
        kw = dict(kw)
        kw["callbacks"] = list(kw.get("callbacks") or []) + [Recorder(report)]
        return a, kw

    params = args[0] if args else kwargs.get("params")
    dtrain = args[1] if len(args) > 1 else kwargs.get("dtrain")
    datasets = [(dtrain, "train", None)] if dtrain is not None else []
    datasets += [(d, "eval", name) for d, name in (kwargs.get("evals") or [])]

    def after(session: core.Session, model: Any, results: list[dict[str, float]]) -> None:
        run_id = session.run_id
        conf = session.conf
        early = kwargs.get("early_stopping_rounds") or (len(args) > 5 and args[5])
        if early and results:
            extra = len(results)
            records.log_metrics(run_id, {"stopped_iteration": extra - 1, "best_iteration": model.best_iteration})
            records.log_metrics(run_id, results[model.best_iteration], step=extra)
        importance = {}
        for kind in conf.get("importance_types") or ["weight"]:
            try:
                importance[kind] = model.get_score(importance_type=kind)
            except Exception:
                continue
        boosting.log_importance(run_id, importance)
        if conf.get("log_models"):
            from labtrack.models.boosters import log_booster

            log_booster(model, "xgboost", run_id=run_id,
                        registered_model_name=conf.get("registered_model_name"))

    return boosting.train_call(FLAVOR, original, args, kwargs, booster_params=params, unlogged=_UNLOGGED,
                               add_callback=add_callback, train_data=_dmatrix_data, datasets=datasets,
                               after_training=after)
