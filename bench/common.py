"""Shared helpers for the benchmarks: servers as real processes, their CPU and memory.

Every figure a benchmark reports about a server is taken from the outside, the way a
user's machine sees it: wall time at the client, and the CPU seconds and memory of
the server's whole process tree (``mlflow server`` is a launcher, a uvicorn worker,
a job runner and its huey consumers; labtrack is one process) read with psutil.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psutil

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"

# No phoning home, no background uploads, no async logging: every call is one request.
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_ASYNC_LOGGING": "false",
    "LABTRACK_ASYNC_LOGGING": "false",
    "PYTHONWARNINGS": "ignore",
}


def quiet_env() -> None:
    """Apply QUIET_ENV to this process (and so to every server it starts)."""
    os.environ.update(QUIET_ENV)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- process trees ------------------------------------------------------------------

def tree(pid: int) -> list[psutil.Process]:
    """The process and all its live descendants."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process tree, including its reaped children."""
    total = 0.0
    for p in tree(pid):
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process tree in MB (10^6 bytes), summed over its processes."""
    total = 0
    for p in tree(pid):
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 1e6


def tree_memory(pid: int) -> list[dict[str, Any]]:
    """RSS and PSS (MB) per process of a tree, for the JSON record."""
    out = []
    for p in tree(pid):
        try:
            full = p.memory_full_info()
            cmd = " ".join(p.cmdline()[1:4])
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out.append({"pid": p.pid, "cmd": cmd, "rss_mb": round(full.rss / 1e6, 1),
                    "pss_mb": round(getattr(full, "pss", 0) / 1e6, 1)})
    return out


def stop_tree(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM the root, wait, then kill whatever of its tree is left."""
    procs = tree(proc.pid)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    _, alive = psutil.wait_procs(procs[1:], timeout=5)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


# -- servers ------------------------------------------------------------------------

def health_ok(port: int, timeout: float = 1.0) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@dataclass
class Server:
    """A benchmarked server process; ``launch_s`` is Popen to the first 200 on /health."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    launch_s: float
    token: str | None = None
    launch_cpu_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_s(self) -> float:
        return tree_cpu_s(self.pid)

    def rss_mb(self) -> float:
        return tree_rss_mb(self.pid)

    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stop_tree(self.proc)

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Around the timed part of a phase (the replay floor answers from memory there)."""
        yield


@dataclass
class ReplayFloor(Server):
    """``bench/replay.py`` in front of a fresh labtrack server: see that file.

    Untimed calls (setup, warm-up) go through to labtrack and are recorded; timed
    ones are answered at once from the recording, so their wall time is the
    client's own.  MLflow's figure over this one is the best ratio any server can
    reach through the same client.
    """

    upstream: Server | None = None

    def _switch(self, state: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("POST", f"/__replay__/{state}")
            conn.getresponse().read()
        finally:
            conn.close()

    @contextmanager
    def timed(self) -> Iterator[None]:
        self._switch("on")
        try:
            yield
        finally:
            self._switch("off")

    def stop(self) -> None:
        super().stop()
        if self.upstream is not None:
            self.upstream.stop()


def launch(name: str, cmd: list[str], port: int, workdir: Path, *, timeout: float,
           token: str | None = None, own_session: bool = False) -> Server:
    """Start ``cmd`` in ``workdir`` and wait for /health to answer 200.  ``own_session``: in a
    session of its own (bench/cpu_affinity.py says why that matters to the scheduler)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "server.log", "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=own_session)
    server = Server(name, port, proc, workdir, 0.0, token)
    deadline = t0 + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{server.log()[-3000:]}")
        if health_ok(port, timeout=0.5):
            server.launch_s = time.perf_counter() - t0
            # CPU spent getting there: unlike the wall time, hardly moved by a busy machine.
            server.launch_cpu_s = tree_cpu_s(proc.pid)
            return server
        time.sleep(0.01)
    server.stop()
    raise RuntimeError(f"{name} did not answer /health within {timeout:.0f} s:\n{server.log()[-3000:]}")


def mlflow_command(workdir: Path, port: int) -> list[str]:
    return [sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{workdir / 'mlflow.db'}",
            "--artifacts-destination", str(workdir / "mlartifacts"),
            "--workers", "1", "--host", "127.0.0.1", "--port", str(port)]


def labtrack_command(workdir: Path, port: int, token: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "labtrack", "server",
           "--backend-store-uri", f"sqlite:///{workdir / 'mlruns.db'}",
           "--artifacts-destination", str(workdir / "mlruns"),
           "--host", "127.0.0.1", "--port", str(port)]
    return cmd + (["--token", token] if token else ["--no-token"])


def start_mlflow(workdir: Path, timeout: float = 300.0) -> Server:
    port = free_port()
    return launch("mlflow", mlflow_command(workdir, port), port, workdir, timeout=timeout)


def start_labtrack(workdir: Path, token: str | None, timeout: float = 60.0, own_session: bool = False) -> Server:
    port = free_port()
    return launch("labtrack", labtrack_command(workdir, port, token), port, workdir,
                  timeout=timeout, token=token, own_session=own_session)


def start_floor(workdir: Path, token: str | None, timeout: float = 60.0) -> ReplayFloor:
    """A replay floor (``ReplayFloor``) recording a labtrack server of its own."""
    upstream = start_labtrack(workdir / "upstream", token, timeout)
    port = free_port()
    try:
        replay = launch("floor", [sys.executable, str(BENCH_DIR / "replay.py"), "--port", str(port),
                                  "--upstream", upstream.url], port, workdir, timeout=timeout, token=token)
    except BaseException:
        upstream.stop()
        raise
    return ReplayFloor(**vars(replay), upstream=upstream)


# -- measuring ----------------------------------------------------------------------

@dataclass
class Repeated:
    """``n`` runs of one call: each wall time, and the CPU per call over all of them.

    CPU is read once around the whole loop: psutil counts in clock ticks (10 ms),
    too coarse for one fast call.
    """

    walls: list[float]
    cpu_s: float
    client_cpu_s: float
    results: list[Any]

    @property
    def wall_s(self) -> float:
        return median(self.walls)


def repeat(server: Server, fn: Callable[[], Any], n: int) -> Repeated:
    walls, results = [], []
    with server.timed():
        c0 = server.cpu_s()
        p0 = time.process_time()
        for _ in range(n):
            t0 = time.perf_counter()
            results.append(fn())
            walls.append(time.perf_counter() - t0)
        client = time.process_time() - p0
        cpu = server.cpu_s() - c0
    return Repeated(walls, cpu / n, client / n, results)


T = TypeVar("T")


def interleaved(names: Sequence[T], rounds: int) -> Iterator[tuple[int, T]]:
    """``(round, name)``: every name once a round, round after round, the first name moving
    on by one each round so that none always goes first (the client's own CPU drifts with
    order and time, and this spreads the drift over every name alike)."""
    for r in range(rounds):
        k = r % len(names)
        for name in [*names[k:], *names[:k]]:
            yield r, name


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


@contextmanager
def scratch(prefix: str) -> Iterator[Path]:
    """A temporary folder on the local disk, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def machine() -> dict[str, Any]:
    def version(mod: str) -> str | None:
        try:
            from importlib.metadata import version as v

            return v(mod)
        except Exception:  # noqa: BLE001 - only informational
            return None

    commit = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=BENCH_DIR,
                                capture_output=True, text=True, timeout=10).stdout.strip() or None
    except OSError:
        pass
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(), "mlflow": version("mlflow"), "labtrack": version("labtrack"),
        "commit": commit, "load_avg_at_start": list(os.getloadavg()),
    }


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / name
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


