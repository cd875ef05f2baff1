"""Kedro project settings (Kedro glue: not part of the plain library)."""

import os

from wpnas.pipelines.logs import quiet_known_warnings

# Kedro's telemetry is off by the project's .telemetry file; MLflow's own (MLflow 3) has no
# project file, so it is switched off here, before MLflow is imported (a user's setting wins).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

quiet_known_warnings()  # before the hooks import kedro-mlflow (and MLflow)

from wpnas.pipelines.distributed_hooks import DistributedHooks, DistributedParamsHook  # noqa: E402
from wpnas.pipelines.hooks import SummaryHooks, TrackingHooks, ValidationHooks  # noqa: E402
from wpnas.pipelines.run_guard import RunLockHooks, RunStatusHooks  # noqa: E402
from wpnas.pipelines.stage_files import StageFileHooks  # noqa: E402

# Project hooks run after kedro-mlflow's (which are registered later, and pluggy is LIFO):
# the MLflow run is already open when TrackingHooks logs parameters and tags.
# Among the tryfirst hooks, ValidationHooks (registered after RunLockHooks) runs first:
# bad parameters fail before the run takes the folder's lock.
# DistributedHooks: rank-0-only artifacts and MLflow when torchrun starts the whole run
# (only rank 0 takes the folder's lock).
# StageFileHooks: a stage's in-progress checkpoint is removed only once its node's outputs are saved.
HOOKS = (RunLockHooks(), RunStatusHooks(), ValidationHooks(), TrackingHooks(), DistributedHooks(),
         DistributedParamsHook(), SummaryHooks(), StageFileHooks())

CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {
        "parameters": ["parameters*", "parameters*/**", "**/parameters*"],
    },
    # Environments override single settings (deep merge), not whole sections.
    "merge_strategy": {"parameters": "soft"},
}
