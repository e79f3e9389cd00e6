"""The server's allocator settings (labtrack.server.memory): applied on glibc, never over the user's."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")

_PROBE = "import json; from labtrack.server.memory import tune_malloc; print(json.dumps(tune_malloc()))"


def _applied(env: dict[str, str]) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", _PROBE], env={**clean, **env}, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


ALL = ["MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"]


def test_the_arena_count_and_fixed_thresholds_are_set_on_glibc() -> None:
    assert _applied({}) == ALL


def test_a_setting_the_user_made_in_the_environment_is_left_alone() -> None:
    assert _applied({"MALLOC_ARENA_MAX": "8"}) == ALL[1:]
    assert _applied({"MALLOC_TRIM_THRESHOLD_": "1048576"}) == ALL[:2]
