"""Issue 21's spool workload: a job array logging through the spool while HTTP writers log too.

``--tasks`` processes (the array's tasks) each log ``--points`` points of metric ``loss``
through the spool (``LABTRACK_SPOOL=1``, the database's spool folder: what a SLURM task
does when it cannot reach the server), and at the same time ``--http`` processes log the
same number of points to the server over HTTP.  All of them are forked from one process
that has already imported the client, and start together on one barrier.  Task ``i``'s
point at step ``s`` has the value ``i * 1e6 + s`` (exact in a double), so its latest value
is known beforehand.

While they run, the parent polls the server's ``runs/search`` (what the UI's runs table
reads) and notes when each task's latest value first shows there; each task notes when its
last point was written (``flush()`` returned: on disk in the spool, or committed by the
server).  With ``--server-pid`` it also samples the server's RSS.

    python bench/spool_array.py --db DB --url URL [--token T] [--tasks 512] [--points 10000]
                                [--http 64] [--server-pid PID]
                                [--server-cpus 0 --task-cpus 1]

``--server-cpus``/``--task-cpus`` (taskset's list form, e.g. ``0`` or ``1-3``) place the
server and the producers on separate CPUs, as a login node and compute nodes are: every
thread of the server process (and its children) is pinned to ``--server-cpus`` for the
run and given its affinity back after, and every task and HTTP writer to ``--task-cpus``,
each in a session of its own (bench/cpu_affinity.py: with the kernel's autogroup scheduling a
session is a CPU scheduling group, and the tasks in the server's session left its threads a
sliver of CPU 0, so the watcher's polls stalled for seconds; ``sessions`` in the result says
how many sessions the tasks had and how many shared the server's).  This process (the
``runs/search`` watcher and the samplers) and the floor reader stand for the server's side
and run on ``--server-cpus``, in this process's session; the floor reader's CPU seconds are
reported (``floor.cpu_s``).  Without them everything shares every core and one session, as
on one machine.

prints one JSON line: the tasks that failed, each task's run name and lag (and the max and p95
over tasks), ``/proc/loadavg`` at the start and at the end, the time from
the start until every latest value showed (``all_seen_s``), until every point was stored
(``stored_s``, when the caller can tell), the peak RSS and the server's CPU seconds meanwhile
(``server_cpu_s``), and the tasks' own CPU seconds (``task_cpu_s``, spooling and HTTP).

Two measurements say what the machine itself allows.  ``floor``: a do-nothing reader (a
process of its own, started with the tasks) that only lists the spool folder and stat()s
every file, over and over, noting when each file reaches the size its task had when its last
point was written: its lag is the floor that no ingester on this machine can beat, since
any ingester must at least see the bytes.  ``sched``: the server's threads' CPU seconds and
seconds spent runnable but waiting for a core (``/proc/PID/task/*/schedstat``), while the
tasks write and after, with the busiest thread's share of a core: how much of the machine
the ingester gets while hundreds of processes want it.  The
points themselves are counted in the database by whoever runs this
(tests/reliability/test_spool_scale.py, bench/scale_ingest.py).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import threading
import time
import urllib.request
from pathlib import Path
from collections.abc import Callable
from typing import Any

# bench/ is on sys.path: run as a script or imported beside it
from cpu_affinity import autogroup_enabled, own_session, parse_cpus, pin_self, pinned_tree
from job_array import reap

EXPERIMENT = "scale-spool"
BARRIER_TIMEOUT_S = 900.0


def value(task: int, step: int) -> float:
    return task * 1e6 + step


def run_name(task: int, tasks: int) -> str:
    return f"task-{task}" if task < tasks else f"http-{task - tasks}"


def _task(i: int, tasks: int, uri: str, points: int, token: str | None, out: str, barrier: Any,
          cpus: frozenset[int] | None) -> None:
    pin_self(cpus)
    if cpus:
        own_session()  # placed: out of the server's scheduling group too (cpu_affinity's docstring)
    os.environ["LABTRACK_SPOOL"] = "1" if i < tasks else "0"
    if token and i >= tasks:
        os.environ["LABTRACK_TRACKING_TOKEN"] = token
    barrier.wait(BARRIER_TIMEOUT_S)
    import labtrack as lt

    lt.set_tracking_uri(uri)
    lt.set_experiment(EXPERIMENT)
    with lt.start_run(run_name=run_name(i, tasks)) as run:
        base = i * 1e6
        for step in range(points):
            lt.log_metric("loss", base + step, step=step)
        lt.flush()
        written = time.time()
        size = _own_spool_size(uri) if i < tasks else None
    lt.flush()
    Path(out, f"{i}.json").write_text(json.dumps({"i": i, "run_id": run.info.run_id, "written": written,
                                                  "pid": os.getpid(), "sid": os.getsid(0), "size": size,
                                                  "cpu_s": time.process_time()}))  # since the fork


def _own_spool_size(uri: str) -> int | None:
    """The size of this process's spool file (its name holds the pid: labtrack.spool.new_spool_path)."""
    from labtrack.spool import spool_folder

    folder = spool_folder(uri.removeprefix("sqlite:///"))
    sizes = [f.stat().st_size for f in folder.glob(f"*-{os.getpid()}-*.jsonl")]
    return max(sizes) if sizes else None


