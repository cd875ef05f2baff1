"""Parameters -> typed configs, in one place for the nodes and the up-front validation.

Kedro hands nodes plain dicts; every node turns its sections into dataclasses through
these functions, and :func:`validate_parameters` runs all of them before a pipeline
starts, so a typo or an impossible value fails in seconds, not after the warm-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from wpnas.config import RunConfig, from_dict, resolve_device
from wpnas.data.sources import DataConfig, check_data_source
from wpnas.errors import ConfigError, DataError
from wpnas.spaces import SearchSpace, SpaceConfig
from wpnas.predictors.stage import PredictorStageConfig
from wpnas.predictors.table2 import Table2Config
from wpnas.search import SearchConfig
from wpnas.train.ground_truth import GroundTruthConfig
from wpnas.train.warmup import WarmupConfig


def run_config(section: Any) -> RunConfig:
    return from_dict(RunConfig, section, where="run")


def data_config(section: Any) -> DataConfig:
    return from_dict(DataConfig, section, where="data")


def space_config(section: Any) -> tuple[SpaceConfig, SearchSpace]:
    cfg = from_dict(SpaceConfig, section, where="space")
    return cfg, cfg.build()


def warmup_config(section: Any) -> tuple[WarmupConfig, str | None]:
    settings = dict(section or {})
    resume_from = settings.pop("resume_from", None)
    if resume_from is not None and not Path(resume_from).is_file():
        raise DataError(f"warmup.resume_from: checkpoint {resume_from!r} does not exist")
    return from_dict(WarmupConfig, settings, where="warmup"), resume_from


def ground_truth_config(section: Any) -> GroundTruthConfig:
    cfg = from_dict(GroundTruthConfig, section, where="ground_truth")
    if cfg.source == "benchmark" and cfg.benchmark is not None and cfg.benchmark.kind == "csv":
        if not Path(cfg.benchmark.path).is_file():
            raise DataError(f"ground_truth.benchmark.path: table {cfg.benchmark.path!r} does not exist")
    return cfg


def predictor_config(section: Any) -> PredictorStageConfig:
    cfg = from_dict(PredictorStageConfig, section, where="predictor")
    if cfg.benchmark is not None and cfg.benchmark.kind == "csv" and not Path(cfg.benchmark.path).is_file():
        raise DataError(f"predictor.benchmark.path: table {cfg.benchmark.path!r} does not exist")
    return cfg


def predictor_benchmark_config(section: Any) -> Table2Config:
    return from_dict(Table2Config, section, where="predictor_benchmark")


def search_config(section: Any) -> SearchConfig:
    return from_dict(SearchConfig, section, where="search")


#: Parameter section -> parser. Sections absent from the parameters are skipped.
SECTIONS: dict[str, Callable[[Any], Any]] = {
    "run": run_config,
    "data": data_config,
    "space": space_config,
    "warmup": warmup_config,
    "ground_truth": ground_truth_config,
    "predictor": predictor_config,
    "search": search_config,
    "predictor_benchmark": predictor_benchmark_config,
}


def validate_parameters(params: dict[str, Any], node_names: Iterable[str] = ()) -> None:
    """Build every stage config from ``params`` and check paths the run will need."""
    for name, parse in SECTIONS.items():
        if name in params:
            parse(params[name])
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


CROSS_CHECKS: list[Callable[[dict[str, Any], set[str]], None]] = [_pairs_enough_for_predictor]
