"""A sample training script that logs with labtrack's lt API (it continues the launcher's run)."""
import argparse

import labtrack as lt

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float, required=True)
parser.add_argument("--epochs", type=int, required=True)
parser.add_argument("--label", default="")
args = parser.parse_args()

with lt.start_run():
    for epoch in range(args.epochs):
        lt.log_metric("loss", args.alpha / (epoch + 1), step=epoch)
    lt.set_tag("label", args.label)