def _child(*args: Any) -> None:
    try:
        _task(*args)
    except BaseException as e:  # noqa: BLE001 - reported by the exit code, one line
        print(f"task {args[0]}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        os._exit(1)
    os._exit(0)


def _floor_reader(folder: str, out: str, barrier: Any, stop: Any, cpus: frozenset[int] | None) -> None:
    """The do-nothing reader: stat() every spool file until ``stop``, noting each size change
    (time, size) per file; written to ``out``/floor.json with its own CPU seconds."""
    try:
        pin_self(cpus)
        barrier.wait(BARRIER_TIMEOUT_S)
        seen: dict[str, list[tuple[float, int]]] = {}
        sweeps = 0
        while not stop.is_set():
            try:
                names = os.listdir(folder)
            except FileNotFoundError:
                names = []
            for name in names:
                if not name.endswith(".jsonl"):
                    continue
                try:
                    size = os.stat(os.path.join(folder, name)).st_size
                except FileNotFoundError:
                    continue
                now = time.time()
                changes = seen.setdefault(name, [])
                if not changes or changes[-1][1] != size:
                    changes.append((now, size))
            sweeps += 1
            stop.wait(0.01)
        Path(out, "floor.json").write_text(json.dumps({"sweeps": sweeps, "files": seen,
                                                       "cpu_s": time.process_time()}))
    except BaseException as e:  # noqa: BLE001 - reported by the exit code, one line
        print(f"floor reader: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        os._exit(1)
    os._exit(0)


def floor_lags(floor: dict[str, Any], records: list[dict[str, Any]]) -> dict[int, float]:
    """Task index -> seconds from its last write until the reader first saw its file that large."""
    by_pid: dict[int, list[tuple[float, int]]] = {}
    for name, changes in floor["files"].items():
        parts = name.rsplit("-", 2)
        if len(parts) == 3 and parts[1].isdigit():
            by_pid.setdefault(int(parts[1]), []).extend(changes)
    lags = {}
    for rec in records:
        size = rec.get("size")
        seen = [t for t, s in sorted(by_pid.get(rec.get("pid"), [])) if size is not None and s >= size]
        if seen:
            lags[rec["i"]] = round(max(0.0, seen[0] - rec["written"]), 3)
    return lags


_CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def cpu_ticks() -> dict[str, list[int]]:
    """Each CPU's ticks by kind (``/proc/stat``: user, nice, system, idle, iowait, irq, softirq, steal)."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name.startswith("cpu") and name != "cpu":
            out[name] = [int(x) for x in fields[:len(_CPU_FIELDS)]]
    return out


def process_cpu() -> dict[int, tuple[int, str, int, int]]:
    """Every process on the machine: pid -> (parent pid, name, CPU ticks so far (user + system),
    its reaped children's CPU ticks)."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            text = Path(f"/proc/{name}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        fields = text[text.rindex(")") + 2:].split()
        out[int(name)] = (int(fields[1]), comm, int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14]))
    return out


def cpu_by_owner(before: dict[int, tuple[int, str, int, int]], after: dict[int, tuple[int, str, int, int]],
                 server_pid: int | None) -> dict[str, Any]:
    """CPU seconds each part of the machine used between two ``process_cpu`` snapshots: the
    server, this process's children (the tasks, the HTTP writers, the floor reader; those
    already reaped through this process's children's ticks), this process, and everything
    else (other users' jobs, kernel threads), with its top three.  Other processes that
    ended meanwhile are not seen."""
    tick = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    groups = {"server": 0.0, "tasks_and_floor": 0.0, "this_process": 0.0, "others": 0.0}
    others: dict[str, float] = {}
    for pid, (ppid, comm, ticks, reaped) in after.items():
        used = (ticks - (before[pid][2] if pid in before else 0)) / tick
        if pid == me:
            groups["tasks_and_floor"] += (reaped - before.get(pid, after[pid])[3]) / tick
        if used <= 0:
            continue
        if pid == server_pid or ppid == server_pid:
            groups["server"] += used
        elif ppid == me:
            groups["tasks_and_floor"] += used
        elif pid == me:
            groups["this_process"] += used
        else:
            groups["others"] += used
            others[comm] = others.get(comm, 0.0) + used
    top = sorted(others.items(), key=lambda kv: -kv[1])[:3]
    return {**{k: round(v, 2) for k, v in groups.items()}, "top_others": [(c, round(v, 2)) for c, v in top]}


class SchedSampler(threading.Thread):
    """Every ``interval`` seconds, each thread of a process: CPU and run-queue wait nanoseconds
    (``/proc/PID/task/TID/schedstat``: on a core, runnable but waiting for one), and what each
    CPU of the machine did (``/proc/stat``)."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        super().__init__(name="sched", daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, dict[str, tuple[int, int]], dict[str, list[int]]]] = []
        self.names: dict[str, str] = {}
        self.stop = threading.Event()

    def sample(self) -> None:
        threads = {}
        try:
            tids = os.listdir(f"/proc/{self.pid}/task")
        except FileNotFoundError:
            return
        for tid in tids:
            try:
                run_ns, wait_ns, _ = Path(f"/proc/{self.pid}/task/{tid}/schedstat").read_text().split()
                if tid not in self.names:
                    self.names[tid] = Path(f"/proc/{self.pid}/task/{tid}/comm").read_text().strip()
            except (FileNotFoundError, ValueError):
                continue
            threads[tid] = (int(run_ns), int(wait_ns))
        self.samples.append((time.time(), threads, cpu_ticks()))

    def run(self) -> None:
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.interval)
        self.sample()

    def phase(self, start: float, end: float) -> dict[str, Any] | None:
        """The server's CPU and wait seconds between ``start`` and ``end``, and its busiest thread's."""
        before = next((s for s in reversed(self.samples) if s[0] <= start), self.samples[0] if self.samples else None)
        after = next((s for s in self.samples if s[0] >= end), self.samples[-1] if self.samples else None)
        if before is None or after is None or after[0] <= before[0]:
            return None
        wall = after[0] - before[0]
        delta = {tid: (run - before[1].get(tid, (0, 0))[0], wait - before[1].get(tid, (0, 0))[1])
                 for tid, (run, wait) in after[1].items()}
        busiest = max(delta.values(), default=(0, 0))
        top = sorted(delta.items(), key=lambda kv: -kv[1][0])[:5]
        return {"wall_s": round(wall, 2), "cpu_s": round(sum(r for r, _ in delta.values()) / 1e9, 2),
                "runnable_wait_s": round(sum(w for _, w in delta.values()) / 1e9, 2),
                "busiest_thread_cpu_share": round(busiest[0] / 1e9 / wall, 3),
                "busiest_thread_wait_s": round(busiest[1] / 1e9, 2),
                "threads": [{"name": self.names.get(tid, tid), "cpu_s": round(r / 1e9, 2), "wait_s": round(w / 1e9, 2)}
                            for tid, (r, w) in top],
                "cpus": _cpu_shares(before[2], after[2])}


def _cpu_shares(before: dict[str, list[int]], after: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    """Each CPU's share of the interval by kind (user, system, idle, ...; kinds under 0.5% left out)."""
    out = {}
    for cpu, ticks in after.items():
        diff = [a - b for a, b in zip(ticks, before.get(cpu, ticks))]
        total = sum(diff) or 1
        out[cpu] = {k: round(d / total, 3) for k, d in zip(_CPU_FIELDS, diff) if d / total >= 0.005}
    return out


def _warm() -> None:
    """Import what a task's first calls import, once, before forking (nothing is sent)."""
    import labtrack  # noqa: F401
    import labtrack.client.fluent  # noqa: F401
    import labtrack.client.sender  # noqa: F401
    import labtrack.client.spool_transport  # noqa: F401
    import labtrack.client.slurm_tags  # noqa: F401
    import labtrack.client.system_tags  # noqa: F401
    import labtrack.client.transport  # noqa: F401
    import labtrack.mlflow_data  # noqa: F401 - resolve_database, with sqlite3
    import labtrack.spool  # noqa: F401


class Watcher(threading.Thread):
    """Polls ``runs/search`` as the UI does and notes when each run's expected latest value shows."""

    def __init__(self, url: str, token: str | None, expected: dict[str, float], interval: float) -> None:
        super().__init__(name="watcher", daemon=True)
        self.url, self.token, self.expected, self.interval = url, token, expected, interval
        self.seen: dict[str, float] = {}
        self.polls = 0
        self.errors = 0
        self.durations: list[float] = []  # each poll's seconds (all its pages), errors included
        self.stop = threading.Event()

    def poll(self) -> None:
        exp = self._call(f"experiments/get-by-name?experiment_name={EXPERIMENT}")
        token = None
        while True:
            body = {"experiment_ids": [exp["experiment"]["experiment_id"]], "max_results": 1000}
            if token:
                body["page_token"] = token
            page = self._call("runs/search", body)
            now = time.time()
            for r in page.get("runs", []):
                name = r["info"].get("run_name")
                want = self.expected.get(name)
                if want is None or name in self.seen:
                    continue
                latest = {m["key"]: m["value"] for m in r.get("data", {}).get("metrics", [])}
                if latest.get("loss") == want:
                    self.seen[name] = now
            token = page.get("next_page_token")
            if not token:
                return

    def _call(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}/api/2.0/mlflow/{path}", data=data,
                                     headers={"Content-Type": "application/json"})
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(req, timeout=60) as r:
            return json.loads(r.read() or b"{}")

    def run(self) -> None:
        while not self.stop.is_set() and len(self.seen) < len(self.expected):
            t = time.monotonic()
            try:
                self.poll()
                self.polls += 1
            except Exception:  # noqa: BLE001 - the experiment may not exist yet
                self.errors += 1
            self.durations.append(time.monotonic() - t)
            self.stop.wait(self.interval)


