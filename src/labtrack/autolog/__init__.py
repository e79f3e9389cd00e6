"""``lt.autolog()``: log what training libraries do, with MLflow's names and settings.

One module per library (``sklearn``, ``lightning``, ``xgboost``, ``lightgbm``,
``transformers``) over a small shared core (``core``).  Each library is
patched only once it is imported; ``lt.autolog()`` turns every integration on.
"""

from __future__ import annotations

import importlib
from typing import Any

# flavor name -> the module of its integration
INTEGRATIONS = {
    "sklearn": "labtrack.autolog.sklearn",
    "pytorch": "labtrack.autolog.lightning",
    "xgboost": "labtrack.autolog.xgboost",
    "lightgbm": "labtrack.autolog.lightgbm",
    "transformers": "labtrack.autolog.transformers",
}


def autolog(log_input_examples: bool = False, log_model_signatures: bool = True,
            log_models: bool = True, log_datasets: bool = True, disable: bool = False,
            exclusive: bool = False, disable_for_unsupported_versions: bool = False,
            silent: bool = False, extra_tags: dict[str, str] | None = None,
            exclude_flavors: list[str] | None = None) -> None:
    """Turn on (or, with ``disable=True``, off) autolog for every supported library."""
    settings: dict[str, Any] = dict(log_input_examples=log_input_examples,
                                    log_model_signatures=log_model_signatures,
                                    log_models=log_models, log_datasets=log_datasets,
                                    disable=disable, exclusive=exclusive, silent=silent,
                                    extra_tags=extra_tags)
    for flavor, module_name in INTEGRATIONS.items():
        if flavor in (exclude_flavors or []):
            continue
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        accepted = module.autolog.__code__.co_varnames
        module.autolog(**{k: v for k, v in settings.items() if k in accepted})
