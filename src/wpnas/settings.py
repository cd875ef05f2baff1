"""Kedro project settings (Kedro glue: not part of the plain library)."""

from wpnas.pipelines.distributed_hooks import DistributedHooks, DistributedParamsHook
from wpnas.pipelines.hooks import TrackingHooks, ValidationHooks

# Project hooks run after kedro-mlflow's (which are registered later, and pluggy is LIFO):
# the MLflow run is already open when TrackingHooks logs parameters and tags.
# DistributedHooks: rank-0-only artifacts and MLflow when torchrun starts the whole run.
HOOKS = (ValidationHooks(), TrackingHooks(), DistributedHooks(), DistributedParamsHook())

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {
        "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
    },
    # Environments override single settings (deep merge), not whole sections.
    "merge_strategy": {"parameters": "soft"},
}
