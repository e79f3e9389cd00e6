"""A static copy of each widget's output, kept in the notebook for when the live widget is gone.

After a kernel or Jupyter restart a widget output's model no longer exists, and
ipywidgets' renderer (jupyterlab_widgets 3) shows "Error displaying widget:
model not found" without falling back to another type of the same output
bundle.  So a labtrack widget displays two outputs: the live widget (class
``lt-live``), and right after it a ``text/html`` copy of what it shows (the
table as HTML, charts as inline PNG images) inside ``<div class="lt-fallback">``.
The copy is updated through its display id as the widget changes (at most every
``FALLBACK_INTERVAL`` seconds, and once more after the last change), so the
saved notebook holds the latest picture.

labtrack's lab extension (labextension/style/index.css) hides the copy while the
live widget is on the page, and hides the live output instead when it holds no
widget (the "model not found" error), so exactly one of the two shows.  Both
survive JupyterLab's sanitizer of untrusted outputs (classes and ``data:`` image
sources are kept), and a viewer without the extension (nbviewer, GitHub) shows
the copy alone.
"""

from __future__ import annotations

import threading
import time
from typing import Any

FALLBACK_INTERVAL = 2.0  # seconds between two updates of the saved copy, at most
LIVE_CLASS = "lt-live"
FALLBACK_CLASS = "lt-fallback"


def png_img(data: bytes, alt: str = "chart") -> str:
    """An ``<img>`` with the PNG inline (a ``data:`` URI), for the static copy."""
    import base64
    import html

    if not data:
        return ""
    encoded = base64.b64encode(bytes(data)).decode("ascii")
    return (f"<img src=\"data:image/png;base64,{encoded}\" alt=\"{html.escape(alt, quote=True)}\""
            " style=\"max-width:100%\">")


class StaticFallback:
    """Mixin for an ipywidgets widget: display = the widget plus its static copy.

    Subclasses implement ``fallback_html`` (escaped HTML of what the widget shows)
    and call ``update_fallback()`` when that changes.
    """

    def fallback_html(self) -> str:
        raise NotImplementedError

    def _ipython_display_(self) -> None:
        """``display(widget)`` and a cell's last expression: the live widget, then its copy."""
        from IPython.display import display

        self.add_class(LIVE_CLASS)  # type: ignore[attr-defined]
        bundle = self._repr_mimebundle_()  # type: ignore[attr-defined]  # ipywidgets' own output
        if bundle is None:  # a closed widget
            return
        display(bundle, raw=True)
        state = self._fallback_state()
        handle = display({"text/html": self._fallback_bundle_html()}, raw=True, display_id=True)
        with state["lock"]:
            state["handles"].append(handle)
            state["last"] = time.monotonic()

    def _fallback_bundle_html(self) -> str:
        return f"<div class=\"{FALLBACK_CLASS}\">{self.fallback_html()}</div>"

    def _fallback_state(self) -> dict[str, Any]:
        state = self.__dict__.get("_lt_fallback")
        if state is None:
            state = {"lock": threading.Lock(), "handles": [], "last": 0.0, "timer": None}
            self.__dict__["_lt_fallback"] = state
        return state

    def update_fallback(self, force: bool = False) -> None:
        """Refresh the saved copy now if the last refresh is old enough (or ``force``), else soon."""
        state = self._fallback_state()
        with state["lock"]:
            if not state["handles"]:
                return  # never displayed: nothing to keep in a notebook
            wait = state["last"] + FALLBACK_INTERVAL - time.monotonic()
            if wait > 0 and not force:
                if state["timer"] is None:
                    timer = threading.Timer(wait, self._send_fallback)
                    timer.daemon = True
                    state["timer"] = timer
                    timer.start()
                return
            if state["timer"] is not None:
                state["timer"].cancel()
                state["timer"] = None
        self._send_fallback()

    def close(self) -> None:
        """Close the widget; a pending update of the copy is dropped (the copy stays as it is)."""
        state = self.__dict__.get("_lt_fallback")
        if state is not None:
            with state["lock"]:
                if state["timer"] is not None:
                    state["timer"].cancel()
                state["timer"], state["handles"] = None, []
        super().close()  # type: ignore[misc]

    def _send_fallback(self) -> None:
        state = self._fallback_state()
        with state["lock"]:
            state["timer"] = None
            state["last"] = time.monotonic()
            handles = list(state["handles"])
        if not handles:
            return
        data = {"text/html": self._fallback_bundle_html()}
        for handle in handles:
            handle.update(data, raw=True)
