"""transformers autolog: ``lt.transformers.autolog()`` records the params and the per-step metrics
that ``mlflow.transformers.autolog()`` (transformers' MLflowCallback) does, for a tiny BERT built
from a config (nothing downloaded) and trained for real on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.training.conftest import json_dump, recorded, train

pytest.importorskip("torch", reason="torch is not installed (CI installs the CPU wheel)")
pytest.importorskip("transformers", reason="transformers is not installed")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TRAINING = """
{lib}.transformers.autolog()
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

torch.manual_seed(0)
config = BertConfig(vocab_size=40, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=16, max_position_embeddings=16, num_labels=2)
model = BertForSequenceClassification(config)

class Data(torch.utils.data.Dataset):
    def __len__(self):
        return 16
    def __getitem__(self, i):
        ids = torch.tensor([(i * 7 + j) % 40 for j in range(8)])
        return {{"input_ids": ids, "attention_mask": torch.ones(8, dtype=torch.long),
                 "labels": torch.tensor(i % 2)}}

args = TrainingArguments(output_dir="out", max_steps=4, per_device_train_batch_size=4, logging_steps=1,
                         save_strategy="no", report_to="{report}", use_cpu=True, disable_tqdm=True)
Trainer(model=model, args=args, train_dataset=Data()).train()
"""


def test_trainer_records_what_mlflow_records(lt_server, mlflow_server, tmp_path: Path) -> None:
    ours = recorded(lt_server, train(lt_server, "lt", TRAINING.format(lib="lt", report="none"), tmp_path))
    theirs = recorded(mlflow_server, train(mlflow_server, "mlflow",
                                           TRAINING.format(lib="mlflow", report="none"), tmp_path))
    why = "labtrack:\n" + json_dump(ours) + "\nmlflow:\n" + json_dump(theirs)
    for key in ("params", "metrics", "steps", "flavors"):
        assert ours[key] == theirs[key], f"{key} differ\n{why}"
    assert ours["steps"]["loss"] == 4 and "learning_rate" in ours["params"]
