"""PyTorch Lightning autolog (MLflow's ``mlflow.pytorch.autolog``): ``Trainer.fit`` records
``epochs``, ``optimizer_name`` and the optimizer's defaults as params, ``trainer.callback_metrics``
per epoch (step = epoch) and, with ``log_every_n_step``, per step (step = global step),
early-stopping params and results, ``model_summary.txt``, the model (pytorch flavor) and,
when asked, checkpoints in MLflow's layout (``checkpoints/latest_checkpoint.pth``...).

Both ``lightning.pytorch`` and the older ``pytorch_lightning`` package are patched,
each when it is imported.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from labtrack.autolog import core, records

FLAVOR = "pytorch"
# (core key, module that defines Trainer, package whose Callback class the callback extends)
_TARGETS = (("pytorch", "lightning.pytorch.trainer.trainer", "lightning.pytorch"),
            ("pytorch:pl", "pytorch_lightning.trainer.trainer", "pytorch_lightning"))
CHECKPOINT_TAG = "mlflow.latest_checkpoint_artifact"


def autolog(log_every_n_epoch: int = 1, log_every_n_step: int | None = None, log_models: bool = True,
            log_datasets: bool = True, disable: bool = False, exclusive: bool = False,
            disable_for_unsupported_versions: bool = False, silent: bool = False,
            registered_model_name: str | None = None, extra_tags: dict[str, str] | None = None,
            checkpoint: bool = True, checkpoint_monitor: str = "val_loss", checkpoint_mode: str = "min",
            checkpoint_save_best_only: bool = True, checkpoint_save_weights_only: bool = False,
            checkpoint_save_freq: str | int = "epoch", log_model_signatures: bool = True) -> None:
    """Log every Lightning ``Trainer.fit`` (MLflow's ``mlflow.pytorch.autolog`` arguments)."""
    settings = dict(log_every_n_epoch=log_every_n_epoch, log_every_n_step=log_every_n_step,
                    log_models=log_models, log_datasets=log_datasets, disable=disable,
                    exclusive=exclusive, silent=silent, registered_model_name=registered_model_name,
                    extra_tags=extra_tags, checkpoint=checkpoint, checkpoint_monitor=checkpoint_monitor,
                    checkpoint_mode=checkpoint_mode, checkpoint_save_best_only=checkpoint_save_best_only,
                    checkpoint_save_weights_only=checkpoint_save_weights_only,
                    checkpoint_save_freq=checkpoint_save_freq, log_model_signatures=log_model_signatures)
    for key, module, package in _TARGETS:
        core.register(key, module, lambda key=key, module=module, package=package: _patch(key, module, package))
        core.enable(key, **settings)


def _patch(key: str, module_name: str, package: str) -> None:
    import importlib

    trainer_module = importlib.import_module(module_name)
    callbacks = importlib.import_module(package + ".callbacks")
    callback_class = _callback_class(callbacks.Callback)

    def fit(original: Any, *args: Any, **kwargs: Any) -> Any:
        return _fit(key, callbacks, callback_class, original, args, kwargs)

    core.patch_method(key, trainer_module.Trainer, "fit", fit)


def _callback_class(base: type) -> type:
    class LabtrackCallback(base):  # type: ignore[misc, valid-type]
        """Logs params at train start and metrics per epoch (and per step when asked)."""

        def __init__(self, session: core.Session) -> None:
            self.session = session
            self.conf = session.conf
            self.step_metrics: set[str] = set()
            self.epoch_metrics: set[str] = set()
            self.best: float | None = None
            self.steps_per_batch = 1

        def _guard(self, what: Any) -> None:
            try:
                what()
            except Exception as err:  # never stop training over logging
                core.warn_once(FLAVOR, f"{type(err).__name__}: {err}")

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            def run() -> None:
                run_id = self.session.run_id
                records.set_tags(run_id, {"Mode": "training"})
                params: dict[str, Any] = {"epochs": trainer.max_epochs}
                optimizers = getattr(trainer, "optimizers", None) or []
                if optimizers:
                    self.steps_per_batch = len(optimizers)
                    optimizer = optimizers[0]
                    inner = getattr(optimizer, "_optimizer", optimizer)
                    params["optimizer_name"] = type(inner).__name__
                    params.update(getattr(optimizer, "defaults", {}) or {})
                records.log_params(run_id, params)
            self._guard(run)

        def _numbers(self, items: Any) -> dict[str, float]:
            return {k: float(v) for k, v in items}

        def on_train_epoch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
            def run() -> None:
                if trainer.sanity_checking:
                    return
                items = [(k, v) for k, v in trainer.callback_metrics.items() if k not in self.step_metrics]
                self.epoch_metrics.update(k for k, _ in items)
                if (pl_module.current_epoch + 1) % int(self.conf.get("log_every_n_epoch") or 1) == 0:
                    records.log_metrics(self.session.run_id, self._numbers(items), step=pl_module.current_epoch)
                if self.conf.get("checkpoint") and self.conf.get("checkpoint_save_freq") == "epoch":
                    self._checkpoint(trainer)
            self._guard(run)

        def on_train_batch_end(self, trainer: Any, pl_module: Any, *args: Any) -> None:
            every = self.conf.get("log_every_n_step")
            if not every:
                return

            def run() -> None:
                metrics = trainer.callback_metrics
                items = [(k, v) for k, v in metrics.items()
                         if k not in self.epoch_metrics and f"{k}_step" not in metrics]
                self.step_metrics.update(k for k, _ in items)
                step = trainer.global_step
                if ((step // self.steps_per_batch) + 1) % int(every) == 0:
                    records.log_metrics(self.session.run_id, self._numbers(items), step=step)
            self._guard(run)

        def on_test_end(self, trainer: Any, pl_module: Any) -> None:
            def run() -> None:
                records.set_tags(self.session.run_id, {"Mode": "testing"})
                records.log_metrics(self.session.run_id, self._numbers(trainer.callback_metrics.items()))
            self._guard(run)

        def _checkpoint(self, trainer: Any) -> None:
            metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
            monitor = self.conf.get("checkpoint_monitor")
            best_only = self.conf.get("checkpoint_save_best_only")
            weights = ".weights" if self.conf.get("checkpoint_save_weights_only") else ""
            if best_only:
                if monitor not in metrics:
                    core.warn_once(FLAVOR + ":checkpoint", f"checkpoints skipped: no {monitor!r} metric")
                    return
                value = metrics[monitor]
                if self.best is not None and (value >= self.best if self.conf.get("checkpoint_mode") == "min"
                                              else value <= self.best):
                    return
                self.best = value
                folder, model_file, metrics_file = "checkpoints", f"latest_checkpoint{weights}.pth", "latest_checkpoint_metrics.json"
            else:
                folder = f"checkpoints/epoch_{trainer.current_epoch}"
                model_file, metrics_file = f"checkpoint{weights}.pth", "checkpoint_metrics.json"
            run_id = self.session.run_id
            with tempfile.TemporaryDirectory(prefix="labtrack-ckpt-") as tmp:
                target = Path(tmp) / model_file
                trainer.save_checkpoint(str(target), weights_only=bool(weights))
                (Path(tmp) / metrics_file).write_text(json.dumps(
                    {**metrics, "epoch": trainer.current_epoch, "global_step": trainer.global_step}))
                client = records._client()
                client.log_artifact(run_id, Path(tmp) / metrics_file, folder)
                client.log_artifact(run_id, target, folder)
            records.set_tags(run_id, {CHECKPOINT_TAG: f"{folder}/{model_file}"})

    return LabtrackCallback


def _fit(key: str, callbacks: Any, callback_class: type, original: Any, args: tuple, kwargs: dict[str, Any]) -> Any:
    trainer = args[0]
    added: list[Any] = []

    def before(session: core.Session) -> Any:
        for callback in trainer.callbacks:
            if isinstance(callback, callbacks.EarlyStopping):
                records.log_params(session.run_id, {p: getattr(callback, p) for p in
                                                    ("monitor", "mode", "patience", "min_delta", "stopped_epoch")
                                                    if hasattr(callback, p)})
        callback = callback_class(session)
        trainer.callbacks.append(callback)
        added.append(callback)
        return callback

    def after(session: core.Session, callback: Any, result: Any) -> None:
        _after_fit(session, trainer, callbacks)

    try:
        return core.logged_call(key, original, args, kwargs, before, after)
    finally:
        for callback in added:
            if callback in trainer.callbacks:
                trainer.callbacks.remove(callback)


def _after_fit(session: core.Session, trainer: Any, callbacks: Any) -> None:
    run_id = session.run_id
    assert run_id is not None
    for callback in trainer.callbacks:
        if isinstance(callback, callbacks.EarlyStopping) and callback.stopped_epoch:
            stopped = callback.stopped_epoch
            values = {"stopped_epoch": stopped, "restored_epoch": stopped - max(1, callback.patience)}
            if hasattr(callback, "best_score"):
                values["best_score"] = float(callback.best_score)
            if hasattr(callback, "wait_count"):
                values["wait_count"] = callback.wait_count
            records.log_metrics(run_id, values)
    try:
        from lightning.pytorch.utilities.model_summary import ModelSummary
    except ImportError:
        from pytorch_lightning.utilities.model_summary import ModelSummary
    records.log_text(run_id, str(ModelSummary(trainer.lightning_module, max_depth=-1)), "model_summary.txt")
    if session.conf.get("log_models"):
        from labtrack.models import pytorch as flavor

        flavor.log_model(trainer.lightning_module, name="model", run_id=run_id,
                         registered_model_name=session.conf.get("registered_model_name"))
