"""The wheel's build step for the web UI and the lab extension (hatch-jupyter-builder's build-function).

From a git checkout it runs ``npm run build`` (Node.js and npm needed), so the
bundles are always fresh.  An sdist ships both bundles already built: building
a wheel from it, or installing it, needs no Node at all.  Without npm and
without the bundles the build stops with one line that says what to install.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

BUNDLES = ("src/labtrack/static/ui/index.html", "src/labtrack/static/ui/app.js",
           "labextension/labtrack_labextension/package.json")


def build(target_name: str, version: str, **kwargs: Any) -> None:
    from hatch_jupyter_builder import npm_builder

    root = Path.cwd()
    prebuilt = all((root / p).exists() for p in BUNDLES)
    if shutil.which("npm") is None or shutil.which("node") is None:
        if prebuilt:
            print("labtrack: npm not found; using the web UI and lab extension built into this source",
                  file=sys.stderr)
            return
        raise SystemExit("labtrack: building from a git checkout needs Node.js and npm (e.g. apt-get install "
                         "nodejs npm); or install the wheel or sdist, which carry the built UI")
    npm_builder(target_name, version, **kwargs)
