"""Train: the estimator named in recipe.yaml, after the transformer, as one pipeline."""

import importlib

from sklearn.base import clone
from sklearn.pipeline import make_pipeline


def run(ctx):
    s = ctx.settings
    module, _, name = s["estimator"].rpartition(".")
    estimator = getattr(importlib.import_module(module), name)(**(s.get("params") or {}))
    target = ctx.config.get("target_col", "target")
    features = ctx.inputs["features"]
    train, validation = ctx.inputs["train"], ctx.inputs["validation"]
    model = make_pipeline(clone(ctx.inputs["transformer"]), estimator)
    model.fit(train[features], train[target])
    scores = {"train_score": model.score(train[features], train[target]),
              "validation_score": model.score(validation[features], validation[target])}
    ctx.card.add_text("Estimator", repr(estimator))
    return {"model": model, "metrics": scores}
