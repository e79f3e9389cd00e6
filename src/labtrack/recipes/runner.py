"""Running a recipe: its steps in order, each cached, each tracked as a child run with a card.

A step is re-run only when its code, its section of ``recipe.yaml`` or an
earlier step changed: the cache key is the hash of the three, and a step whose
key matches the stored one loads its outputs instead of running.  A run that
executes nothing creates no runs.  The evaluate step's metrics are checked
against ``evaluate.thresholds``; the register step sees the verdict.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from labtrack.recipes.card import Card
from labtrack.recipes.recipe import STEPS, Recipe, RecipeError

CACHE = ".labtrack-recipe"
TAG_STEP = "labtrack.recipe.step"
TAG_RECIPE = "labtrack.recipe"


@dataclass
class StepContext:
    """What a step's ``run(ctx)`` gets: settings, earlier steps' outputs, its card and run."""

    step: str
    recipe: Recipe
    inputs: dict[str, Any]
    card: Card
    run_id: str | None = None

    @property
    def config(self) -> dict[str, Any]:
        """The whole recipe.yaml (profile applied)."""
        return self.recipe.config

    @property
    def settings(self) -> dict[str, Any]:
        """This step's own section of recipe.yaml."""
        return dict(self.recipe.config.get(self.step) or {})


@dataclass
class StepResult:
    step: str
    cached: bool
    run_id: str | None = None
    outputs: dict[str, Any] = field(default_factory=dict)


def check_thresholds(metrics: dict[str, float], thresholds: dict[str, Any]) -> list[str]:
    """The thresholds ``metrics`` miss, as readable lines (empty: all pass)."""
    failures = []
    for name, rule in (thresholds or {}).items():
        value = metrics.get(name)
        rule = rule if isinstance(rule, dict) else {"min": rule}
        if value is None:
            failures.append(f"{name}: not computed")
            continue
        if "min" in rule and value < float(rule["min"]):
            failures.append(f"{name} = {value:.6g} < {rule['min']}")
        if "max" in rule and value > float(rule["max"]):
            failures.append(f"{name} = {value:.6g} > {rule['max']}")
    return failures


def run(recipe: Recipe, until: str | None = None, only: bool = False, parent_run_id: str | None = None,
        echo: Callable[[str], None] = print) -> list[StepResult]:
    """Run the recipe's steps up to ``until`` (every step by default); ``only`` runs just that one."""
    import labtrack as lt

    if until is not None and until not in STEPS:
        raise RecipeError(f"unknown step {until!r} (steps: {', '.join(STEPS)})")
    last = STEPS.index(until) if until else len(STEPS) - 1
    inputs: dict[str, Any] = {}
    upstream = ""
    results: list[StepResult] = []
    parent = parent_run_id
    started_parent = False
    try:
        for step in STEPS[:last + 1]:
            key = _key(recipe, step, upstream)
            upstream = key
            cached = _load(recipe, step, key)
            if cached is not None and not (only and step == until):
                inputs.update(cached)
                results.append(StepResult(step, True, outputs=cached))
                echo(f"{step}: cached")
                continue
            if only and step != until:
                raise RecipeError(f"step {step!r} has no cached outputs; run it before {until!r}")
            if not started_parent and lt.active_run() is None:
                lt.set_experiment(recipe.experiment)
            if parent is None:
                active = lt.start_run(run_name=f"recipe {recipe.folder.name}",
                                      tags={TAG_RECIPE: recipe.kind,
                                            "labtrack.recipe.profile": recipe.profile or ""})
                parent, started_parent = active.info.run_id, True
            result = _run_step(recipe, step, dict(inputs), parent, key)
            inputs.update(result.outputs)
            results.append(result)
            echo(f"{step}: ran (run {result.run_id})")
    except BaseException:
        if started_parent:
            lt.end_run("FAILED")
        raise
    if started_parent:
        lt.end_run("FINISHED")
    return results


def _run_step(recipe: Recipe, step: str, inputs: dict[str, Any], parent: str, key: str) -> StepResult:
    import labtrack as lt

    module = _import(recipe.step_file(step), step)
    card = Card(f"{recipe.folder.name}: {step}")
    with lt.start_run(run_name=step, nested=lt.active_run() is not None, parent_run_id=parent
                      if lt.active_run() is None else None,
                      tags={TAG_STEP: step, TAG_RECIPE: recipe.kind}) as child:
        ctx = StepContext(step, recipe, inputs, card, child.info.run_id)
        settings = ctx.settings
        if settings:
            lt.log_params({f"{step}.{k}": json.dumps(v) if isinstance(v, (dict, list)) else v
                           for k, v in _flat(settings).items()})
        outputs = dict(module.run(ctx) or {})
        metrics = {k: float(v) for k, v in (outputs.get("metrics") or {}).items()}
        if metrics:
            lt.log_metrics(metrics)
            card.add_table("Metrics", [{"metric": k, "value": v} for k, v in sorted(metrics.items())])
        if step == "evaluate":
            failures = check_thresholds(metrics, settings.get("thresholds") or {})
            outputs.update(passed=not failures, failures=failures)
            lt.set_tag("labtrack.recipe.thresholds", "passed" if not failures else "; ".join(failures))
            card.add_text("Thresholds", "all passed" if not failures else "; ".join(failures))
        lt.log_text(card.html(), "card.html")
        run_id = child.info.run_id
    _store(recipe, step, key, outputs)
    return StepResult(step, False, run_id, outputs)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _import(path: Path, step: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"labtrack_recipe_step_{step}", path)
    if spec is None or spec.loader is None:
        raise RecipeError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent.parent))
    if not callable(getattr(module, "run", None)):
        raise RecipeError(f"{path} defines no run(ctx) function")
    return module


def _key(recipe: Recipe, step: str, upstream: str) -> str:
    h = hashlib.sha256()
    h.update(recipe.step_file(step).read_bytes())
    shared = {k: recipe.config.get(k) for k in ("recipe", "target_col")}
    h.update(json.dumps([shared, recipe.config.get(step)], sort_keys=True, default=str).encode())
    h.update(upstream.encode())
    return h.hexdigest()


def _cache(recipe: Recipe, step: str, key: str) -> Path:
    # Keyed by content, not by profile: profiles share the steps they do not change.
    return recipe.folder / CACHE / "cache" / step / key[:24]


def _load(recipe: Recipe, step: str, key: str) -> dict[str, Any] | None:
    try:
        with open(_cache(recipe, step, key) / "outputs.pkl", "rb") as f:
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        return None


def _store(recipe: Recipe, step: str, key: str, outputs: dict[str, Any]) -> None:
    folder = _cache(recipe, step, key)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"outputs.pkl.{os.getpid()}"
    with open(tmp, "wb") as f:
        pickle.dump(outputs, f)
    os.replace(tmp, folder / "outputs.pkl")  # whole or absent: a killed step leaves no cache
