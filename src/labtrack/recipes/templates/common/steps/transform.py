"""Transform: the feature preprocessing, fitted on the training set only."""

from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler


def run(ctx):
    target = ctx.config.get("target_col", "target")
    features = [c for c in ctx.inputs["train"].columns if c != target]
    transformer = StandardScaler() if ctx.settings.get("scale", True) else FunctionTransformer()
    transformer = make_pipeline(transformer).fit(ctx.inputs["train"][features])
    ctx.card.add_text("Features", ", ".join(features))
    return {"features": features, "transformer": transformer}
