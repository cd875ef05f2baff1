"""Ground truth for the predictor (paper step 2): architecture-accuracy pairs.

``finetune`` (the paper's way): N architectures drawn uniformly, each inherits the
warmed SuperNet weights into a stand-alone network, is fine-tuned for E epochs and
scored on the valid split. Each architecture starts from the same warmed weights, so the
work is a map over architectures (the unit to fan out over devices or workers).
``benchmark``: the same sampled architectures looked up in a NAS benchmark table — a
fast stand-in for experiments on spaces that have one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from wpnas import distributed, tracking
from wpnas.data.batching import AugmentConfig, DeviceBatches, warn_oversize_batch
from wpnas.data.splits import ImageSplits
from wpnas.config import to_dict
from wpnas.errors import ConfigError
from wpnas.fingerprint import content_fingerprint, fingerprint, record
from wpnas.io.stage_checkpoint import CheckpointPolicy
from wpnas.nasbench import BenchmarkConfig, load_benchmark
from wpnas.io.pairs import check_pairs
from wpnas.nn.batchnorm import recalibrate_bn
from wpnas.spaces.supernet import SuperNet
from wpnas.progress import Progress
from wpnas.spaces.base import Arch, SearchSpace
from wpnas.train.engine import Engine, EngineConfig, Trainer, evaluate, train_epochs
from wpnas.train.fast import fast_fixed_network, first_batch
from wpnas.train.optim import OptimConfig
from wpnas.train.stage import EpochLoop, StageRunner
from wpnas.seeds import stream_seed

logger = logging.getLogger(__name__)

COLUMNS = ["arch", "accuracy", "flops_m", "params_m", "source", "seconds"]


@dataclass(frozen=True)
class GroundTruthConfig:
    """Paper: 200 architectures fine-tuned for 30 epochs from the warmed weights."""

    source: Literal["finetune", "benchmark"] = "finetune"
    num_archs: int = 200
    epochs: int = 30
    batch_size: int = 128
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.01, lr_min=0.0))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    calib_batches: int = 4
    eval_batch_size: int = 512
    valid_limit: int | None = None
    benchmark: BenchmarkConfig | None = None
    accuracy_scale: Literal["percent", "fraction"] | None = None  # units of the benchmark table's metric

    def __post_init__(self) -> None:
        if self.num_archs < 2:
            raise ConfigError(f"ground_truth.num_archs: {self.num_archs} must be >= 2")
        if self.source == "finetune" and self.epochs < 0:
            raise ConfigError(f"ground_truth.epochs: {self.epochs} must be >= 0")
        if self.source == "benchmark" and self.benchmark is None:
            raise ConfigError("ground_truth.source is 'benchmark' but ground_truth.benchmark is not set")


def sample_architectures(space: SearchSpace, count: int, seed: int) -> list[Arch]:
    """The N distinct architectures whose ground truth is acquired (seeded, uniform)."""
    return space.sample_unique(np.random.default_rng(stream_seed(seed, "ground_truth.archs")), count)


def finetune_architecture(
    supernet: SuperNet,
    arch: Arch,
    splits: ImageSplits,
    cfg: GroundTruthConfig,
    engine: Engine,
    seed: int,
    valid: DeviceBatches,
) -> float:
    """Valid accuracy (%) of ``arch`` after fine-tuning its inherited weights for E epochs."""
    net = engine.prepare(supernet.inherit(arch))
    device = engine.device
    if cfg.epochs > 0:
        train = DeviceBatches.from_splits(
            splits, "train", device, cfg.batch_size, train=True, augment=cfg.augment, seed=seed,
            channels_last=engine.channels_last,
        )
        trainer = Trainer(net.parameters(), cfg.optim, cfg.epochs * len(train), engine)
        fast = fast_fixed_network(net, engine, lambda: first_batch(splits, cfg.batch_size, engine), "ground truth")
        train_epochs(trainer, train, cfg.epochs, lambda: fast, EpochLoop("finetune", track=False, show_progress=False),
                     modules=[net])
    if cfg.calib_batches:
        calib = DeviceBatches.from_splits(
            splits, "train", device, cfg.batch_size, train=False, shuffle=True, seed=seed,
            channels_last=engine.channels_last,
        ).take(cfg.calib_batches)
        with engine.autocast():
            recalibrate_bn(net, None, calib)
    net.eval()
    return evaluate(net, valid, engine)["acc"]


def acquire_ground_truth(
    space: SearchSpace,
    cfg: GroundTruthConfig,
    seed: int,
    supernet: SuperNet | None = None,
    splits: ImageSplits | None = None,
    device: torch.device | str = "cpu",
    archs: Sequence[Arch] | None = None,
    checkpoint: CheckpointPolicy | None = None,
) -> pd.DataFrame:
    """The ``arch_accuracy_pairs`` table (columns: arch, accuracy, flops_m, params_m, source, seconds).

    With ``checkpoint`` (fine-tuning only), the rows done so far are written every
    ``checkpoint.every`` architectures to ``<folder>/ground_truth-<fingerprint>[.rank<r>].pt``
    (the fingerprint of the space, settings, seed, architectures, splits and the SuperNet's
    weights); with ``checkpoint.resume`` a later call with the same inputs keeps those rows
    and fine-tunes only the others (architecture i always with seed + i, so the table is the
    one an uninterrupted run gives). The files are removed when the table is complete.
    """
    archs = list(archs) if archs is not None else sample_architectures(space, cfg.num_archs, seed)
    input_shape = splits.input_shape if splits is not None else (3, 32, 32)
    num_classes = splits.num_classes if splits is not None else 10
    if cfg.source == "benchmark":
        return benchmark_pairs(space, cfg, archs, input_shape, num_classes)
    if supernet is None or splits is None:
        raise ConfigError("ground_truth.source 'finetune' needs the warmed SuperNet and the image splits")
    engine = Engine(device, cfg.engine)
    supernet = supernet.to(engine.device)
    warn_oversize_batch("ground_truth.batch_size", cfg.batch_size, splits.train_x.shape[0], "train")
    valid = DeviceBatches.from_splits(
        splits, "valid", engine.device, cfg.eval_batch_size, train=False, seed=seed,
        channels_last=engine.channels_last, limit=cfg.valid_limit,
    )
    # A map over architectures: under torch.distributed each rank fine-tunes its share
    # (architecture i always with seed + i) and every rank gets all rows back in order.
    # One progress line per 30 s at most when output is redirected (a bar in a terminal),
    # then one summary line; each architecture's fine-tuning is logged at DEBUG.
    world = distributed.current()
    if world.active:
        distributed.check_work(len(archs), world.size, "architectures to fine-tune")
    # the weights are hashed only when the fingerprint names a file
    produced = None if checkpoint is None else ground_truth_fingerprint(space, cfg, seed, archs, splits, supernet)
    runner = StageRunner("ground_truth", "" if produced is None else produced["fingerprint"], checkpoint,
                         part=f"rank{world.rank}" if world.active else None)
    done: dict[int, dict[str, Any]] = {}
    for part in runner.load_parts():
        done.update({int(i): dict(row) for i, row in part["rows"].items()})
    if world.active and runner.store is not None:  # every rank has read the files before any rank writes
        distributed.barrier()
    if done:
        logger.info("ground truth: resuming from %s: %d of %d architectures already fine-tuned, not redone",
                    runner.store.path.parent / f"{runner.store.stem}*.pt", len(done), len(archs))
        if not world.active:
            for i in sorted(done):
                log_arch_metrics(i, done[i]["accuracy"], done[i]["seconds"])
    pending = [(i, arch) for i, arch in enumerate(archs) if i not in done]
    mine = dict(done)  # what this process's file holds: the rows found at the start plus its own
    total = len(archs) if not world.active else len(distributed.share(len(pending), world))
    with Progress(total, "ground truth", unit="arch", log_final=False,
                  initial=len(done) if not world.active else 0) as progress:

        def finetune_pending(_: int, item: tuple[int, Arch]) -> dict[str, Any]:
            i, arch = item
            logger.debug("ground truth: fine-tuning architecture %d/%d %s", i + 1, len(archs), space.to_string(arch))
            started = time.monotonic()
            acc = finetune_architecture(supernet, arch, splits, cfg, engine, seed + i, valid)
            seconds = time.monotonic() - started
            cost = space.cost(arch, input_shape, num_classes)
            mine[i] = row = dict(arch=space.to_string(arch), accuracy=acc, flops_m=cost.flops_m,
                                 params_m=cost.params_m, source=f"finetune:{cfg.epochs}ep", seconds=seconds)
            if not world.active:
                log_arch_metrics(i, acc, seconds)
            progress.update_metrics(acc=acc, best=max(r["accuracy"] for r in mine.values()))
            progress.advance()
            runner.checkpoint(len(mine) - len(done), lambda: {"rows": mine})  # counted in fresh rows
            return row

        new_rows = distributed.map_items(finetune_pending, pending)
    rows_by_index = {**done, **{i: row for (i, _), row in zip(pending, new_rows)}}
    pairs = pd.DataFrame([rows_by_index[i] for i in range(len(archs))], columns=COLUMNS)
    if world.is_main:  # every rank is past its saves (the gather)
        runner.finish(lambda: {"rows": rows_by_index})
    if world.active and world.is_main:
        log_pair_metrics(pairs)
    if not world.active or world.is_main:
        stats = summarize(pairs)
        logger.info("ground truth: %d architectures fine-tuned in %.0f s, accuracy mean %.2f %%, best %.2f %% (%s)",
                    stats["count"], stats["seconds_total"], stats["accuracy_mean"], stats["accuracy_best"],
                    stats["best_arch"])
    return pairs


def benchmark_pairs(space: SearchSpace, cfg: GroundTruthConfig, archs: Sequence[Arch], input_shape: Sequence[int],
                    num_classes: int) -> pd.DataFrame:
    """The pairs of ``source: benchmark``: the architectures looked up in ``cfg.benchmark``'s table."""
    table = load_benchmark(cfg.benchmark, space)
    accs = table.lookup_many(archs, cfg.benchmark.metric)
    # a table has >= 2 rows (num_archs); a few extra architectures scored later may be fewer
    _, accs = check_pairs(space, archs, accs, min_pairs=min(2, len(archs)),
                          what=f"ground truth from {cfg.benchmark.path!r}",
                          accuracy_scale=cfg.accuracy_scale, scale_key="ground_truth.accuracy_scale")
    rows = []
    for arch, acc in zip(archs, accs):
        cost = space.cost(arch, input_shape, num_classes)
        rows.append(dict(arch=space.to_string(arch), accuracy=float(acc), flops_m=cost.flops_m,
                         params_m=cost.params_m, source=f"benchmark:{cfg.benchmark.metric}", seconds=0.0))
    return pd.DataFrame(rows, columns=COLUMNS)


