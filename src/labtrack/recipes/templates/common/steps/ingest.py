"""Ingest: read the raw data into one table (features and the target column)."""

import pandas as pd


def run(ctx):
    source = ctx.settings.get("source", "")
    target = ctx.config.get("target_col", "target")
    if source.startswith("sklearn:"):
        import sklearn.datasets

        loader = getattr(sklearn.datasets, source.split(":", 1)[1])
        frame = loader(as_frame=True).frame.rename(columns={"target": target})
    else:
        frame = pd.read_csv(source)
    ctx.card.add_text("Source", source)
    ctx.card.add_text("Shape", f"{frame.shape[0]} rows x {frame.shape[1]} columns")
    ctx.card.add_table("Profile", frame.describe().T.reset_index().rename(columns={"index": "column"}))
    return {"data": frame, "metrics": {"rows": len(frame)}}
