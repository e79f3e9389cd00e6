"""Plain-text tables for the terminal: aligned columns, no dependency.

Cells are single-line (newlines and tabs shown as spaces) and cut at
``MAX_CELL`` characters with an ellipsis, so one long tag value cannot push
every other column off a narrow SSH terminal.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

MAX_CELL = 60


def cell(value: Any) -> str:
    """How a value reads in a table: numbers compact, times readable, None blank."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return f"{value:.6g}"
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "…"


def when(ms: int | None) -> str:
    """An epoch-milliseconds time as local ``YYYY-MM-DD HH:MM:SS``."""
    if not ms:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))


def duration(start_ms: int | None, end_ms: int | None) -> str:
    """``1h 02m``, ``3m 05s``, ``12.3s``; blank while unknown."""
    if not start_ms or not end_ms:
        return ""
    s = max(0, end_ms - start_ms) / 1000
    if s < 60:
        return f"{s:.1f}s"
    m, s = divmod(int(s), 60)
    if m < 60:
        return f"{m}m {s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m"


def render(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """The rows under their headers, columns padded to one width each."""
    texts = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in texts:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(t.ljust(w) for t, w in zip(row, widths)).rstrip() for row in texts]
    return "\n".join(lines)