def ground_truth_fingerprint(
    space: SearchSpace,
    cfg: GroundTruthConfig,
    seed: int,
    archs: Sequence[Arch],
    splits: ImageSplits,
    supernet: SuperNet,
) -> dict[str, Any]:
    """The fingerprint record of a fine-tuned ground truth: space, settings, seed, the
    architectures, the splits' fingerprint and a hash of the SuperNet's weights."""
    return record({
        "stage": "ground_truth", "space": space.name, "options": space.options(), "config": to_dict(cfg),
        "seed": seed, "archs": fingerprint([space.to_string(a) for a in archs]),
        "inputs": {"image_splits": splits.fingerprint()["fingerprint"], "supernet_weights": content_fingerprint(supernet.state_dict())},
    })


def log_arch_metrics(i: int, accuracy: float, seconds: float) -> None:
    """One architecture's values, step = architecture number (not a summary: see summarize())."""
    tracking.log_metrics({"ground_truth/arch_accuracy": accuracy, "ground_truth/arch_seconds": seconds}, step=i + 1)


def log_pair_metrics(pairs: pd.DataFrame) -> None:
    """The per-architecture metrics of a finished table (a distributed map logs them once, here)."""
    for i, (acc, seconds) in enumerate(zip(pairs["accuracy"], pairs["seconds"])):
        log_arch_metrics(i, acc, seconds)


def summarize(pairs: pd.DataFrame) -> dict[str, Any]:
    """Summary of an ``arch_accuracy_pairs`` table: count, accuracy mean / best / worst, the best
    architecture and the total fine-tuning seconds."""
    best = int(pairs["accuracy"].to_numpy().argmax())
    return {
        "count": int(len(pairs)),
        "accuracy_mean": float(pairs["accuracy"].mean()),
        "accuracy_best": float(pairs["accuracy"].iloc[best]),
        "accuracy_worst": float(pairs["accuracy"].min()),
        "best_arch": str(pairs["arch"].iloc[best]),
        "seconds_total": float(pairs["seconds"].sum()),
    }


#: The summary values logged as MLflow metrics (``ground_truth/<name>``), once per table.
SUMMARY_METRICS = ("count", "accuracy_mean", "accuracy_best", "accuracy_worst", "seconds_total")
