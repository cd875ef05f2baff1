"""One small door to MLflow: logs to the active run, does nothing outside one.

Library code calls these freely; in tests and notebooks without an MLflow run they are
no-ops, so the same code runs everywhere.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _active():
    try:
        import mlflow
    except ImportError:  # pragma: no cover - mlflow is a dependency
        return None
    return mlflow if mlflow.active_run() is not None else None


def is_tracking() -> bool:
    return _active() is not None


def active_run_id() -> str | None:
    """The id of the active MLflow run (None outside a run)."""
    mlflow = _active()
    return None if mlflow is None else mlflow.active_run().info.run_id


def log_metrics(metrics: Mapping[str, float], step: int | None = None, prefix: str = "") -> None:
    """Log finite scalar metrics (NaN/inf are skipped: MLflow rejects some of them)."""
    mlflow = _active()
    if mlflow is None:
        return
    clean = {}
    for key, value in metrics.items():
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(value):
            clean[f"{prefix}{key}"] = value
    if clean:
        mlflow.log_metrics(clean, step=step)


def log_history(history: list[Mapping[str, Any]], prefix: str = "") -> None:
    """Log per-epoch rows (each with its ``epoch``, the step) as :func:`log_metrics` would have, epoch by epoch.

    For work that ran where no MLflow run is active (workers started by the elastic
    launcher): the process that holds the run logs their history afterwards.
    """
    for row in history:
        log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]), prefix=prefix)


def log_params(params: Mapping[str, Any], prefix: str = "") -> None:
    mlflow = _active()
    if mlflow is None:
        return
    flat = flatten(params, prefix=prefix)
    client = mlflow.tracking.MlflowClient()
    run = mlflow.active_run()
    existing = client.get_run(run.info.run_id).data.params
    fresh = {k: str(v)[:6000] for k, v in flat.items() if k not in existing}
    if fresh:
        mlflow.log_params(fresh)


def set_tags(tags: Mapping[str, Any]) -> None:
    mlflow = _active()
    if mlflow is not None:
        mlflow.set_tags({k: str(v) for k, v in tags.items() if v is not None})


#: Tags that link a run resumed from an in-progress checkpoint and the run that wrote it.
TAG_RESUMED_FROM = "wpnas.resumed_from"
TAG_RESUMED_BY = "wpnas.resumed_by"


def link_resumed_run(previous_run_id: str | None, what: str) -> None:
    """Link the active run to the run it resumes (``previous_run_id``, which wrote the
    checkpoint ``what`` continues): tags both ways, and the run name says it resumes."""
    mlflow = _active()
    if mlflow is None or not previous_run_id:
        return
    run = mlflow.active_run()
    if previous_run_id == run.info.run_id:
        return
    client = mlflow.tracking.MlflowClient()
    name = client.get_run(run.info.run_id).data.tags.get("mlflow.runName", "")
    marker = f" (resumes {previous_run_id[:8]})"
    tags = {TAG_RESUMED_FROM: previous_run_id, f"{TAG_RESUMED_FROM}.{what}": previous_run_id}
    if name and marker not in name:
        tags["mlflow.runName"] = name + marker
    mlflow.set_tags(tags)
    try:
        client.set_tag(previous_run_id, TAG_RESUMED_BY, run.info.run_id)
    except Exception:  # noqa: BLE001 - the earlier run may live in another store; the forward link is kept
        pass


def set_experiment_tags(tags: Mapping[str, Any], overwrite: bool = False) -> None:
    """Tags on the active run's experiment; existing tags are kept unless ``overwrite``."""
    mlflow = _active()
    if mlflow is None:
        return
    client = mlflow.tracking.MlflowClient()
    experiment_id = mlflow.active_run().info.experiment_id
    existing = client.get_experiment(experiment_id).tags
    for key, value in tags.items():
        if value is not None and (overwrite or key not in existing):
            client.set_experiment_tag(experiment_id, key, str(value))


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    mlflow = _active()
    if mlflow is not None and Path(path).exists():
        mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_dict(data: Any, artifact_file: str) -> None:
    mlflow = _active()
    if mlflow is not None:
        mlflow.log_dict(data, artifact_file)


def log_figure(figure: Any, artifact_file: str) -> None:
    mlflow = _active()
    if mlflow is not None:
        mlflow.log_figure(figure, artifact_file)


def log_model(module: Any, input_shape: Any, name: str = "model", metadata: Mapping[str, Any] | None = None) -> str | None:
    """Log a (traced) torch module as the run's MLflow model (MLflow's Models view lists it;
    ``mlflow.pytorch.load_model(uri)`` loads it back), with a signature for inputs of
    ``input_shape`` (any batch size). Returns the model URI, None outside a run."""
    mlflow = _active()
    if mlflow is None or module is None:
        return None
    import logging

    import mlflow.pytorch
    import numpy as np
    import torch
    from mlflow.models import infer_signature

    example = np.zeros((1, *[int(s) for s in input_shape]), dtype=np.float32)
    with torch.no_grad():
        output = module(torch.from_numpy(example)).detach().cpu().numpy()
    flavor_logger = logging.getLogger("mlflow.pytorch")
    level = flavor_logger.level
    # "pickle" is what MLflow calls torch.jit.save for a traced module; its warning about pickle does not apply
    flavor_logger.setLevel(logging.ERROR)
    try:
        info = mlflow.pytorch.log_model(
            module, name=name, signature=infer_signature(example, output), serialization_format="pickle",
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
            metadata={k: v for k, v in (metadata or {}).items() if v is not None},
        )
    finally:
        flavor_logger.setLevel(level)
    return info.model_uri


def flatten(params: Mapping[str, Any], prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Flatten nested dicts to ``a.b.c`` keys (the form the MLflow UI searches)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{sep}{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, prefix=name, sep=sep))
        else:
            out[name] = value
    return out


@contextlib.contextmanager
def nested_run(name: str, params: Mapping[str, Any] | None = None,
               tags: Mapping[str, Any] | None = None) -> Iterator[None]:
    """A child MLflow run of the active run for the duration of the block (nothing outside a run).

    Metrics logged inside go to the child; it ends FAILED when the block raises.
    """
    mlflow = _active()
    if mlflow is None:
        yield
        return
    parent = mlflow.active_run()
    with mlflow.start_run(run_name=name, nested=True, tags={"mlflow.parentRunId": parent.info.run_id}):
        if params:
            log_params(params)
        if tags:
            set_tags(tags)
        yield
