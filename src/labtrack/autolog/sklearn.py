"""scikit-learn autolog, with MLflow's names: estimators, pipelines, and search CVs with child runs.

What a ``fit`` records (as ``mlflow.sklearn.autolog``): the estimator's
``get_params(deep=True)`` (shallow for a search CV), the tags ``estimator_name``
and ``estimator_class``, the training data as an input with context ``train``,
``training_*`` metrics (weighted precision/recall/F1, accuracy, log loss and
ROC AUC for classifiers; MSE, RMSE, MAE and R² for regressors) and
``training_score``, ``estimator.html``, confusion-matrix / ROC / PR plots, and
the model as ``model`` (sklearn flavor).  A search CV adds ``best_<param>``
params, ``best_cv_score``, ``cv_results.csv``, a ``best_estimator`` model and
one child run per candidate (the best ``max_tuning_runs``).

Classes are patched as their modules are imported, so turning autolog on
does not import all of scikit-learn.
"""

from __future__ import annotations

import inspect
import sys
from numbers import Number
from typing import Any

from labtrack.autolog import core, records

FLAVOR = "sklearn"
PREFIX = "training_"
_FIT_METHODS = ("fit", "fit_transform", "fit_predict")
_SEARCH_CLASSES = ("GridSearchCV", "RandomizedSearchCV", "HalvingGridSearchCV", "HalvingRandomSearchCV")


def autolog(log_input_examples: bool = False, log_model_signatures: bool = True,
            log_models: bool = True, log_datasets: bool = True, disable: bool = False,
            exclusive: bool = False, disable_for_unsupported_versions: bool = False,
            silent: bool = False, max_tuning_runs: int | None = 5,
            log_post_training_metrics: bool = True, serialization_format: str = "cloudpickle",
            registered_model_name: str | None = None, pos_label: Any = None,
            extra_tags: dict[str, str] | None = None) -> None:
    """Log every scikit-learn ``fit`` (MLflow's ``mlflow.sklearn.autolog`` arguments)."""
    if max_tuning_runs is not None and max_tuning_runs < 0:
        from labtrack.errors import InvalidParameterValue

        raise InvalidParameterValue(f"`max_tuning_runs` must be non-negative, instead got {max_tuning_runs}.")
    core.register(FLAVOR, "sklearn", _patch)
    core.enable(FLAVOR, log_input_examples=log_input_examples,
                log_model_signatures=log_model_signatures, log_models=log_models,
                log_datasets=log_datasets, disable=disable, exclusive=exclusive, silent=silent,
                max_tuning_runs=max_tuning_runs, serialization_format=serialization_format,
                registered_model_name=registered_model_name, pos_label=pos_label,
                extra_tags=extra_tags)


def _patch() -> None:
    for name, module in list(sys.modules.items()):
        if (name == "sklearn" or name.startswith("sklearn.")) and module is not None:
            _patch_module(module)
    core.on_each_import("sklearn.", _patch_module)


def _patch_module(module: Any) -> None:
    from sklearn.base import BaseEstimator

    for value in list(vars(module).values()):
        if (isinstance(value, type) and issubclass(value, BaseEstimator)
                and value.__module__ == module.__name__):
            for method in _FIT_METHODS:
                if method in value.__dict__:
                    core.patch_method(FLAVOR, value, method, _fit)


def _is_search(estimator: Any) -> bool:
    return type(estimator).__name__ in _SEARCH_CLASSES or (
        hasattr(estimator, "param_distributions") or hasattr(estimator, "param_grid")) and hasattr(estimator, "estimator")


def estimator_tags(estimator: Any) -> dict[str, str]:
    cls = type(estimator)
    return {"estimator_name": cls.__name__, "estimator_class": f"{cls.__module__}.{cls.__name__}"}


def _x_y_weight(function: Any, args: tuple, kwargs: dict[str, Any]) -> tuple[Any, Any, Any]:
    """X, y and sample_weight of a fit call, wherever the user put them."""
    try:
        bound = inspect.signature(function).bind_partial(*args, **kwargs)
        values = dict(bound.arguments)
    except TypeError:
        values = {}
    extra = values.pop("kwargs", None) or values.pop("fit_params", None) or {}
    if isinstance(extra, dict):
        values.update(extra)
    names = list(values)
    X = values.get("X", values.get(names[1]) if len(names) > 1 else None)
    y = values.get("y", values.get("Y"))
    return X, y, values.get("sample_weight")


