"""Parameters -> typed configs, in one place for the nodes and the up-front validation.

Kedro hands nodes plain dicts; every node turns its sections into dataclasses through
these functions, and :func:`validate_parameters` runs all of them before a pipeline
starts, so a typo or an impossible value fails in seconds, not after the warm-up.
"""

from __future__ import annotations

import functools
import json
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from wpnas.config import RunConfig, from_dict, qualify, resolve_device
from wpnas.data.sources import DataConfig, check_data_source, expected_input_shape, expected_num_classes
from wpnas.errors import ConfigError, DataError
from wpnas.io.stage_checkpoint import CheckpointPolicy
from wpnas.latency import LatencyConfig, LatencyTable, expected_fingerprint, load_table
from wpnas.spaces import SearchSpace, SpaceConfig
from wpnas.predictors.stage import PredictorStageConfig
from wpnas.predictors.table2 import Table2Config
from wpnas.experiments.ablation import AblationConfig, check_ablation
from wpnas.search import SearchConfig
from wpnas.train.ground_truth import GroundTruthConfig
from wpnas.train.scratch import EvaluationConfig, check_drop_path
from wpnas.train.warmup import LandmarkPhaseConfig, WarmupConfig

T = TypeVar("T")


#: (parser, section content) -> its typed config: every node, hook and check of a run asks for the
#: same sections, and each is parsed once per process (errors are not kept: a bad section fails
#: every time it is asked for). The configs are frozen dataclasses; the spaces are shared.
_PARSED: OrderedDict[tuple[str, str], Any] = OrderedDict()
_PARSED_LIMIT = 64


def parsed_once(parse: Callable[[Any], T]) -> Callable[[Any], T]:
    """``parse(section)``, computed once per section content (see :data:`_PARSED`)."""

    @functools.wraps(parse)
    def cached(section: Any) -> T:
        key = (parse.__name__, json.dumps(section, sort_keys=True, default=repr))
        if key not in _PARSED:
            _PARSED[key] = parse(section)
            if len(_PARSED) > _PARSED_LIMIT:
                _PARSED.popitem(last=False)
        return _PARSED[key]

    return cached


@parsed_once
def run_config(section: Any) -> RunConfig:
    return from_dict(RunConfig, section, where="run")


@parsed_once
def data_config(section: Any) -> DataConfig:
    return from_dict(DataConfig, section, where="data")


@parsed_once
def space_config(section: Any) -> tuple[SpaceConfig, SearchSpace]:
    cfg = from_dict(SpaceConfig, section, where="space")
    return cfg, cfg.build()


#: Keys of a stage section that say how the stage checkpoints while it runs (not part of its
#: result, so not part of its config or fingerprint).
CHECKPOINT_KEYS = ("checkpoint_every", "resume")


def _without_checkpoint_keys(section: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(section or {}).items() if k not in CHECKPOINT_KEYS}


#: Set (to "1") by ``StageFileHooks`` while a Kedro pipeline runs, and inherited by the workers a
#: node starts: a finished stage then keeps its in-progress checkpoint until the catalog has
#: saved the node's outputs (the hook removes it). A node called outside Kedro removes it itself.
KEEP_FINISHED_ENV = "WPNAS_KEEP_FINISHED_STAGES"


def checkpoint_policy(section: Any, run: Any, stage: str) -> CheckpointPolicy:
    """``<stage>.checkpoint_every`` (default 1; 0 = none during the stage) and ``<stage>.resume``
    (default true), in ``run.checkpoint_dir``."""
    settings = dict(section or {})
    try:
        return CheckpointPolicy(every=settings.get("checkpoint_every", 1), resume=settings.get("resume", True),
                                folder=run_config(run).checkpoint_dir,
                                keep_finished=os.environ.get(KEEP_FINISHED_ENV) == "1")
    except ConfigError as err:  # the policy names the setting; the message names its full key
        raise ConfigError(qualify(str(err), stage, CHECKPOINT_KEYS)) from None


@parsed_once
def warmup_config(section: Any) -> tuple[WarmupConfig, str | None]:
    settings = _without_checkpoint_keys(section)
    resume_from = settings.pop("resume_from", None)
    if resume_from is not None and not Path(resume_from).is_file():
        raise DataError(f"warmup.resume_from: checkpoint {resume_from!r} does not exist")
    return from_dict(WarmupConfig, settings, where="warmup"), resume_from


@parsed_once
def landmark_phase_config(section: Any) -> LandmarkPhaseConfig:
    return from_dict(LandmarkPhaseConfig, _without_checkpoint_keys(section), where="landmark_phase")


