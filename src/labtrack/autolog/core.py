"""The shared patching core of ``lt.autolog``: settings, import hooks, safe patches, managed runs.

Each integration (one module per library) registers which module defines the
classes it patches and a ``patch()`` function.  ``enable(flavor, ...)`` stores
MLflow's settings (``disable``, ``exclusive``, ``silent``, ``log_models``...)
and patches at once when the library is already imported, otherwise as soon
as it is: labtrack never imports a training library itself.

A patched method never breaks training: the user's own call always runs and
its result or exception is returned untouched; a failure in labtrack's
logging is reported once per library as a one-line warning and that call is
left unlogged.  Patched calls nest (a Pipeline fits its steps, XGBClassifier
calls ``xgboost.train``): only the outermost one logs.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("labtrack.autolog")
AUTOLOGGING_TAG = "mlflow.autologging"


@dataclass
class Integration:
    flavor: str  # MLflow's flavor name: "sklearn", "pytorch", "xgboost"...
    module: str  # the module whose import triggers the patch
    patch: Callable[[], None]
    patched: bool = False
    originals: list[tuple[Any, str, Any]] = field(default_factory=list)


_integrations: dict[str, Integration] = {}
_configs: dict[str, dict[str, Any]] = {}
_warned: set[str] = set()
_local = threading.local()
_lock = threading.RLock()

COMMON_DEFAULTS: dict[str, Any] = {
    "log_models": True, "log_datasets": True, "log_input_examples": False,
    "log_model_signatures": True, "disable": False, "exclusive": False, "silent": False,
    "extra_tags": None, "registered_model_name": None,
}


def register(flavor: str, module: str, patch: Callable[[], None]) -> None:
    """Declare an integration; nothing is imported or patched yet."""
    _integrations.setdefault(flavor, Integration(flavor, module, patch))


def config(flavor: str) -> dict[str, Any] | None:
    """The flavor's settings, or None while its autolog is off."""
    conf = _configs.get(flavor)
    return None if conf is None or conf.get("disable") else conf


def enable(flavor: str, **settings: Any) -> None:
    """Turn a flavor's autolog on (or off with ``disable=True``) with MLflow's settings."""
    integration = _integrations[flavor]
    conf = dict(COMMON_DEFAULTS)
    conf.update(settings)
    with _lock:
        _configs[flavor] = conf
        if conf["disable"]:
            return
        if integration.module in sys.modules:
            _apply(integration)
        else:
            _watcher().wait_for(integration.module, lambda: _apply(integration))


def _apply(integration: Integration) -> None:
    with _lock:
        if integration.patched:
            return
        try:
            integration.patch()
            integration.patched = True
        except Exception as err:  # an unsupported library version: no autolog, training unharmed
            warn_once(integration.flavor, f"could not patch {integration.module}: {err}")


def warn_once(flavor: str, message: str) -> None:
    """One line on stderr per library and process, unless the flavor is ``silent``."""
    conf = _configs.get(flavor) or {}
    if conf.get("silent") or flavor in _warned:
        return
    _warned.add(flavor)
    logger.warning("labtrack: autolog for %s: %s (training goes on, unlogged)", flavor, message)


# -- import hooks ----------------------------------------------------------------------
class _Watcher(importlib.abc.MetaPathFinder):
    """Runs callbacks right after a watched module finishes importing."""

    def __init__(self) -> None:
        self.waiting: dict[str, list[Callable[[], None]]] = {}
        self.prefixes: dict[str, Callable[[Any], None]] = {}
        self._busy: set[str] = set()

    def wait_for(self, module: str, callback: Callable[[], None]) -> None:
        self.waiting.setdefault(module, []).append(callback)

    def every_module(self, prefix: str, callback: Callable[[Any], None]) -> None:
        """Call ``callback(module)`` after each later import of a module named ``prefix...``."""
        self.prefixes[prefix] = callback

    def _watched(self, fullname: str) -> bool:
        return fullname in self.waiting or any(fullname.startswith(p) for p in self.prefixes)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname in self._busy or not self._watched(fullname):
            return None
        self._busy.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)  # the other finders answer
        finally:
            self._busy.discard(fullname)
        loader = getattr(spec, "loader", None)
        if spec is None or loader is None or isinstance(loader, type):
            return spec
        original = loader.exec_module

        def exec_module(module: Any) -> None:
            original(module)
            for callback in self.waiting.pop(fullname, []):
                callback()
            for prefix, each in list(self.prefixes.items()):
                if fullname.startswith(prefix):
                    try:
                        each(module)
                    except Exception:  # never fail the user's import
                        pass

        loader.exec_module = exec_module  # this spec's own loader object only
        return spec


