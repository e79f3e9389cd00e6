"""Notebook widgets: ``RunTable`` (a live table of runs) and ``LivePlot`` (a training-loop chart).

``lt.widgets`` imports nothing heavy: ipywidgets loads when a widget class is
first used, matplotlib when a chart is first drawn.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LivePlot", "RunTable"]

_HOMES = {"LivePlot": "labtrack.widgets.live_plot", "RunTable": "labtrack.widgets.run_table"}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'labtrack.widgets' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
