"""Models: the MLflow model format (an ``MLmodel`` folder), flavors, pyfunc loading, serving.

``lt.sklearn``, ``lt.pyfunc`` and ``lt.pytorch`` are the flavor modules here,
imported on first use (they bring numpy, pandas and the framework).  A model
folder that labtrack writes loads with ``mlflow.pyfunc.load_model``, and one
that MLflow writes loads with ``lt.pyfunc.load_model``.
"""

from typing import Any

# ``lt.models.evaluate`` and friends: a function, loaded with its module on first use.
_EVALUATION = ("EvaluationResult", "MetricThreshold", "ModelValidationFailedError", "evaluate")


def __getattr__(name: str) -> Any:
    if name in _EVALUATION:
        from labtrack.models import evaluation

        return getattr(evaluation, name)
    raise AttributeError(f"module 'labtrack.models' has no attribute {name!r}")