class RssSampler(threading.Thread):
    """The peak RSS of a process and its children, sampled every ``interval`` seconds, and
    the CPU seconds the process used while sampled.

    The process tree is looked up every ``tree_every`` seconds only: psutil finds children by
    reading every process's parent, ~46 ms of CPU with the array's ~600 processes alive, which
    every 0.2 s was a quarter of a core taken from the server (its own core, when placed)."""

    def __init__(self, pid: int, interval: float = 0.2, tree_every: float = 5.0) -> None:
        super().__init__(name="rss", daemon=True)
        self.pid, self.interval, self.tree_every = pid, interval, tree_every
        self.peak_mb = 0.0
        self.cpu_s: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        import psutil

        def tree() -> list[Any]:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]

        def cpu() -> float:
            return sum(t.user + t.system for t in (p.cpu_times() for p in tree()))

        try:
            start = cpu()
        except psutil.Error:
            start = None
        procs: list[Any] = []
        looked = -1e9
        while not self.stop.is_set():
            try:
                if time.monotonic() - looked >= self.tree_every:
                    procs, looked = tree(), time.monotonic()
                rss = 0
                for proc in procs:
                    try:
                        rss += proc.memory_info().rss
                    except psutil.NoSuchProcess:
                        looked = -1e9  # a child ended: look again next time
                self.peak_mb = max(self.peak_mb, rss / 2**20)
            except psutil.Error:
                pass
            self.stop.wait(self.interval)
        try:
            self.cpu_s = None if start is None else cpu() - start
        except psutil.Error:
            pass


