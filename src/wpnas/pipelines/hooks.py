"""Project hooks: where MLflow writes, and what every run records (params and tags)."""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
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


#: The experiment tag MLflow 3's UI reads to choose its view, and the "Model training" kind.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"

#: MLflow refuses longer run names; the name is a label, the full values are the run's params.
MAX_RUN_NAME = 250


def run_name(pipeline: str, env: str, seed: Any, runtime_params: Mapping[str, Any] | None) -> str:
    """``search|local|seed=0|search.epochs=3``: what tells two runs apart in MLflow's run list.

    Pipeline(s), Kedro environment, seed, then every parameter given on the command line
    (``--params``), flattened to dotted keys in the order given. Cut at MAX_RUN_NAME characters
    (marked with ``...``)."""
    parts = [pipeline, env, f"seed={seed}"]
    for key, value in tracking.flatten(runtime_params or {}).items():
        if key == "run.seed":
            continue  # already in the name
        parts.append(f"{key}={value}")
    name = "|".join(parts)
    return name if len(name) <= MAX_RUN_NAME else name[: MAX_RUN_NAME - 3] + "..."


def command_line(argv: Sequence[str]) -> str:
    """The command as typed: ``kedro run --pipelines=search --params ...`` (quoted where needed).

    The program is shown by its name (``kedro``), not the virtualenv path;
    ``python -m wpnas`` is shown as such."""
    if not argv:
        return ""
    program = Path(argv[0]).name
    if program == "__main__.py":
        program = f"python -m {Path(argv[0]).parent.name}"
    return " ".join([program, *(shlex.quote(a) for a in argv[1:])])


def runner_name(runner: Any) -> str:
    """``SequentialRunner``, whether Kedro recorded a class, an instance or its repr."""
    if isinstance(runner, str):
        # Kedro records str(runner): "<kedro.runner.sequential_runner.SequentialRunner object at 0x..>"
        text = runner.strip("<>").split(" object at ")[0].rsplit(".", 1)[-1]
        return text if text and text != "None" else "SequentialRunner"
    if runner is None:
        return "SequentialRunner"  # Kedro's default
    cls = runner if isinstance(runner, type) else type(runner)
    return cls.__name__


def used_sections(params: Mapping[str, Any], pipeline: Any) -> dict[str, Any]:
    """The parameter sections the pipeline's nodes read (``params:<section>`` inputs), and
    ``run`` (seed and device, which every run names): what a run logs as its MLflow params,
    not the other stages' settings."""
    used = {name.split(":", 1)[1].split(".", 1)[0] for node in pipeline.nodes for name in node.inputs
            if name.startswith("params:")} | {"run"}
    return {key: value for key, value in params.items() if key in used}


class ValidationHooks:
    """Check every parameter section before the first node runs (bad input fails fast), then
    say in one line what runs where: device, threads, data, space (and the split sizes once
    the image splits are loaded)."""

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self._splits_shown = False

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._params = dict(context.params)
        self._splits_shown = False

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        from wpnas.pipelines.params import run_banner, validate_parameters

        validate_parameters(self._params, [n.name for n in pipeline.nodes])
        names = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
        names = [names] if isinstance(names, str) else names
        logger.info("wpnas %s: %s", wpnas.__version__,
                    run_banner(self._params, "+".join(n or "__default__" for n in names), run_params.get("env")))

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any, node: Any) -> None:
        if dataset_name == "image_splits" and not self._splits_shown:  # the data sizes, once per run
            from wpnas.data.splits import ImageSplits

            self._splits_shown = True
            logger.info("image_splits: %s", ImageSplits.coerce(data).summary())

    @hook_impl
    def after_dataset_loaded(self, dataset_name: str, data: Any, node: Any) -> None:
        """Stored image splits read by a stage must be the ones its ``data`` parameters describe."""
        if dataset_name == "image_splits":
            check_stored_splits(self._params.get("data"), data)