@parsed_once
def ground_truth_config(section: Any) -> GroundTruthConfig:
    cfg = from_dict(GroundTruthConfig, _without_checkpoint_keys(section), where="ground_truth")
    if cfg.source == "benchmark" and cfg.benchmark is not None and cfg.benchmark.kind == "csv":
        if not Path(cfg.benchmark.path).is_file():
            raise DataError(f"ground_truth.benchmark.path: table {cfg.benchmark.path!r} does not exist")
    return cfg


@parsed_once
def predictor_config(section: Any) -> PredictorStageConfig:
    cfg = from_dict(PredictorStageConfig, section, where="predictor")
    if cfg.benchmark is not None and cfg.benchmark.kind == "csv" and not Path(cfg.benchmark.path).is_file():
        raise DataError(f"predictor.benchmark.path: table {cfg.benchmark.path!r} does not exist")
    return cfg


@parsed_once
def predictor_benchmark_config(section: Any) -> Table2Config:
    return from_dict(Table2Config, section, where="predictor_benchmark")


@parsed_once
def latency_config(section: Any) -> LatencyConfig:
    return from_dict(LatencyConfig, section, where="latency")


def network_options(evaluation: Any) -> dict[str, Any]:
    """The evaluation network's options (``evaluation.network``): the network a latency table times."""
    return dict(evaluation_config(evaluation).network or {}) if evaluation else {}


def latency_table_for(latency: Any, evaluation: Any, space: SearchSpace, input_shape: Any,
                      num_classes: int) -> LatencyTable:
    """The saved table a search uses (``latency.table_path``), refused by fingerprint when it was
    measured for another device, threads, batch size, input, space or torch."""
    cfg = latency_config(latency)
    expected = expected_fingerprint(cfg, space, input_shape, num_classes, network_options(evaluation))
    return load_table(cfg, space, expected)


@parsed_once
def search_config(section: Any) -> SearchConfig:
    return from_dict(SearchConfig, _without_checkpoint_keys(section), where="search")


@parsed_once
def ablation_config(section: Any) -> AblationConfig:
    return from_dict(AblationConfig, section, where="ablation")


@parsed_once
def evaluation_config(section: Any) -> EvaluationConfig:
    return from_dict(EvaluationConfig, _without_checkpoint_keys(section), where="evaluation")


#: Parameter section -> parser. Sections absent from the parameters are skipped.
SECTIONS: dict[str, Callable[[Any], Any]] = {
    "run": run_config,
    "data": data_config,
    "space": space_config,
    "warmup": warmup_config,
    "landmark_phase": landmark_phase_config,
    "ground_truth": ground_truth_config,
    "predictor": predictor_config,
    "search": search_config,
    "predictor_benchmark": predictor_benchmark_config,
    "ablation": ablation_config,
    "evaluation": evaluation_config,
    "latency": latency_config,
}


#: Stages that write in-progress checkpoints and resume from them.
CHECKPOINTED_STAGES = ("warmup", "landmark_phase", "ground_truth", "search", "evaluation")


def validate_parameters(params: dict[str, Any], node_names: Iterable[str] = ()) -> None:
    """Build every stage config from ``params`` and check paths the run will need."""
    for name, parse in SECTIONS.items():
        if name in params:
            parse(params[name])
    for stage in CHECKPOINTED_STAGES:
        if stage in params:
            checkpoint_policy(params[stage], params.get("run"), stage)
    if "run" in params:
        resolve_device(run_config(params["run"]).device)
    nodes = set(node_names)
    if "prepare_image_splits" in nodes and "data" in params:
        check_data_source(data_config(params["data"]))
    if "predictor_table2" in nodes and "predictor_benchmark" in params:
        for entry in predictor_benchmark_config(params["predictor_benchmark"]).tables:
            if entry.benchmark.kind == "csv" and not Path(entry.benchmark.path).is_file():
                raise DataError(
                    f"predictor_benchmark.tables: table {entry.benchmark.path!r} does not exist (the shared "
                    "reference tables sit at ../shared/data; point the path at your copy)"
                )
    for check in CROSS_CHECKS:
        check(params, nodes)


def run_banner(params: dict[str, Any], pipeline: str, env: str | None) -> str:
    """The run's first line: pipeline, environment, the device chosen (with its torch threads),
    the data (source, image size, limits) and the space, from the validated parameters."""
    from wpnas.config import describe_device

    run = run_config(params.get("run"))
    device = describe_device(resolve_device(run.device))
    parts = [f"pipeline {pipeline}, env {env or 'local'}",
             f"device {device}, chosen by run.device={run.device} on a machine of {os.cpu_count()} CPU cores"]
    if "data" in params:
        data = data_config(params["data"])
        shape = _input_shape(params)
        limits = ", ".join(f"{k} {getattr(data, k)}" for k in ("train_limit", "test_limit")
                           if getattr(data, k) is not None)
        parts.append(f"data {data.source}" + (f" {shape[1]}x{shape[2]}x{shape[0]}" if shape else " (own size)")
                     + f", valid_size {data.valid_size}" + (f", {limits}" if limits else ""))
    if "space" in params:
        cfg, space = space_config(params["space"])
        parts.append(f"space {space.name} {space.options()}")
    return "; ".join(parts)


