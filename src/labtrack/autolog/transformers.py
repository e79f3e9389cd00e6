"""Hugging Face ``transformers`` autolog: ``Trainer.train`` logs what transformers' own
``MLflowCallback`` logs under ``mlflow.transformers.autolog()``: the model config and the
``TrainingArguments`` as params (values longer than MLflow's 6000-character limit dropped, as the
callback does) and every numeric value of ``Trainer.log`` as a metric at ``state.global_step``.
Other libraries' autologs stay quiet inside the training call.  Like MLflow's, it logs no model
unless asked (``log_models=True`` logs nothing more today: transformers models are large and
MLflow's transformers flavor is not built here).
"""

from __future__ import annotations

import re
from typing import Any

from labtrack.autolog import core, records

FLAVOR = "transformers"
MAX_PARAM_LENGTH = 6000
_BAD_NAME = re.compile(r"[^0-9A-Za-z_\-\. :/]")


def autolog(log_input_examples: bool = False, log_model_signatures: bool = False, log_models: bool = False,
            log_datasets: bool = False, disable: bool = False, exclusive: bool = False,
            disable_for_unsupported_versions: bool = False, silent: bool = False,
            extra_tags: dict[str, str] | None = None) -> None:
    """Log every ``transformers.Trainer.train`` (MLflow's arguments and defaults)."""
    core.register(FLAVOR, "transformers.trainer", _patch)
    core.enable(FLAVOR, log_input_examples=log_input_examples, log_model_signatures=log_model_signatures,
                log_models=log_models, log_datasets=log_datasets, disable=disable, exclusive=exclusive,
                silent=silent, extra_tags=extra_tags)


def _patch() -> None:
    import transformers.trainer

    core.patch_method(FLAVOR, transformers.trainer.Trainer, "train", _train)


def _callback(session: core.Session) -> Any:
    from transformers import TrainerCallback

    class LabtrackCallback(TrainerCallback):
        def __init__(self) -> None:
            self.started = False

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            if self.started or not state.is_world_process_zero:
                return
            self.started = True
            try:
                params = args.to_dict()
                config = getattr(model, "config", None)
                if config is not None:
                    params = {**config.to_dict(), **params}
                records.log_params(session.run_id, {k: v for k, v in params.items()
                                                    if len(str(v)) <= MAX_PARAM_LENGTH})
            except Exception as err:
                core.warn_once(FLAVOR, f"{type(err).__name__}: {err}")

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not state.is_world_process_zero or not logs:
                return
            try:
                metrics = {}
                for key, value in logs.items():
                    if isinstance(value, (int, float)) and not isinstance(value, bool):
                        metrics[_BAD_NAME.sub("_", key)] = value
                    elif hasattr(value, "numel") and value.numel() == 1:
                        metrics[_BAD_NAME.sub("_", key)] = value.item()
                records.log_metrics(session.run_id, metrics, step=state.global_step)
            except Exception as err:
                core.warn_once(FLAVOR, f"{type(err).__name__}: {err}")

    return LabtrackCallback()


def _train(original: Any, *args: Any, **kwargs: Any) -> Any:
    trainer = args[0]
    added: list[Any] = []

    def before(session: core.Session) -> None:
        callback = _callback(session)
        trainer.add_callback(callback)
        added.append(callback)

    def after(session: core.Session, state: Any, result: Any) -> None:
        return None

    try:
        return core.logged_call(FLAVOR, original, args, kwargs, before, after)
    finally:
        for callback in added:
            trainer.remove_callback(callback)
