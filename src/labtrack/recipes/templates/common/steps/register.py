"""Register: log the model and register it, only when the evaluate step's thresholds passed."""

import labtrack as lt


def run(ctx):
    name = ctx.settings.get("model_name", "recipe-model")
    if not ctx.inputs.get("passed"):
        reason = "; ".join(ctx.inputs.get("failures") or []) or "thresholds not met"
        lt.set_tag("labtrack.recipe.registered", "no: " + reason)
        ctx.card.add_text("Not registered", reason)
        return {"registered": None}
    test = ctx.inputs["test"]
    info = lt.sklearn.log_model(ctx.inputs["model"], name="model", registered_model_name=name,
                                input_example=test[ctx.inputs["features"]].head(2))
    lt.set_tag("labtrack.recipe.registered", f"{name} version {info.registered_model_version}")
    ctx.card.add_text("Registered", f"{name} version {info.registered_model_version}")
    return {"registered": {"name": name, "version": info.registered_model_version}}
