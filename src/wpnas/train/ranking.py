"""How well does a trained SuperNet rank architectures? (any method: WarmUp, SPOS, WPNAS)

A fixed, seeded sample of ``K`` architectures (or the whole space on request) is
evaluated with inherited weights on the valid split, each after BN recalibration on the
same fixed calibration batches, and compared with reference accuracies: a benchmark
column (``cfg.benchmark.metric``) or, without a benchmark, ground-truth pairs (then the
sample is the ground-truth architectures). Reported: Kendall tau, Spearman and MSE (on
accuracy / 100, as for predictors), the same correlations for two zero-cost proxies
(parameter count, FLOPs) on the same sample, and the SuperNet's best architecture with
its benchmark rank.

The sample depends on ``cfg.sample_seed`` only, never on the run seed, so every method
and every row of a comparison is scored on the same architectures. Each architecture's
result depends only on the SuperNet and the data, not on the evaluation order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from wpnas import distributed
from wpnas.config import json_ready
from wpnas.data.batching import DeviceBatches
from wpnas.data.splits import ImageSplits
from wpnas.io.pairs import read_pairs
from wpnas.errors import ConfigError, DataError
from wpnas.nasbench import BenchmarkConfig, BenchmarkTable, NasBenchmark, OfficialNatsTable, load_benchmark
from wpnas.nasbench.metrics import kendall_tau, mse, spearman
from wpnas.progress import Progress
from wpnas.seeds import stream_seed
from wpnas.spaces.base import ENUMERATION_LIMIT, Arch, SearchSpace
from wpnas.train.engine import Engine, EngineConfig
from wpnas.train.evaluation import evaluate_many, paths_in_flight

__all__ = [
    "RankingConfig",
    "RankingReport",
    "TABLE_COLUMNS",
    "benchmark_position",
    "check_ranking",
    "rank_supernet",
    "ranking_sample",
]

#: Columns of :attr:`RankingReport.table`, in order.
TABLE_COLUMNS = ("arch", "supernet_acc", "reference_acc", "params_m", "flops_m")

#: Metric name of the reference column when ground-truth pairs are the reference.
PAIRS_COLUMN = "accuracy"


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class RankingConfig:
    """Settings of a ranking evaluation.

    num_archs:        K, the size of the fixed seeded sample (ignored with ``all_archs``
                      or when ground-truth pairs are the reference).
    all_archs:        evaluate the whole space instead of a sample.
    sample_seed:      seeds the sample (independent of the run seed).
    calib_batches / calib_batch_size: BN recalibration batches (0 batches: keep the
                      SuperNet's stored statistics).
    valid_limit:      class-balanced valid images per architecture (None: all).
    eval_batch_size:  valid batch size.
    benchmark:        the reference table; correlations use ``benchmark.metric``.
    rank_metric:      the column the best architecture's benchmark rank and accuracy are
                      read from (default ``benchmark.metric``).
    """

    num_archs: int = 200
    all_archs: bool = False
    sample_seed: int = 0
    calib_batches: int = 4
    calib_batch_size: int = 128
    valid_limit: int | None = 2000
    eval_batch_size: int = 512
    benchmark: BenchmarkConfig | None = None
    rank_metric: str | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.num_archs) or self.num_archs < 2:
            raise ConfigError(f"ranking.num_archs: {self.num_archs!r}; expected an integer >= 2 (a correlation needs 2)")
        if not isinstance(self.all_archs, bool):
            raise ConfigError(f"ranking.all_archs: {self.all_archs!r}; expected true or false")
        if not _is_int(self.sample_seed) or self.sample_seed < 0:
            raise ConfigError(f"ranking.sample_seed: {self.sample_seed!r}; expected an integer >= 0")
        if not _is_int(self.calib_batches) or self.calib_batches < 0:
            raise ConfigError(f"ranking.calib_batches: {self.calib_batches!r}; expected an integer >= 0")
        for name in ("calib_batch_size", "eval_batch_size"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise ConfigError(f"ranking.{name}: {value!r}; expected an integer >= 1")
        if self.valid_limit is not None and (not _is_int(self.valid_limit) or self.valid_limit < 1):
            raise ConfigError(f"ranking.valid_limit: {self.valid_limit!r}; expected an integer >= 1 or null (all)")
        if self.benchmark is not None and not isinstance(self.benchmark, BenchmarkConfig):
            raise ConfigError(f"ranking.benchmark: {self.benchmark!r}; expected a BenchmarkConfig or null")
        if self.rank_metric is not None:
            if not isinstance(self.rank_metric, str) or not self.rank_metric:
                raise ConfigError(f"ranking.rank_metric: {self.rank_metric!r}; expected a column name or null")
            if self.benchmark is None:
                raise ConfigError(
                    f"ranking.rank_metric: {self.rank_metric!r} needs ranking.benchmark (the table to rank in)"
                )

    @property
    def column(self) -> str:
        """The reference column the correlations use."""
        return self.benchmark.metric if self.benchmark is not None else PAIRS_COLUMN

    @property
    def position_metric(self) -> str:
        """The column of the best architecture's rank."""
        return self.rank_metric or self.column


@dataclass
class RankingReport:
    """Per-architecture results (``table``, columns :data:`TABLE_COLUMNS`) and the summary."""

    table: pd.DataFrame
    metrics: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (non-finite numbers become ``None``)."""
        return json_ready(self.metrics, nonfinite_as_none=True)

    def scalars(self) -> dict[str, float]:
        """The numeric, finite top-level metrics (for ``tracking.log_metrics``)."""
        return {
            k: float(v)
            for k, v in self.metrics.items()
            if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and math.isfinite(v)
        }


# -- checks and the sample ---------------------------------------------------------------
def check_ranking(space: SearchSpace, cfg: RankingConfig) -> None:
    """Fail fast (before any training) on settings the space cannot satisfy.

    The sample size only matters with a benchmark (without one, the ground-truth
    architectures are the sample).
    """
    if cfg.benchmark is not None:
        if cfg.all_archs:
            if space.size > ENUMERATION_LIMIT:
                raise ConfigError(
                    f"ranking.all_archs: {space.name} has {space.size} architectures, more than the "
                    f"{ENUMERATION_LIMIT} that can be enumerated; set ranking.num_archs instead"
                )
        elif cfg.num_archs > space.size:
            raise ConfigError(
                f"ranking.num_archs: {cfg.num_archs} architectures requested but {space.name} has only "
                f"{space.size}; lower it or set ranking.all_archs"
            )
        if cfg.benchmark.kind == "csv" and not Path(cfg.benchmark.path).is_file():
            raise DataError(f"ranking.benchmark.path: {cfg.benchmark.path!r} does not exist (expected a CSV table)")


def ranking_sample(space: SearchSpace, cfg: RankingConfig) -> list[Arch]:
    """The architectures a benchmark ranking scores: the whole space or the fixed K-sample."""
    if cfg.all_archs:
        if space.size > ENUMERATION_LIMIT:
            raise ConfigError(
                f"ranking.all_archs: {space.name} has {space.size} architectures, more than the "
                f"{ENUMERATION_LIMIT} that can be enumerated"
            )
        return list(space.enumerate())
    if cfg.num_archs > space.size:
        raise ConfigError(
            f"ranking.num_archs: {cfg.num_archs} architectures requested but {space.name} has only {space.size}"
        )
    rng = np.random.default_rng(stream_seed(cfg.sample_seed, "ranking.sample"))
    return space.sample_unique(rng, cfg.num_archs)


def _describe_sample(cfg: RankingConfig) -> str:
    if cfg.benchmark is None:
        return "ground-truth architectures"
    if cfg.all_archs:
        return "whole space"
    return f"K={cfg.num_archs} seeded sample, seed {cfg.sample_seed}"


# -- reference tables ------------------------------------------------------------------
def _load_table(cfg: BenchmarkConfig, space: SearchSpace, rank_metric: str) -> NasBenchmark:
    if cfg.kind == "nats_bench" and rank_metric != cfg.metric:
        # The official reader loads only the metrics it is asked for.
        table: NasBenchmark = OfficialNatsTable(
            cfg.path, space, dataset=cfg.dataset, hp=cfg.hp or None, metrics=(cfg.metric, rank_metric)
        )
        table.check_metric(cfg.metric)
    else:
        table = load_benchmark(cfg, space)
    table.check_metric(rank_metric)
    return table


def _pairs_table(reference: pd.DataFrame, space: SearchSpace) -> BenchmarkTable:
    """Ground-truth pairs (columns arch, accuracy) as an in-memory table (the shared pairs check first)."""
    tokens, acc = read_pairs(space, reference, min_pairs=2, what="reference pairs")
    strings = [space.to_string(row) for row in tokens]
    return BenchmarkTable(space, strings, {PAIRS_COLUMN: acc}, source="reference pairs")


def _require_in_table(table: NasBenchmark, archs: Sequence[Arch]) -> None:
    absent = [a for a in archs if a not in table]
    if absent:
        names = ", ".join(repr(table.space.to_string(a)) for a in absent[:3])
        more = f" and {len(absent) - 3} more" if len(absent) > 3 else ""
        raise DataError(
            f"{len(absent)} of the {len(archs)} sampled architecture(s) are not in the benchmark table "
            f"({len(table)} rows): {names}{more}; expected a table covering the space"
        )


def benchmark_position(benchmark: NasBenchmark, metric: str, arch: str | Iterable[int]) -> dict[str, Any]:
    """Accuracy and rank (1 = best) of ``arch`` in ``metric`` over the whole table."""
    key = benchmark.space.parse(arch)  # ArchitectureError: not an architecture of the space at all
    benchmark.check_metric(metric)
    if key not in benchmark:
        raise DataError(
            f"architecture {benchmark.space.to_string(key)!r} is not in the benchmark table "
            f"({len(benchmark)} rows); cannot give its {metric!r} rank"
        )
    return {
        "accuracy": benchmark.lookup(key, metric),
        "rank": benchmark.rank(key, metric),
        "of": len(benchmark),
        "column": metric,
    }


# -- evaluation ----------------------------------------------------------------------
def _bn_buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: buf.detach().clone()
        for name, buf in module.named_buffers()
        if name.endswith(("running_mean", "running_var", "num_batches_tracked"))
    }


def rank_supernet(
    supernet: nn.Module,
    space: SearchSpace,
    splits: ImageSplits,
    cfg: RankingConfig,
    device: torch.device | str,
    seed: int = 0,
    offsets_for: Callable[[Arch], torch.Tensor | None] | None = None,
    reference: pd.DataFrame | None = None,
    engine_cfg: EngineConfig | None = None,
) -> RankingReport:
    """Score how well ``supernet``'s inherited-weight accuracies rank architectures.

    With ``cfg.benchmark`` the sample (:func:`ranking_sample`) is looked up in the table
    (every sampled architecture must be in it); otherwise ``reference`` (ground-truth
    pairs, columns arch and accuracy) is both the sample and the reference. ``seed``
    fixes the valid subset and the calibration batches (one draw, shared by every
    architecture); ``offsets_for(arch)`` gives weakly-weight-sharing offsets. The
    SuperNet is moved to ``device``; its BN statistics and train/eval flags are restored
    afterwards.
    """
    check_ranking(space, cfg)
    if cfg.benchmark is not None:
        table = _load_table(cfg.benchmark, space, cfg.position_metric)
        archs = ranking_sample(space, cfg)
        _require_in_table(table, archs)
    elif reference is not None:
        table = _pairs_table(reference, space)
        archs = table.archs
    else:
        raise ConfigError(
            "ranking: no reference accuracies; set ranking.benchmark or pass ground-truth pairs as reference"
        )
    truth = table.lookup_many(archs, cfg.column)
    costs = [space.cost(a, splits.input_shape, splits.num_classes) for a in archs]

    device = torch.device(device)
    engine = Engine(device, engine_cfg)
    supernet = engine.prepare(supernet)
    valid = DeviceBatches.from_splits(
        splits, "valid", device, cfg.eval_batch_size, train=False, seed=seed,
        channels_last=engine.channels_last, limit=cfg.valid_limit,
    )
    if valid.num_images == 0:
        raise DataError("ranking: the valid split is empty; expected held-out images to evaluate on")
    calib: list[tuple[torch.Tensor, torch.Tensor]] = []
    if cfg.calib_batches:
        calib = DeviceBatches.from_splits(
            splits, "train", device, cfg.calib_batch_size, train=False, shuffle=True,
            seed=stream_seed(seed, "calibration"), channels_last=engine.channels_last,
        ).take(cfg.calib_batches)

    saved_bn = _bn_buffers(supernet)
    flags = {m: m.training for m in supernet.modules()}
    started = time.monotonic()
    try:
        # a map over groups of architectures (each recalibrates its own path; a group runs as
        # paths in flight): sharded over the ranks of a torch.distributed world, gathered in
        # sample order on every rank
        width = paths_in_flight(supernet, engine)
        world = distributed.current()
        groups = distributed.groups_of(archs, width)
        mine = sum(len(groups[i]) for i in distributed.share(len(groups), world))
        with Progress(mine, "ranking", unit="arch", log_every=30.0) as progress:

            def score(group: list[Arch]) -> list[float]:
                with torch.no_grad():
                    offsets = [offsets_for(a) for a in group] if offsets_for is not None else None
                results = evaluate_many(supernet, group, valid, engine, calib, offsets)
                for result in results:
                    progress.update_metrics(acc=result["acc"])
                    progress.advance()
                return [result["acc"] for result in results]

            accs = distributed.map_groups(score, archs, width)
    finally:
        buffers = dict(supernet.named_buffers())
        with torch.no_grad():
            for name, value in saved_bn.items():
                buffers[name].copy_(value)
        for module, flag in flags.items():
            module.training = flag
    seconds = time.monotonic() - started

    frame = pd.DataFrame({
        "arch": [space.to_string(a) for a in archs],
        "supernet_acc": np.asarray(accs, dtype=np.float64),
        "reference_acc": truth,
        "params_m": [c.params_m for c in costs],
        "flops_m": [c.flops_m for c in costs],
    }, columns=list(TABLE_COLUMNS))
    metrics = _summarize(frame, table, cfg)
    metrics.update(seconds=seconds, device=str(device))
    return RankingReport(frame, metrics)


def _summarize(frame: pd.DataFrame, table: NasBenchmark, cfg: RankingConfig) -> dict[str, Any]:
    ok = np.isfinite(frame["reference_acc"].to_numpy())
    scored = frame[ok]
    if len(scored) < 2:
        raise DataError(
            f"ranking: only {len(scored)} of {len(frame)} architectures have a {cfg.column!r} value; "
            "a correlation needs at least 2"
        )
    sup = scored["supernet_acc"].to_numpy()
    ref = scored["reference_acc"].to_numpy()
    metrics: dict[str, Any] = {
        "kendall_tau": kendall_tau(sup, ref),
        "spearman": spearman(sup, ref),
        "mse": mse(sup / 100.0, ref / 100.0),
    }
    for proxy in ("params", "flops"):
        values = scored[f"{proxy}_m"].to_numpy()
        metrics[f"{proxy}_kendall_tau"] = kendall_tau(values, ref)
        metrics[f"{proxy}_spearman"] = spearman(values, ref)
    best = int(np.argmax(frame["supernet_acc"].to_numpy()))  # first on ties: the sample order is fixed
    best_arch = frame["arch"].iloc[best]
    best_ref = float(frame["reference_acc"].iloc[best])
    try:
        position: dict[str, Any] | None = benchmark_position(table, cfg.position_metric, best_arch)
    except DataError:  # the best architecture has no value in the rank column
        position = None
    metrics.update(
        n=int(len(scored)),
        missing=int((~ok).sum()),
        column=cfg.column,
        sample=_describe_sample(cfg),
        supernet_acc_mean=float(frame["supernet_acc"].mean()),
        supernet_acc_max=float(frame["supernet_acc"].max()),
        reference_acc_max=float(np.max(ref)),
        best_arch=best_arch,
        best_supernet_acc=float(frame["supernet_acc"].iloc[best]),
        best_reference_acc=best_ref,
        best_rank_in_sample=int(np.count_nonzero(ref > best_ref)) + 1 if math.isfinite(best_ref) else None,
        best_position=position,
    )
    return metrics
