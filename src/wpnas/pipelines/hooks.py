"""Project hooks: where MLflow writes, and what every run records (params and tags)."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

import wpnas
from wpnas import tracking

logger = logging.getLogger(__name__)


def default_tracking_uri(project_path: str | Path) -> str:
    """SQLite store at the project root (mlflow 3 refuses the old ``mlruns`` file store)."""
    return f"sqlite:///{Path(project_path).resolve() / 'mlflow.db'}"


def git_info(project_path: str | Path) -> dict[str, str]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=project_path, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": "unknown"}
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": str(bool(dirty))}


class ValidationHooks:
    """Check every parameter section before the first node runs (bad input fails fast)."""

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._params = dict(context.params)

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        from wpnas.pipelines.params import validate_parameters

        validate_parameters(self._params, [n.name for n in pipeline.nodes])


class TrackingHooks:
    """Point kedro-mlflow at the project's SQLite store and log params + tags per run."""

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self._env: str | None = None
        self._project_path: Path | None = None

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        # Runs before kedro-mlflow reads its config: an unset URI falls back to the env var.
        self._project_path = Path(context.project_path)
        self._env = context.env
        self._params = dict(context.params)
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            os.environ["MLFLOW_TRACKING_URI"] = default_tracking_uri(context.project_path)

    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if not tracking.is_tracking():
            return
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
        if isinstance(names, str):
            names = [names]
        tags = {
            "pipeline": "+".join(n or "__default__" for n in names),
            "kedro_env": run_params.get("env") or self._env or "local",
            "wpnas_version": wpnas.__version__,
        }
        if self._project_path is not None:
            tags.update(git_info(self._project_path))
        try:
            import torch

            tags["torch_version"] = torch.__version__
            tags["cuda_available"] = str(torch.cuda.is_available())
        except ImportError:  # pragma: no cover
            pass
        tracking.set_tags(tags)
        tracking.log_params(self._params)