def check_stored_splits(data_section: Any, stored: Any) -> None:
    """Refuse ``data`` parameters that disagree with the images of the stored splits (one line,
    naming the keys); record split settings that disagree as what was actually used."""
    from wpnas.data.splits import ImageSplits
    from wpnas.data.sources import compare_stored_splits
    from wpnas.errors import DataError
    from wpnas.pipelines.params import data_config

    try:
        splits = ImageSplits.coerce(stored)
    except Exception:  # noqa: BLE001 - not splits at all: the node that reads them says so
        return
    refusals, used = compare_stored_splits(data_config(data_section), splits)
    if refusals:
        raise DataError(
            f"image_splits: the stored splits disagree with this run's parameters ({'; '.join(refusals)}): the "
            "stage would train on the stored images while MLflow records these parameters. Run the data_processing "
            "pipeline with them first, or leave them out of --params"
        )
    if used:
        logger.warning("image_splits: the stored splits were made with %s (the parameters say otherwise); "
                       "recorded as MLflow tags data_used.*", ", ".join(f"{k} = {v!r}" for k, v in used.items()))
        tracking.set_tags({f"data_used.{k.split('.', 1)[1]}": str(v) for k, v in used.items()})


class TrackingHooks:
    """Point kedro-mlflow at the project's SQLite store and log params + tags per run."""

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self._env: str | None = None
        self._project_path: Path | None = None
        self._context: Any = None

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        # Runs before kedro-mlflow reads its config: an unset URI falls back to the env var.
        self._project_path = Path(context.project_path)
        self._env = context.env
        self._context = context
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
        pipeline_name = "+".join(n or "__default__" for n in names)
        env = run_params.get("env") or self._env or "local"
        seed = (self._params.get("run") or {}).get("seed", "?")
        tags = {
            "pipeline": pipeline_name,
            "kedro_env": env,
            "wpnas_version": wpnas.__version__,
            # kedro-mlflow logs Kedro's run_params as tags; 'runner' comes as an object repr
            "runner": runner_name(run_params.get("runner")),
            "command": command_line(sys.argv),
            # the catalog's save version: this run's files are <filepath>/<version>/<file name>
            "kedro_save_version": run_params.get("run_id"),
        }
        if not self._configured_run_name():
            tags["mlflow.runName"] = run_name(pipeline_name, env, seed, run_params.get("runtime_params"))
        if self._project_path is not None:
            tags.update(git_info(self._project_path))
        try:
            import torch

            tags["torch_version"] = torch.__version__
            tags["cuda_available"] = str(torch.cuda.is_available())
        except ImportError:  # pragma: no cover
            pass
        tracking.set_tags(tags)
        tracking.log_params(used_sections(self._params, pipeline))
        # MLflow 3's UI opens an experiment of unknown kind in its GenAI view; say it trains models
        tracking.set_experiment_tags({EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})

    def _configured_run_name(self) -> str | None:
        """``tracking.run.name`` of mlflow.yml (kedro-mlflow puts its config on the context)."""
        config = getattr(self._context, "mlflow", None)
        try:
            return config.tracking.run.name
        except AttributeError:
            return None


#: A copy of the newest summary.md at a fixed path (the catalog path is a folder of versions).
LATEST_SUMMARY = Path("data") / "08_reporting" / "summary-latest.md"


class SummaryHooks:
    """When the report is saved: print where summary.md went, and copy it to LATEST_SUMMARY."""

    def __init__(self) -> None:
        self._catalog: Any = None

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        self._catalog = catalog

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        if dataset_name != "run_summary" or self._catalog is None or not isinstance(data, str):
            return
        from wpnas.io.checkpoints import atomic_write
        from wpnas.pipelines.preflight import dataset_filepath

        dataset = self._catalog.get(dataset_name)
        filepath = dataset_filepath(dataset)
        if filepath is None:
            return
        resolve = getattr(dataset, "resolve_save_version", None)
        version = resolve() if callable(resolve) else None
        saved = filepath / version / filepath.name if version else filepath
        if saved.is_absolute() and saved.is_relative_to(Path.cwd()):
            saved = saved.relative_to(Path.cwd())  # as the docs write catalog paths
        with atomic_write(LATEST_SUMMARY, "w") as handle:
            handle.write(data)
        logger.info("Summary: %s (the newest also at %s)", saved, LATEST_SUMMARY)