def _fit(original: Any, *args: Any, **kwargs: Any) -> Any:
    estimator = args[0]
    X, y, weight = _x_y_weight(original, args, kwargs)

    def before(session: core.Session) -> None:
        run_id = session.run_id
        records.log_params(run_id, estimator.get_params(deep=not _is_search(estimator)))
        records.set_tags(run_id, estimator_tags(estimator))
        if session.conf.get("log_datasets"):
            try:
                records.log_dataset(run_id, X, y)
            except Exception as err:
                core.warn_once(FLAVOR, f"the training dataset was not logged: {err}")

    def after(session: core.Session, state: Any, result: Any) -> None:
        _after_fit(session, estimator, X, y, weight)

    return core.logged_call(FLAVOR, original, args, kwargs, before, after)


def _after_fit(session: core.Session, estimator: Any, X: Any, y: Any, weight: Any) -> None:
    run_id = session.run_id
    conf = session.conf
    assert run_id is not None
    signature = None
    if conf.get("log_models"):
        predict = getattr(estimator, "predict", None) or getattr(estimator, "transform", None)
        if conf.get("log_model_signatures") and predict is not None:
            signature = records.signature_for(X, predict)
        _log_model(estimator, "model", signature, X, conf, run_id)
    metrics = training_metrics(estimator, X, y, weight, conf.get("pos_label"))
    records.log_metrics(run_id, metrics)
    if y is not None:
        _log_plots(run_id, estimator, X, y, weight)
    _log_html(run_id, estimator)
    if _is_search(estimator):
        _after_search(session, estimator, signature, X)


def _log_model(estimator: Any, name: str, signature: Any, X: Any, conf: dict[str, Any],
               run_id: str, register: bool = True) -> None:
    from labtrack.models import sklearn as flavor

    example = None
    if conf.get("log_input_examples"):
        example = X.head(5) if hasattr(X, "head") else X[:5]
    flavor.log_model(estimator, name=name, signature=signature, input_example=example,
                     serialization_format=conf.get("serialization_format") or None,
                     registered_model_name=conf.get("registered_model_name") if register else None,
                     run_id=run_id)


def training_metrics(estimator: Any, X: Any, y: Any, weight: Any = None, pos_label: Any = None,
                     prefix: str = PREFIX) -> dict[str, float]:
    """MLflow's ``training_*`` metrics of a fitted classifier or regressor (empty without y)."""
    if y is None:
        return {}
    from sklearn import metrics as m
    from sklearn.base import is_classifier, is_regressor

    out: dict[str, float] = {}

    def attempt(name: str, compute: Any) -> None:
        try:
            out[prefix + name] = float(compute())
        except Exception:  # a metric the data does not allow (one class, multi-output...)
            pass

    if is_classifier(estimator):
        predicted = estimator.predict(X)
        average = "weighted" if pos_label is None else "binary"
        label = {"pos_label": pos_label} if pos_label is not None else {}
        attempt("precision_score", lambda: m.precision_score(y, predicted, average=average, sample_weight=weight, **label))
        attempt("recall_score", lambda: m.recall_score(y, predicted, average=average, sample_weight=weight, **label))
        attempt("f1_score", lambda: m.f1_score(y, predicted, average=average, sample_weight=weight, **label))
        attempt("accuracy_score", lambda: m.accuracy_score(y, predicted, normalize=True, sample_weight=weight))
        if hasattr(estimator, "predict_proba"):
            try:
                proba = estimator.predict_proba(X)
            except Exception:
                proba = None
            if proba is not None:
                attempt("log_loss", lambda: m.log_loss(y, proba, sample_weight=weight))
                score = proba[:, 1] if proba.shape[1] == 2 else proba
                attempt("roc_auc", lambda: m.roc_auc_score(y, score, average="weighted",
                                                           sample_weight=weight, multi_class="ovo"))
    elif is_regressor(estimator):
        import math

        predicted = estimator.predict(X)
        attempt("mean_squared_error", lambda: m.mean_squared_error(y, predicted, sample_weight=weight))
        attempt("mean_absolute_error", lambda: m.mean_absolute_error(y, predicted, sample_weight=weight))
        attempt("r2_score", lambda: m.r2_score(y, predicted, sample_weight=weight))
        if prefix + "mean_squared_error" in out:
            out[prefix + "root_mean_squared_error"] = math.sqrt(out[prefix + "mean_squared_error"])
    if hasattr(estimator, "score"):
        try:
            accepts_weight = "sample_weight" in inspect.signature(estimator.score).parameters
            out[prefix + "score"] = float(estimator.score(X, y, weight) if accepts_weight and weight is not None
                                          else estimator.score(X, y))
        except Exception:
            pass
    return out


