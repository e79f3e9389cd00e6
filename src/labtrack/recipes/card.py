"""A step's card: one self-contained HTML page (tables, text, PNG plots), every value escaped."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

_STYLE = ("body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
          "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
          "text-align:right}th{background:#f4f4f4}h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.4em}")


class Card:
    """Sections added by a step, rendered by ``html()``."""

    def __init__(self, title: str) -> None:
        self.title = title
        self._parts: list[str] = []

    def add_text(self, heading: str, text: str) -> None:
        self._parts.append(f"<h2>{html.escape(heading)}</h2><p>{html.escape(str(text))}</p>")

    def add_table(self, heading: str, rows: list[dict[str, Any]] | Any, max_rows: int = 50) -> None:
        """A list of dicts, or a pandas DataFrame (its first ``max_rows`` rows)."""
        if hasattr(rows, "to_dict"):
            frame = rows.head(max_rows)
            rows = [{"": str(i), **{str(c): v for c, v in r.items()}}
                    for i, r in zip(frame.index, frame.to_dict("records"))]
        rows = list(rows)[:max_rows]
        cols = list(dict.fromkeys(k for r in rows for k in r))
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c, '')))}</td>" for c in cols) + "</tr>"
                       for r in rows)
        self._parts.append(f"<h2>{html.escape(heading)}</h2><table><tr>{head}</tr>{body}</table>")

    def add_figure(self, heading: str, figure: Any) -> None:
        """A matplotlib figure, embedded as a PNG."""
        buf = io.BytesIO()
        figure.savefig(buf, format="png", dpi=80, bbox_inches="tight")
        data = base64.b64encode(buf.getvalue()).decode()
        self._parts.append(f"<h2>{html.escape(heading)}</h2><img alt='{html.escape(heading)}' "
                           f"src='data:image/png;base64,{data}'>")

    def html(self) -> str:
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                f"<style>{_STYLE}</style></head><body><h1>{html.escape(self.title)}</h1>"
                + "".join(self._parts) + "</body></html>")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
