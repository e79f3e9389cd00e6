"""Evaluate: metrics on the test set (checked against evaluate.thresholds) and plots."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn import metrics as m  # noqa: E402


def run(ctx):
    target = ctx.config.get("target_col", "target")
    test, model = ctx.inputs["test"], ctx.inputs["model"]
    x, y = test[ctx.inputs["features"]], test[target]
    predicted = model.predict(x)
    scores = {"accuracy": m.accuracy_score(y, predicted),
              "f1": m.f1_score(y, predicted, average="binary" if y.nunique() == 2 else "weighted"),
              "precision": m.precision_score(y, predicted, average="binary" if y.nunique() == 2 else "weighted")}
    if y.nunique() == 2 and hasattr(model, "predict_proba"):
        scores["roc_auc"] = m.roc_auc_score(y, model.predict_proba(x)[:, 1])
    fig, ax = plt.subplots(figsize=(4, 4))
    m.ConfusionMatrixDisplay.from_predictions(y, predicted, ax=ax)
    ctx.card.add_figure("Confusion matrix", fig)
    plt.close(fig)
    return {"metrics": scores}