def _pairs_enough_for_predictor(params: dict[str, Any], nodes: set[str]) -> None:
    if "ground_truth" not in params or "predictor" not in params:
        return
    gt = ground_truth_config(params["ground_truth"])
    needed = _predictor_min_pairs(params["predictor"])
    if needed is not None and gt.num_archs < needed:
        raise ConfigError(
            f"ground_truth.num_archs: {gt.num_archs} pairs are too few for the predictor, which needs "
            f"at least {needed} (training pairs >= support size + 1, plus the validation pairs)"
        )


def _predictor_min_pairs(section: Any) -> int | None:
    parse = SECTIONS.get("predictor")
    if parse is None:
        return None
    return parse(section).min_pairs


def _input_shape(params: dict[str, Any]) -> tuple[int, int, int] | None:
    """The image shape of the data section (:func:`~wpnas.data.sources.expected_input_shape`); None
    when it is not known without loading anything, or the number of classes is not."""
    if "data" not in params:
        return None
    cfg = data_config(params["data"])
    return expected_input_shape(cfg) if expected_num_classes(cfg) is not None else None


def _num_classes(params: dict[str, Any]) -> int:
    """The classes of the data section; an image folder not there yet: 10 (the checks that use it
    then skip what depends on the head, see :func:`_input_shape`)."""
    return expected_num_classes(data_config(params.get("data"))) or 10


#: Public names for the latency nodes (the table is measured at the data's input size).
input_shape_of = _input_shape
num_classes_of = _num_classes


def _search_inputs(params: dict[str, Any], nodes: set[str]) -> None:
    """The method's settings against the space (its own check), landmarks against the ground truth."""
    if "search" not in params or "space" not in params or "search_architecture" not in nodes:
        return
    cfg = search_config(params["search"])
    _, space = space_config(params["space"])
    cfg.method_class.check(cfg, space, _input_shape(params), _num_classes(params))
    if cfg.needs.landmarks and "ground_truth" in params and ground_truth_config(params["ground_truth"]).num_archs < 2:
        raise ConfigError(f"search.method {cfg.method!r} uses landmarks (search.{cfg.method_class.settings_key}) and "
                          "needs at least 2 ground-truth pairs (ground_truth.num_archs)")


def _latency_inputs(params: dict[str, Any], nodes: set[str]) -> None:
    """A search that prices or bounds latency: the table exists, was measured for this setting, and the
    bound is not below the space's fastest architecture; WPNAS bounds its result through the selection."""
    if "search" not in params or not search_config(params["search"]).uses_latency:
        return
    if "ablation_rows" in nodes:
        raise ConfigError("ablation: its rows are the paper's FLOPs-priced searches; set search.wpnas.reward.cost: "
                          "flops and search.max_latency_ms: null for the ablation")
    if not nodes & {"search_architecture", "select_final_architecture"}:
        return
    cfg = search_config(params["search"])
    if cfg.max_latency_ms is not None and not cfg.method_class.bounds_latency and not cfg.selection.enabled:
        raise ConfigError(
            f"search.max_latency_ms: the own choice of search.method {cfg.method!r} is not bounded; the bound "
            "applies through the final selection, so set search.selection.enabled: true (or, for WPNAS, use "
            "reward.cost: latency alone)"
        )
    shape = _input_shape(params)
    if shape is None or "space" not in params:
        return
    _, space = space_config(params["space"])
    table = latency_table_for(params.get("latency"), params.get("evaluation"), space, shape, _num_classes(params))
    table.check_bound(cfg.max_latency_ms, "search.max_latency_ms")


def _final_selection(params: dict[str, Any], nodes: set[str]) -> None:
    """The selection's k against the space; it scores with the ground-truth method, which must be configured."""
    if "search" not in params or "select_final_architecture" not in nodes:
        return
    selection = search_config(params["search"]).selection
    if not selection.enabled:
        return
    if "space" in params:
        selection.check_space(space_config(params["space"])[1])
    if not params.get("ground_truth"):
        raise ConfigError(
            "search.selection.enabled: the final selection scores its candidates with the ground-truth method, "
            "but no ground_truth section is configured; add one or set search.selection.enabled: false"
        )


