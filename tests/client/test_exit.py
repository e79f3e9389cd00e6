"""How runs end when the program does: scripts in real child processes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import labtrack as lt

PRELUDE = """
import os, signal, sys, time
import labtrack as lt
lt.set_experiment(sys.argv[1])
"""


def run_script(server, body: str, exp: str, extra_env: dict[str, str] | None = None,
               ) -> subprocess.CompletedProcess:
    code = PRELUDE + textwrap.dedent(body)
    env = server.env()
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-c", code, exp], env=env, capture_output=True,
                          text=True, timeout=120)


def runs_of(exp_name: str) -> list[lt.Run]:
    return lt.search_runs(experiment_names=[exp_name])


def test_keyboard_interrupt_marks_run_killed(server) -> None:
    exp = f"kbd-{uuid.uuid4().hex}"
    # A background job started without job control inherits SIGINT ignored, and Python
    # then raises no KeyboardInterrupt: the script takes Ctrl-C as a terminal would give it.
    out = run_script(server, """
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with lt.start_run():
            lt.log_metric("m", 1.0)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(30)
    """, exp)
    assert out.returncode != 0 and "KeyboardInterrupt" in out.stderr
    (run,) = runs_of(exp)
    assert run.info.status == "KILLED"
    assert run.data.metrics == {"m": 1.0}


def test_uncaught_exception_without_context_manager_marks_failed(server) -> None:
    exp = f"crash-{uuid.uuid4().hex}"
    out = run_script(server, """
        lt.start_run()
        lt.log_param("p", 1)
        raise RuntimeError("boom")
    """, exp)
    assert "RuntimeError: boom" in out.stderr
    (run,) = runs_of(exp)
    assert run.info.status == "FAILED"
    assert run.data.params == {"p": "1"}


def test_exit_delivers_queued_points_and_finishes_the_run(server) -> None:
    exp = f"exit-{uuid.uuid4().hex}"
    out = run_script(server, """
        lt.start_run()
        for i in range(5000):
            lt.log_metric("m", float(i), step=i)
        # no end_run, no flush: interpreter exit must deliver everything
    """, exp)
    assert out.returncode == 0, out.stderr
    (run,) = runs_of(exp)
    assert run.info.status == "FINISHED"
    assert len(lt.get_metric_history(run.info.run_id, "m")) == 5000


def test_synchronous_mode_from_the_environment(server) -> None:
    exp = f"sync-{uuid.uuid4().hex}"
    out = run_script(server, """
        from labtrack.client import config
        assert not config.async_logging()
        with lt.start_run():
            lt.log_param("p", "a")
            try:
                lt.log_param("p", "b")
            except lt.LabtrackError as e:
                print("raised-at-once", e.error_code)
            lt.log_metric("m", 2.0)
    """, exp, {"LABTRACK_ASYNC_LOGGING": "false"})
    assert out.returncode == 0, out.stderr
    assert "raised-at-once INVALID_PARAMETER_VALUE" in out.stdout
    (run,) = runs_of(exp)
    assert run.data.metrics == {"m": 2.0} and run.info.status == "FINISHED"


def test_import_stays_light_and_one_way(server) -> None:
    out = run_script(server, """
        heavy = ["tornado", "sqlalchemy", "pandas", "matplotlib", "ipywidgets", "requests",
                 "numpy", "labtrack.store", "labtrack.server"]
        assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]
        with lt.start_run():
            lt.log_metric("m", 1.0)
            lt.log_text("x", "x.txt")
        lt.search_runs()
        assert "labtrack.store" not in sys.modules and "labtrack.server" not in sys.modules
        assert "sqlalchemy" not in sys.modules and "tornado" not in sys.modules
        print("ok")
    """, f"light-{uuid.uuid4().hex}")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