def run_array(db: Path, url: str, token: str | None, tasks: int, points: int, http: int, *,
              server_pid: int | None = None, watch_interval: float = 0.5,
              timeout: float = 1800.0, stored: Callable[[], bool] | None = None,
              server_cpus: frozenset[int] | None = None, task_cpus: frozenset[int] | None = None) -> dict[str, Any]:
    """Run the workload; returns what the module docstring describes.

    ``stored()`` (given by whoever counts the points) tells when every point is in the
    database; the time until then is ``stored_s`` (a task's latest value shows before its
    history is stored in full), and the server's CPU is measured until then.
    ``server_cpus``/``task_cpus``: the module docstring's CPU placement (the server's needs
    ``server_pid``)."""
    if server_cpus and server_pid is None:
        raise ValueError("server_cpus needs server_pid: the server is pinned by its pid")
    saved = os.sched_getaffinity(0)
    try:
        with pinned_tree(server_pid, server_cpus):
            return _run_array(db, url, token, tasks, points, http, server_pid, watch_interval, timeout, stored,
                              server_cpus, task_cpus)
    finally:
        os.sched_setaffinity(0, saved)


def _run_array(db: Path, url: str, token: str | None, tasks: int, points: int, http: int,
               server_pid: int | None, watch_interval: float, timeout: float,
               stored: Callable[[], bool] | None, server_cpus: frozenset[int] | None,
               task_cpus: frozenset[int] | None) -> dict[str, Any]:
    load_start = Path("/proc/loadavg").read_text().strip()
    _warm()
    total = tasks + http
    expected = {run_name(i, tasks): value(i, points - 1) for i in range(total)}
    out = Path(db).parent / f"spool-array-{os.getpid()}"
    out.mkdir(exist_ok=True)
    spool_uri = f"sqlite:///{Path(db).resolve()}"
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(total + 2)  # the tasks, the floor reader and this process
    floor_stop = ctx.Event()
    from labtrack.spool import spool_folder

    floor = ctx.Process(target=_floor_reader, args=(str(spool_folder(Path(db).resolve())), str(out), barrier,
                                                    floor_stop, server_cpus))
    procs = [ctx.Process(target=_child, args=(i, tasks, spool_uri if i < tasks else url, points, token,
                                              str(out), barrier, task_cpus)) for i in range(total)]
    floor.start()
    for p in procs:
        p.start()
    pin_self(server_cpus)  # the watcher and the samplers stand for the server's side
    # Threads only after the forks: a fork copies no threads, but it may copy a held lock.
    watcher = Watcher(url, token, expected, watch_interval)
    sampler = RssSampler(server_pid) if server_pid else None
    sched = SchedSampler(server_pid) if server_pid else None
    for th in (sampler, sched):
        if th:
            th.start()
    procs_before = process_cpu()
    barrier.wait(BARRIER_TIMEOUT_S)
    t_go = time.time()
    observer_cpu = time.process_time()  # this process, all threads: the watcher and the samplers
    watcher.start()
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
    t_written = time.time()
    observer_cpu = time.process_time() - observer_cpu
    by_owner = cpu_by_owner(procs_before, process_cpu(), server_pid)  # children not yet reaped: counted
    # A task that failed never shows its latest value: wait only for the others.
    watcher.expected = {run_name(i, tasks): v for i, (p, v) in enumerate(zip(procs, expected.values()))
                        if p.exitcode == 0}
    watcher.join(max(0.1, deadline - time.monotonic()))
    watcher.stop.set()
    t_seen = time.time()
    floor_stop.set()
    floor.join(60)
    stored_at = None
    while stored is not None and time.monotonic() < deadline:
        if stored():
            stored_at = time.time()
            break
        time.sleep(0.5)
    t_stored = time.time()
    for th in (sampler, sched):
        if th:
            th.stop.set()
            th.join()
    failed = reap(procs)
    reap([floor])
    lags = {}
    records = []
    for f in out.glob("*.json"):
        if f.name == "floor.json":
            continue
        rec = json.loads(f.read_text())
        records.append(rec)
        name = run_name(rec["i"], tasks)
        if name in watcher.seen:
            lags[name] = round(watcher.seen[name] - rec["written"], 3)
    floor_file = out / "floor.json"
    floor_data = json.loads(floor_file.read_text()) if floor_file.exists() else {"sweeps": 0, "files": {}}
    floor_lag = sorted(floor_lags(floor_data, [r for r in records if r["i"] < tasks]).values())
    by_lag = sorted(lags.values())
    result = {"tasks": tasks, "http": http, "points": points, "failed": failed,
              "server_cpus": sorted(server_cpus) if server_cpus else None,
              "task_cpus": sorted(task_cpus) if task_cpus else None,
              "autogroup": autogroup_enabled(), "sessions": _sessions(records, server_pid),
              "loadavg_start": load_start, "loadavg_end": Path("/proc/loadavg").read_text().strip(),
              "t_go": t_go, "written_s": round(t_written - t_go, 2),
              "observer_cpu_s": round(observer_cpu, 2), "cpu_by_owner_while_writing": by_owner,
              "all_seen_s": round(max(watcher.seen.values()) - t_go, 2) if len(watcher.seen) == total else None,
              "seen": len(watcher.seen), "polls": watcher.polls, "lags": lags,
              # when each task's last write was, from the start (a lag's place in the run)
              "written_at": {run_name(r["i"], tasks): round(r["written"] - t_go, 3) for r in records},
              "watcher": {"errors": watcher.errors, "longest_poll_s": round(max(watcher.durations, default=0.0), 2),
                          "median_poll_s": round(sorted(watcher.durations)[len(watcher.durations) // 2], 2)
                          if watcher.durations else None},
              "http_max_lag_s": max((v for k, v in lags.items() if k.startswith("http-")), default=None),
              "stored_s": None if stored_at is None else round(stored_at - t_go, 2),
              "max_lag_s": by_lag[-1] if by_lag else None,
              "p95_lag_s": by_lag[min(len(by_lag) - 1, (95 * len(by_lag)) // 100)] if by_lag else None,
              "task_cpu_s": {"spool": round(sum(r["cpu_s"] for r in records if r["i"] < tasks), 2),
                             "http": round(sum(r["cpu_s"] for r in records if r["i"] >= tasks), 2)},
              "floor": {"tasks": len(floor_lag), "sweeps": floor_data["sweeps"], "cpu_s": floor_data.get("cpu_s"),
                        "max_lag_s": floor_lag[-1] if floor_lag else None,
                        "median_lag_s": floor_lag[len(floor_lag) // 2] if floor_lag else None},
              "sched": None if sched is None else {
                  "writing": sched.phase(t_go, t_written), "after_writing": sched.phase(t_written, t_seen),
                  "until_stored": sched.phase(t_written, t_stored)},
              "peak_rss_mb": round(sampler.peak_mb, 1) if sampler else None,
              "server_cpu_s": round(sampler.cpu_s, 2) if sampler and sampler.cpu_s is not None else None}
    return result


def _sessions(records: list[dict[str, Any]], server_pid: int | None) -> dict[str, int | None]:
    """How many sessions (autogroup scheduling groups) the tasks ran in, and how many tasks in the server's."""
    try:
        server_sid = None if server_pid is None else os.getsid(server_pid)
    except ProcessLookupError:
        server_sid = None
    sids = [r.get("sid") for r in records]
    return {"tasks": len(set(sids)),
            "in_server_session": None if server_sid is None else sum(1 for sid in sids if sid == server_sid)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", required=True, help="the server's SQLite database (its spool folder is used)")
    ap.add_argument("--url", required=True, help="the server's URL (HTTP writers, runs/search)")
    ap.add_argument("--token", default=None)
    ap.add_argument("--tasks", type=int, default=512)
    ap.add_argument("--points", type=int, default=10_000)
    ap.add_argument("--http", type=int, default=64)
    ap.add_argument("--server-pid", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--server-cpus", type=parse_cpus, default=None,
                    help="CPUs for the server (needs --server-pid), this process and the floor reader, e.g. 0")
    ap.add_argument("--task-cpus", type=parse_cpus, default=None,
                    help="CPUs for the tasks and HTTP writers, e.g. 1 (see the docstring)")
    args = ap.parse_args()
    if args.server_cpus and args.server_pid is None:
        ap.error("--server-cpus needs --server-pid")
    os.environ.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    for name in ("LABTRACK_TRACKING_URI", "MLFLOW_TRACKING_URI", "LABTRACK_SPOOL", "SLURM_JOB_ID"):
        os.environ.pop(name, None)
    res = run_array(Path(args.db), args.url, args.token, args.tasks, args.points, args.http,
                    server_pid=args.server_pid, timeout=args.timeout, server_cpus=args.server_cpus,
                    task_cpus=args.task_cpus)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
