"""PyTorch Lightning autolog: ``lt.pytorch.autolog()`` records the params, per-epoch and per-step
metrics (same step counts) and the pytorch model that ``mlflow.pytorch.autolog()`` does, on a tiny
model trained for real on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.conftest import json_dump, recorded, train

pytest.importorskip("torch", reason="torch is not installed (CI installs the CPU wheel)")
pytest.importorskip("lightning", reason="lightning is not installed")

TRAINING = """
{lib}.pytorch.autolog(log_every_n_step=2, checkpoint=False)
import torch
import lightning.pytorch as pl
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
X = torch.randn(64, 4)
y = (X.sum(dim=1, keepdim=True) > 0).float()

class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(4, 1)
    def forward(self, x):
        return self.net(x)
    def training_step(self, batch, _):
        x, t = batch
        loss = torch.nn.functional.binary_cross_entropy_with_logits(self(x), t)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss
    def validation_step(self, batch, _):
        x, t = batch
        self.log("val_loss", torch.nn.functional.binary_cross_entropy_with_logits(self(x), t))
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

data = DataLoader(TensorDataset(X, y), batch_size=16)
trainer = pl.Trainer(max_epochs=3, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
trainer.fit(Tiny(), data, data)
"""


def test_lightning_records_what_mlflow_records(lt_server, mlflow_server, tmp_path: Path) -> None:
    ours = recorded(lt_server, train(lt_server, "lt", TRAINING.format(lib="lt"), tmp_path))
    theirs = recorded(mlflow_server, train(mlflow_server, "mlflow", TRAINING.format(lib="mlflow"), tmp_path))
    why = "labtrack:\n" + json_dump(ours) + "\nmlflow:\n" + json_dump(theirs)
    for key in ("params", "metrics", "steps", "flavors"):
        assert ours[key] == theirs[key], f"{key} differ\n{why}"
    assert {"epochs", "optimizer_name", "lr"} <= set(ours["params"])
    assert ours["steps"]["val_loss"] == 3 and "pytorch" in ours["flavors"]["model"]
    assert ours["tags"].get("Mode") == theirs["tags"].get("Mode") == "training"
