"""Evaluate: metrics on the test set (checked against evaluate.thresholds) and a residual plot."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics as m  # noqa: E402


def run(ctx):
    target = ctx.config.get("target_col", "target")
    test, model = ctx.inputs["test"], ctx.inputs["model"]
    y = test[target]
    predicted = model.predict(test[ctx.inputs["features"]])
    scores = {"rmse": float(np.sqrt(m.mean_squared_error(y, predicted))),
              "mae": m.mean_absolute_error(y, predicted), "r2": m.r2_score(y, predicted)}
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.scatter(predicted, y - predicted, s=8)
    ax.axhline(0, color="grey", lw=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual")
    ctx.card.add_figure("Residuals", fig)
    plt.close(fig)
    return {"metrics": scores}