def _warmup_landmarks(params: dict[str, Any], nodes: set[str]) -> None:
    """The warmup node runs before any ground truth exists, so it cannot take landmarks."""
    if "warmup" in params and "warmup_supernet" in nodes and warmup_config(params["warmup"])[0].landmark.enabled:
        raise ConfigError(
            "warmup.landmark.enabled: the warmup pipeline runs before the ground truth exists, so it has no "
            "landmarks; use the ablation pipeline (its landmark WarmUp uses ablation.landmark) or call "
            "warmup_supernet(..., landmarks=pairs) from Python"
        )


def _ablation_inputs(params: dict[str, Any], nodes: set[str]) -> None:
    if "ablation" not in params or "ablation_rows" not in nodes:
        return
    _, space = space_config(params.get("space"))
    check_ablation(space, ablation_config(params["ablation"]), search_config(params.get("search")),
                   _input_shape(params), _num_classes(params))
    if "ground_truth" in params and ground_truth_config(params["ground_truth"]).num_archs < 2:
        raise ConfigError("ablation: the landmark rows need at least 2 ground-truth pairs (ground_truth.num_archs)")


def _evaluation_inputs(params: dict[str, Any], nodes: set[str]) -> None:
    """A configured benchmark table must exist (``benchmark: null`` = no rank); drop-path needs
    a network with cells. Checked only when the evaluation runs, so a search run does not
    depend on the evaluation's table. The genotype is checked by the node before training."""
    if "evaluation" not in params or "evaluate_final_model" not in nodes:
        return
    cfg = evaluation_config(params["evaluation"])
    if cfg.benchmark is not None and cfg.benchmark.kind == "csv" and not Path(cfg.benchmark.path).is_file():
        raise DataError(
            f"evaluation.benchmark.path: table {cfg.benchmark.path!r} does not exist (set evaluation.benchmark "
            "to null for no benchmark rank)"
        )
    _, space = space_config(params.get("space"))
    space.check_evaluation_options(cfg.network)
    if cfg.data is not None:  # a streamed folder: listed (not decoded) now, so a wrong path fails first
        from wpnas.data.streaming import StreamedFolder

        folder = StreamedFolder(cfg.data)
        check_drop_path(space, cfg, folder.in_channels, folder.num_classes)
        return
    shape = _input_shape(params)
    check_drop_path(space, cfg, shape[0] if shape else 3, _num_classes(params))


def _distributed_inputs(params: dict[str, Any], nodes: set[str]) -> None:
    """The world against the device (NCCL needs GPUs), the work (ranks <= architectures) and the batches
    (a data-parallel batch splits evenly over the ranks). A map over independent runs (fine-tunes,
    repeated evaluations) may start more workers than data-parallel training (``map_workers_per_device``)."""
    from wpnas import distributed

    run = run_config(params.get("run"))
    launched = distributed.launched_by_torchrun()
    device = resolve_device(run.device)
    size = distributed.env_world_size() if launched else run.distributed.nproc_per_node

    def check_world(workers: int) -> None:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if launched else workers
        if workers > 1:
            distributed.resolve_backend(run.distributed.backend, device, local)

    def map_world(work: int) -> int:
        workers = size if launched else run.distributed.map_world(device, work)
        try:
            check_world(workers)
        except ConfigError as err:
            raise ConfigError(f"{err} (a map stage starts {workers} workers: nproc_per_node "
                              f"{run.distributed.nproc_per_node} x run.distributed.map_workers_per_device "
                              f"{run.distributed.map_workers_per_device!r})") from None
        return workers

    check_world(size)
    if nodes & {"warmup_supernet", "landmark_warmup"} and "warmup" in params:  # WarmUp (and its landmark phase)
        distributed.check_divisible(warmup_config(params["warmup"])[0].batch_size, size, "warmup.batch_size")
    if "evaluate_final_model" in nodes and "evaluation" in params:  # so does training from scratch, or
        evaluation = evaluation_config(params["evaluation"])       # its repeated runs are a map over the ranks
        if evaluation.repeats > 1:
            distributed.check_work(evaluation.repeats, map_world(evaluation.repeats),
                                   "evaluation runs (evaluation.repeats)")
        else:
            distributed.check_divisible(evaluation.batch_size, size, "evaluation.batch_size")
    if "search_architecture" in nodes and "search" in params:
        search = search_config(params["search"])
        search.method_class.check_world(search, size)
    if nodes & {"acquire_ground_truth", "ablation_ground_truth"} and "ground_truth" in params:
        gt = ground_truth_config(params["ground_truth"])
        if gt.source == "finetune":
            distributed.check_work(gt.num_archs, map_world(gt.num_archs),
                                   "architectures to fine-tune (ground_truth.num_archs)")


CROSS_CHECKS: list[Callable[[dict[str, Any], set[str]], None]] = [
    _distributed_inputs,
    _pairs_enough_for_predictor,
    _search_inputs,
    _final_selection,
    _warmup_landmarks,
    _ablation_inputs,
    _evaluation_inputs,
    _latency_inputs,
]
