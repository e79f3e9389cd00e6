"""The same with the unmodified mlflow client (for `mlflow run` and `labtrack run` alike)."""
import argparse

import mlflow

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float, required=True)
args = parser.parse_args()

with mlflow.start_run():
    for epoch in range(3):
        mlflow.log_metric("loss", args.alpha / (epoch + 1), step=epoch)