def _log_plots(run_id: str, estimator: Any, X: Any, y: Any, weight: Any) -> None:
    from sklearn.base import is_classifier

    if not is_classifier(estimator):
        return
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:  # plots are optional, as in MLflow
        return
    from sklearn import metrics as m

    def confusion() -> Any:
        display = m.ConfusionMatrixDisplay.from_estimator(estimator, X, y, sample_weight=weight,
                                                          normalize="true")
        return display.figure_

    plots = [(confusion, PREFIX + "confusion_matrix.png")]
    classes = getattr(estimator, "classes_", None)
    if classes is not None and len(classes) == 2:
        plots.append((lambda: m.RocCurveDisplay.from_estimator(estimator, X, y, sample_weight=weight).figure_,
                      PREFIX + "roc_curve.png"))
        plots.append((lambda: m.PrecisionRecallDisplay.from_estimator(estimator, X, y, sample_weight=weight).figure_,
                      PREFIX + "precision_recall_curve.png"))
    for draw, name in plots:
        try:
            records.log_figure(run_id, draw, name)
        except Exception:
            continue


def _log_html(run_id: str, estimator: Any) -> None:
    from sklearn.utils import estimator_html_repr

    page = ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"UTF-8\"/>\n</head>\n<body>\n"
            f"{estimator_html_repr(estimator)}\n</body>\n</html>\n")
    records.log_text(run_id, page, "estimator.html")


def _after_search(session: core.Session, search: Any, signature: Any, X: Any) -> None:
    import time

    import pandas as pd

    from labtrack.client import fluent
    from labtrack.client.system_tags import PARENT_RUN_ID, run_start_tags

    run_id = session.run_id
    assert run_id is not None
    conf = session.conf
    if conf.get("log_models") and hasattr(search, "best_estimator_"):
        _log_model(search.best_estimator_, "best_estimator", signature, X, conf, run_id, register=False)
    if hasattr(search, "best_score_"):
        records.log_metrics(run_id, {"best_cv_score": search.best_score_})
    if hasattr(search, "best_params_"):
        records.log_params(run_id, {f"best_{k}": v for k, v in search.best_params_.items()})
    if not hasattr(search, "cv_results_"):
        return
    results = pd.DataFrame.from_dict(search.cv_results_)
    records.log_file(run_id, lambda p: results.to_csv(p, index=False), "cv_results.csv")
    limit = conf.get("max_tuning_runs", 5)
    chosen = results
    if limit is not None:
        rank = "rank_test_score" if "rank_test_score" in results.columns else next(
            (c for c in results.columns if c.startswith("rank_test_")), None)
        chosen = results.nsmallest(limit, rank) if rank else results.head(limit)
    client = fluent._client()
    parent = client.get_run(run_id)
    seed = search.estimator
    base = seed.get_params(deep=not _is_search(seed))
    tags = run_start_tags()
    tags.update({core.AUTOLOGGING_TAG: FLAVOR, PARENT_RUN_ID: run_id, **estimator_tags(seed)})
    ended = int(time.time() * 1000)
    for _, row in chosen.iterrows():
        child = client.create_run(parent.info.experiment_id, start_time=parent.info.start_time, tags=tags)
        child_id = child.info.run_id
        params = dict(base)
        params.update(row.get("params", {}) or {})
        records.log_params(child_id, params)
        numbers = {k: v for k, v in row.items()
                   if not str(k).startswith(("param", "split")) and isinstance(v, Number)
                   and not isinstance(v, bool)}
        records.log_metrics(child_id, numbers)
        client.set_terminated(child_id, "FINISHED", end_time=ended)
