"""Prompts in the registry: MLflow stores a prompt as a registered model with tags.

A prompt is a registered model tagged ``mlflow.prompt.is_prompt = true``; each
prompt version is a model version with the same tag and its template in
``mlflow.prompt.text``.  MLflow's server shows prompts only to a search that
asks for them (``tags.`mlflow.prompt.is_prompt` = 'true'``): every other model
or model-version search leaves them out, so prompts never show among models.
"""

from __future__ import annotations

from labtrack.store.model_sources import PROMPT_TAG
from labtrack.store.search_syntax import parse_filter

_HIDE_PROMPTS = f"tags.`{PROMPT_TAG}` != 'true'"


def querying_prompts(filter_string: str | None) -> bool:
    """Whether a registry filter asks for prompts (MLflow's ``_is_querying_prompt`` rule):
    its first clause on the prompt tag is ``= 'true'`` or ``!= 'false'``."""
    for clause in parse_filter(filter_string):
        if clause.entity != "tag" or clause.key != PROMPT_TAG:
            continue
        value = str(clause.value).lower()
        return (clause.op == "=" and value == "true") or (clause.op == "!=" and value == "false")
    return False


def registry_filter(filter_string: str | None) -> str | None:
    """The filter a model or model-version search runs: the caller's, minus prompts
    unless it asks for them."""
    if querying_prompts(filter_string):
        return filter_string
    if filter_string and filter_string.strip():
        return f"{filter_string} AND {_HIDE_PROMPTS}"
    return _HIDE_PROMPTS