_watcher_instance: _Watcher | None = None


def on_each_import(prefix: str, callback: Callable[[Any], None]) -> None:
    """Run ``callback(module)`` for every module named ``prefix...`` imported from now on."""
    _watcher().every_module(prefix, callback)


def _watcher() -> _Watcher:
    global _watcher_instance
    if _watcher_instance is None:
        _watcher_instance = _Watcher()
        sys.meta_path.insert(0, _watcher_instance)
    return _watcher_instance


# -- patches ---------------------------------------------------------------------------
def in_patched_call() -> bool:
    """True inside the training call of some patched method (which is the one that logs)."""
    return getattr(_local, "depth", 0) > 0


def patch_method(flavor: str, owner: Any, name: str,
                 logic: Callable[..., Any]) -> None:
    """Replace ``owner.name`` by a wrapper that calls ``logic(original, self, *args, **kw)``
    while the flavor's autolog is on and no patched call encloses this one."""
    original = owner.__dict__.get(name)
    if original is None or getattr(original, "__labtrack_original__", None) is not None:
        return
    is_static = isinstance(original, staticmethod)
    function = original.__func__ if is_static else original

    @functools.wraps(function)
    def patched(*args: Any, **kwargs: Any) -> Any:
        if config(flavor) is None or in_patched_call():
            return function(*args, **kwargs)
        return logic(function, *args, **kwargs)

    patched.__labtrack_original__ = function  # type: ignore[attr-defined]
    setattr(owner, name, staticmethod(patched) if is_static else patched)
    _integrations[flavor].originals.append((owner, name, original))


class Session:
    """One logged training call: the run it logs into (started here if none is active)."""

    def __init__(self, flavor: str) -> None:
        self.flavor = flavor
        self.conf = config(flavor) or dict(COMMON_DEFAULTS)
        self.managed = False
        self.run_id: str | None = None

    def open(self) -> bool:
        """Find or start the run; False when this call must not be logged (``exclusive``)."""
        from labtrack.client import fluent

        active = fluent.active_run()
        if active is not None:
            if self.conf.get("exclusive"):
                return False
            self.run_id = active.info.run_id
            return True
        tags = {AUTOLOGGING_TAG: self.flavor.split(":")[0]}  # "pytorch:pl" logs as "pytorch"
        tags.update(self.conf.get("extra_tags") or {})
        self.run_id = fluent.start_run(tags=tags).info.run_id
        self.managed = True
        return True

    def close(self, failed: bool = False) -> None:
        if self.managed:
            from labtrack.client import fluent

            active = fluent.active_run()
            if active is not None and active.info.run_id == self.run_id:
                fluent.end_run("FAILED" if failed else "FINISHED")


def logged_call(flavor: str, original: Callable[..., Any], args: tuple, kwargs: dict[str, Any],
                before: Callable[[Session], Any], after: Callable[[Session, Any, Any], None]) -> Any:
    """The frame every integration uses: ``before`` logs what is known up front, the user's
    call runs, ``after`` logs the results.  Failures of ``before``/``after`` only warn."""
    session = Session(flavor)
    state: Any = None
    logging_on = True
    _local.depth = getattr(_local, "depth", 0) + 1  # what the logging fits is not logged
    try:
        logging_on = session.open()
        if logging_on:
            state = before(session)
    except Exception as err:
        warn_once(flavor, f"{type(err).__name__}: {err}")
        logging_on = False
    try:
        result = original(*args, **kwargs)
    except BaseException:
        _local.depth -= 1
        _safe_close(session, failed=True)
        raise
    try:
        if logging_on:
            after(session, state, result)
    except Exception as err:
        warn_once(flavor, f"{type(err).__name__}: {err}")
    finally:
        _local.depth -= 1
    _safe_close(session)
    return result


def _safe_close(session: Session, failed: bool = False) -> None:
    try:
        session.close(failed)
    except Exception as err:
        warn_once(session.flavor, f"ending the run: {err}")


def revert(flavor: str) -> None:
    """Put the library's original methods back (for tests and ``disable=True`` cleanups)."""
    integration = _integrations.get(flavor)
    if integration is None:
        return
    with _lock:
        for owner, name, original in reversed(integration.originals):
            setattr(owner, name, original)
        integration.originals.clear()
        integration.patched = False
        _configs.pop(flavor, None)
