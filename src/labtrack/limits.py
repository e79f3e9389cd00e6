"""Every input limit, with where MLflow 3.17 sets it and what happens over it (one table).

labtrack takes MLflow 3.17.2's limits as they are, so that whatever MLflow's
server accepts, labtrack's accepts, and the same way.  The source column names
the constant in ``mlflow`` (``python -c "import mlflow,os;print(os.path.dirname(
mlflow.__file__))"`` finds the files).  ``over`` says what the server does with a
value over the limit:

- ``refuse``: INVALID_PARAMETER_VALUE naming the field;
- ``truncate``: stored cut to the limit, as MLflow's SQL store does while
  ``MLFLOW_TRUNCATE_LONG_VALUES`` is on (its default): a 7,000-character param
  value is accepted and its first 6,000 characters are kept.

A leaf module (no imports): the store validates with it, the client may consult it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    name: str
    value: int
    source: str  # where MLflow 3.17.2 sets it; "labtrack" for labtrack's own endpoints
    over: str = "refuse"  # "refuse" or "truncate"


_V = "mlflow/utils/validation.py"
_TS = "mlflow/store/tracking/__init__.py"
_MR = "mlflow/store/model_registry/__init__.py"

TABLE: tuple[Limit, ...] = (
    Limit("param_value", 6000, f"{_V} MAX_PARAM_VAL_LENGTH (_validate_param, truncate=True)", "truncate"),
    Limit("run_tag_value", 8000, f"{_V} MAX_TAG_VAL_LENGTH (_validate_tag, truncate=True)", "truncate"),
    Limit("key", 250, f"{_V} MAX_ENTITY_KEY_LENGTH"),
    Limit("experiment_name", 500, f"{_V} MAX_EXPERIMENT_NAME_LENGTH"),
    Limit("experiment_tag_key", 250, f"{_V} MAX_EXPERIMENT_TAG_KEY_LENGTH"),
    Limit("experiment_tag_value", 20000, f"{_V} MAX_EXPERIMENT_TAG_VAL_LENGTH"),
    Limit("registry_tag_key", 250, f"{_V} MAX_MODEL_REGISTRY_TAG_KEY_LENGTH"),
    Limit("registry_tag_value", 100_000, f"{_V} MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH"),
    Limit("alias", 255, f"{_V} MAX_REGISTERED_MODEL_ALIAS_LENGTH"),
    Limit("dataset_name", 500, f"{_V} MAX_DATASET_NAME_SIZE"),
    Limit("dataset_digest", 36, f"{_V} MAX_DATASET_DIGEST_SIZE"),
    Limit("dataset_source", 65535, f"{_V} MAX_DATASET_SOURCE_SIZE"),
    Limit("dataset_schema", 1048575, f"{_V} MAX_DATASET_SCHEMA_SIZE"),
    Limit("dataset_profile", 16777215, f"{_V} MAX_DATASET_PROFILE_SIZE"),
    Limit("input_tag_key", 255, f"{_V} MAX_INPUT_TAG_KEY_SIZE"),
    Limit("input_tag_value", 500, f"{_V} MAX_INPUT_TAG_VALUE_SIZE"),
    Limit("batch_metrics", 1000, f"{_V} MAX_METRICS_PER_BATCH"),
    Limit("batch_params", 100, f"{_V} MAX_PARAMS_TAGS_PER_BATCH"),
    Limit("batch_tags", 100, f"{_V} MAX_PARAMS_TAGS_PER_BATCH"),
    Limit("batch_total", 1000, f"{_V} MAX_ENTITIES_PER_BATCH"),
    Limit("log_inputs_datasets", 1000, f"{_V} MAX_DATASETS_PER_BATCH"),
    Limit("runs_max_results", 50000, f"{_TS} SEARCH_MAX_RESULTS_THRESHOLD"),
    Limit("experiments_max_results", 50000, f"{_V} MAX_EXPERIMENTS_LISTED_PER_PAGE"),
    Limit("registered_models_max_results", 1000, f"{_MR} SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD"),
    Limit("model_versions_max_results", 200_000, f"{_MR} SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD"),
    Limit("logged_model_params", 100, "mlflow/store/tracking/rest_store.py (params sent in batches of 100)"),
    Limit("series_points", 100_000, "labtrack: runs/log-series, points in one request"),
    Limit("view_name", 255, "labtrack: views/create and views/update, a saved view's name"),
    Limit("view_query", 20_000, "labtrack: a saved view's runs-page state (the URL hash query), characters"),
    Limit("view_panels", 50, "labtrack: chart panels in one saved view's dashboard"),
    Limit("view_panel_metrics", 20, "labtrack: metrics in one dashboard chart panel"),
    Limit("views_per_experiment", 1000, "labtrack: saved views in one experiment"),
)

LIMITS: dict[str, int] = {limit.name: limit.value for limit in TABLE}
TRUNCATED: frozenset[str] = frozenset(limit.name for limit in TABLE if limit.over == "truncate")
