"""Real data for the UI tests, logged through the server's REST API (as a client would)."""

from __future__ import annotations

import json
import math
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from tests.servers import ServerProcess

XSS = '<img src=x onerror="window.__xss=1">'
XSS_SCRIPT = "<script>window.__xss=1</script>"
DESCRIPTION = (
    "# Sweep notes\n\nThis run uses **adam** with `lr=0.01`.\n\n"
    "- first point\n- second point\n\n"
    f"{XSS}\n\n[click me](javascript:window.__xss=1) and [docs](https://example.org/docs)\n"
)


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG, made without any imaging library."""
    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@dataclass
class Seeded:
    exp_sweep: str = ""
    exp_other: str = ""
    exp_big: str = ""
    exp_long: str = ""
    exp_deleted: str = ""
    runs: dict[str, str] = field(default_factory=dict)  # name -> run id
    long_points: int = 0
    big_runs: int = 0


class Logger:
    def __init__(self, server: ServerProcess) -> None:
        self.s = server

    def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.s.api("POST", path, body)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json() if r.text else {}

    def experiment(self, name: str) -> str:
        return str(self.call("experiments/create", {"name": name})["experiment_id"])

    def run(self, exp: str, name: str, *, start: int | None = None, tags: dict[str, str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"experiment_id": exp, "run_name": name, "start_time": start or int(time.time() * 1000),
                                "user_id": "alice", "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]}
        return self.call("runs/create", body)["run"]["info"]

    def batch(self, run_id: str, params: dict[str, str] | None = None, metrics: list[tuple[str, float, int, int]] | None = None,
              tags: dict[str, str] | None = None) -> None:
        self.call("runs/log-batch", {
            "run_id": run_id,
            "params": [{"key": k, "value": v} for k, v in (params or {}).items()],
            "metrics": [{"key": k, "value": v, "step": s, "timestamp": t} for k, v, s, t in (metrics or [])],
            "tags": [{"key": k, "value": v} for k, v in (tags or {}).items()],
        })

    def finish(self, run_id: str, end: int | None = None) -> None:
        self.call("runs/update", {"run_id": run_id, "status": "FINISHED", "end_time": end or int(time.time() * 1000)})

    def artifact(self, info: dict[str, Any], path: str, data: bytes) -> None:
        rel = info["artifact_uri"].split("mlflow-artifacts:/", 1)[1].strip("/")
        r = self.s.session.put(f"{self.s.url}/api/2.0/mlflow-artifacts/artifacts/{rel}/{quote(path)}", data=data, timeout=60)
        assert r.status_code == 200, (path, r.status_code, r.text)


def curve(run_index: int, lr: float, steps: int, t0: int) -> list[tuple[str, float, int, int]]:
    out = []
    for s in range(steps):
        loss = 2.0 * math.exp(-s * lr * 8) + 0.05 * (run_index % 5) + 0.02 * math.sin(s + run_index)
        out.append(("loss", loss, s, t0 + s * 1000))
        out.append(("accuracy", 1.0 - loss / 2.5, s, t0 + s * 1000))
    return out


def seed(server: ServerProcess) -> Seeded:
    lg = Logger(server)
    out = Seeded()
    now = int(time.time() * 1000) - 3_600_000
    out.exp_sweep = lg.experiment("cnn-sweep")
    out.exp_other = lg.experiment("nlp-baselines")
    i = 0
    for lr in ("0.1", "0.01", "0.001"):
        for opt in ("adam", "sgd"):
            for batch in ("32", "64"):
                name = f"cnn-{opt}-lr{lr}-b{batch}"
                t0 = now + i * 60_000
                info = lg.run(out.exp_sweep, name, start=t0, tags={"team": "vision", "mlflow.source.name": "train.py",
                                                                  "mlflow.source.git.commit": "0123456789abcdef"})
                lg.batch(info["run_id"], {"lr": lr, "optimizer": opt, "batch_size": batch, "epochs": "30"},
                         curve(i, float(lr) * 10 if float(lr) < 0.1 else 0.5, 30, t0), {"stage": "sweep"})
                lg.finish(info["run_id"], t0 + 31_000)
                out.runs[name] = info["run_id"]
                i += 1
    # a parent with three children (a nested sweep)
    parent = lg.run(out.exp_sweep, "hpo-parent", start=now + 20 * 60_000)
    out.runs["hpo-parent"] = parent["run_id"]
    for k in range(3):
        child = lg.run(out.exp_sweep, f"hpo-child-{k}", start=now + (21 + k) * 60_000, tags={"mlflow.parentRunId": parent["run_id"]})
        lg.batch(child["run_id"], {"lr": str(0.05 * (k + 1)), "optimizer": "adam"}, curve(k, 0.3, 10, now), {})
        lg.finish(child["run_id"])
        out.runs[f"hpo-child-{k}"] = child["run_id"]
    lg.finish(parent["run_id"])
    # a run with hostile strings everywhere, a description and artifacts (a folder of numbered images among them)
    info = lg.run(out.exp_sweep, f"evil {XSS_SCRIPT}", start=now + 30 * 60_000,
                  tags={"note": XSS, "mlflow.note.content": DESCRIPTION})
    out.runs["evil"] = info["run_id"]
    lg.batch(info["run_id"], {"payload": XSS, "lr": "0.01"}, curve(3, 0.2, 20, now), {})
    lg.artifact(info, "notes.txt", b"hello from the artifact browser\n" + XSS.encode())
    lg.artifact(info, "config.json", json.dumps({"model": {"layers": 4, "name": XSS}}).encode())
    lg.artifact(info, "params.yaml", b"lr: 0.01\noptimizer: adam\n")
    lg.artifact(info, "table.csv", b"epoch,loss,acc\n1,0.9,0.5\n2,0.5,0.7\n3,\"0.3\",0.8\n")
    lg.artifact(info, "plots/curve.png", png(64, 32, (30, 120, 200)))
    colors = [(220, 40, 40), (40, 200, 40), (40, 40, 220), (200, 200, 40), (200, 40, 200)]
    for s, c in enumerate(colors):
        lg.artifact(info, f"samples/step_{s * 10}.png", png(32, 32, c))
    lg.finish(info["run_id"])
    # a live run that stays RUNNING
    live = lg.run(out.exp_sweep, "live-run", start=now + 40 * 60_000)
    lg.batch(live["run_id"], {"lr": "0.01", "optimizer": "adam"}, [("loss", 1.0, 0, now)], {})
    out.runs["live-run"] = live["run_id"]
    # a deleted run
    gone = lg.run(out.exp_sweep, "deleted-run", start=now + 41 * 60_000)
    lg.finish(gone["run_id"])
    lg.call("runs/delete", {"run_id": gone["run_id"]})
    out.runs["deleted-run"] = gone["run_id"]
    # another experiment, same team tag: runs compared across experiments
    for k in range(3):
        o = lg.run(out.exp_other, f"bert-{k}", start=now + k * 1000, tags={"team": "vision" if k < 2 else "nlp"})
        lg.batch(o["run_id"], {"lr": "0.01", "model": "bert"}, [("loss", 0.4 + k / 10, 0, now)], {})
        lg.finish(o["run_id"])
        out.runs[f"bert-{k}"] = o["run_id"]
    # a long metric history (downsampled by the server for charts)
    out.exp_long = lg.experiment("long-history")
    lr_run = lg.run(out.exp_long, "long-run", start=now)
    out.runs["long-run"] = lr_run["run_id"]
    n = 20_000
    for a in range(0, n, 1000):
        lg.batch(lr_run["run_id"], metrics=[("long", math.sin(s / 500) + (3.0 if s == 12_345 else 0.0), s, now + s) for s in range(a, min(n, a + 1000))])
    lg.finish(lr_run["run_id"])
    out.long_points = n
    # many runs: the table renders only the rows in view
    out.exp_big = lg.experiment("big-sweep")
    out.big_runs = 1200
    for k in range(out.big_runs):
        r = lg.run(out.exp_big, f"big-{k:04d}", start=now + k)
        lg.batch(r["run_id"], {"seed": str(k), "width": str(64 * (1 + k % 4))}, [("score", (k * 37 % 1000) / 1000, 0, now)], {})
    # a deleted experiment
    out.exp_deleted = lg.experiment("old-experiment")
    lg.call("experiments/delete", {"experiment_id": out.exp_deleted})
    return out
