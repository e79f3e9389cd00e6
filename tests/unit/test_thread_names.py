"""labtrack's threads carry their names to the OS, where top -H, ps -L and py-spy read them."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from labtrack.thread_names import name_os_thread, os_name

from ..servers import start_server

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names are read from /proc")


def comm(pid: int | str, tid: int) -> str:
    return Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()


def test_os_names_fit_linux_15_bytes_and_shorten_the_prefix() -> None:
    assert os_name("labtrack-writer") == b"lt-writer"
    assert os_name("labtrack-split-read_2") == b"lt-split-read_2"
    assert os_name("labtrack-read-ahead_0") == b"lt-read-ahead_0"
    assert len(os_name("labtrack-" + "x" * 40)) == 15
    assert os_name("worker-ü" * 3)[:8] == b"worker-\xc3"


@linux_only
def test_a_thread_gets_its_python_name_as_its_os_name() -> None:
    seen: list[str] = []

    def run() -> None:
        name_os_thread()
        seen.append(comm("self", threading.get_native_id()))

    t = threading.Thread(target=run, name="labtrack-probe")
    t.start()
    t.join()
    assert seen == ["lt-probe"]


@linux_only
def test_a_servers_threads_are_named(tmp_path: Path) -> None:
    server = start_server(f"sqlite:///{tmp_path / 'mlruns.db'}", tmp_path, token=None)
    try:
        run = server.api("POST", "runs/create", {"experiment_id": "0"}).json()["run"]["info"]["run_id"]
        server.api("POST", "runs/search", {"experiment_ids": ["0"]}).raise_for_status()  # a request thread
        server.api("POST", "runs/log-metric", {"run_id": run, "key": "m", "value": 1, "timestamp": 1}
                   ).raise_for_status()
        pid = server.proc.pid
        names = {comm(pid, int(t.name)) for t in Path(f"/proc/{pid}/task").iterdir()}
    finally:
        server.stop()
    assert {"lt-writer", "lt-ingest"} <= names, names
    assert any(n.startswith("lt-req_") for n in names), names