# -- the table ----------------------------------------------------------------------

@dataclass
class Row:
    """One figure of a comparison.

    ``higher_is_better`` decides the ratio's direction so that a ratio > 1 always
    means labtrack is better: MLflow/labtrack for times, CPU and memory,
    labtrack/MLflow for throughput.  ``target`` is either a minimum ratio
    ("ratio", 4.0) or a limit on labtrack's own figure ("max", 0.5).  ``floor``
    is the same figure against a server that answers instantly (a wall time
    that is all client): ``ceiling`` is the ratio such a server reaches, the
    most that any server can.
    """

    figure: str
    unit: str
    mlflow: float | None
    labtrack: float | None
    higher_is_better: bool = False
    target: tuple[str, float] | None = None
    note: str = ""
    floor: float | None = None

    @property
    def ratio(self) -> float | None:
        return self._ratio(self.labtrack)

    @property
    def ceiling(self) -> float | None:
        return self._ratio(self.floor)

    def _ratio(self, ours: float | None) -> float | None:
        a, b = self.mlflow, ours
        if a is None or b is None:
            return None
        if self.higher_is_better:
            a, b = b, a
        if b == 0:
            return float("inf") if a > 0 else None
        return a / b

    @property
    def target_text(self) -> str:
        if self.target is None:
            return ""
        kind, value = self.target
        if kind == "ratio":
            ok = self.ratio is not None and self.ratio >= value
            return f"≥{value:g}× {'✓' if ok else '✗'}"
        ok = self.labtrack is not None and self.labtrack <= value
        return f"≤{value:g} {self.unit} {'✓' if ok else '✗'}"

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.target_text.endswith("✓")

    def to_json(self) -> dict[str, Any]:
        return {"figure": self.figure, "unit": self.unit, "mlflow": self.mlflow, "labtrack": self.labtrack,
                "ratio": self.ratio, "higher_is_better": self.higher_is_better,
                "target": self.target_text or None, "met": self.met, "note": self.note or None,
                "floor": self.floor, "ceiling": self.ceiling}


def fmt(x: float | None) -> str:
    if x is None:
        return "n/a"
    if x != x:  # NaN
        return "n/a"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def table(rows: list[Row]) -> str:
    head = ["figure", "unit", "MLflow", "labtrack", "ratio", "target"]
    body = [[r.figure, r.unit, fmt(r.mlflow), fmt(r.labtrack),
             "n/a" if r.ratio is None else f"{r.ratio:.1f}×", r.target_text] for r in rows]
    right = {2, 3, 4}
    if any(r.floor is not None for r in rows):
        head[5:5] = ["ceiling"]
        for r, b in zip(rows, body):
            b[5:5] = ["" if r.ceiling is None else f"{r.ceiling:.1f}×"]
        right.add(5)
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(head), "  ".join("-" * w for w in widths)]
    out += [line(b) for b in body]
    notes = [f"  [{i + 1}] {r.figure}: {r.note}" for i, r in enumerate(rows) if r.note]
    return "\n".join(out + ([""] + notes if notes else []))
