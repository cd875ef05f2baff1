"""Evaluation from scratch (paper step 5): train the found architecture and score it on test.

The search's ``final_genotype`` is checked against the configured space, its stand-alone
network (``space.build_network``) is trained from random weights on the train split, and
its accuracy is measured on the test split (and on the valid split). Optionally the
architecture is looked up in a NAS-benchmark table (its published accuracy and rank).

Everything that can be wrong with the input (a genotype of another space or skeleton, a
malformed genotype, drop-path on a network without cells, a benchmark table without the
architecture) is rejected by :func:`prepare_evaluation` before any training.

Defaults of :class:`EvaluationConfig` are the paper's: 600 epochs (step 5) with cutout
(Table 3 lists "+ cutout"); the rest of the recipe follows NAS-Bench-201's training of its
cells (SGD lr 0.1, Nesterov momentum 0.9, weight decay 5e-4, batch 256, cosine to 0).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn

import wpnas
from wpnas import distributed, tracking
from wpnas.config import describe_device, json_ready, rng_state, set_rng_state, to_dict
from wpnas.data.batching import AugmentConfig, DeviceBatches
from wpnas.data.splits import ImageSplits
from wpnas.data.streaming import StreamedFolder, StreamedFolderConfig
from wpnas.errors import ArchitectureError, CheckpointError, ConfigError, DataError
from wpnas.fingerprint import record
from wpnas.io.lineage import LINEAGE, evaluation_lineage
from wpnas.io.stage_checkpoint import CheckpointPolicy
from wpnas.io.torchscript import TorchScriptExport
from wpnas.nasbench import BenchmarkConfig, load_benchmark
from wpnas.seeds import fixed_seed, stream_seed
from wpnas.spaces import get_space
from wpnas.spaces.base import Arch, SearchSpace
from wpnas.train.engine import Engine, EngineConfig, Trainer, evaluate, train_epochs
from wpnas.train.fast import fast_fixed_network
from wpnas.train.optim import OptimConfig
from wpnas.train.stage import EpochLoop, StageRunner

logger = logging.getLogger(__name__)

#: ``kind`` of the ``final_model`` checkpoint.
FINAL_MODEL_KIND = "final_model"
#: Keys a genotype must have.
GENOTYPE_KEYS = ("space", "arch", "choices")


@dataclass(frozen=True)
class EvaluationConfig:
    """Settings of training from scratch (``evaluation:`` in the parameters).

    drop_path:     DARTS-style drop-path on the non-identity edges of every cell (training
                   only). As in DARTS the probability is the same in every cell and rises
                   linearly over the epochs, from 0 in the first to ``drop_path`` in the
                   last. Needs a network with cells (both NATS spaces have them); a
                   network without ``drop_path_prob`` is refused before training.
    valid_every:   valid-split accuracy every this many epochs (0: only after training).
    test_limit:    score on a class-balanced subset of this many test images (null: all).
    export:        ``torchscript``: also write a traced module that runs without wpnas.
    benchmark:     optional table to look the architecture up in; ``rank_metric`` is the
                   column (default ``benchmark.metric``) whose accuracy and rank are reported.
    network:       options of the trained network when it differs from the searched one
                   (``space.build_evaluation_network``; e.g. DARTS ``{C: 36, layers: 20,
                   auxiliary: true}``); empty: the search skeleton. Checked before training.
    auxiliary_weight: weight of the auxiliary head's loss for networks that have one
                   (DARTS: 0.4); ignored otherwise.
    repeats:       training runs with seeds seed, seed + 1, ... (the paper reports the mean of 3
                   on CIFAR-10); the metrics are the means, ``*_accuracy_std`` and ``runs``; the
                   saved model is the first run's. Under torch.distributed the runs are a map
                   sharded over the ranks (each trains alone) instead of one data-parallel run.
    data:          null: train on ``image_splits`` (device-resident, the search's data). Or an
                   image folder streamed from disk with the standard ImageNet transforms
                   (:class:`~wpnas.data.streaming.StreamedFolderConfig`: root, train_dir,
                   test_dir, image_size, resize, workers), e.g. ImageNet for a MobileNet
                   found on CIFAR-10; its classes set the classifier size.
    """

    epochs: int = 600
    batch_size: int = 256
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.1, lr_min=0.0))
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(crop_padding=4, flip=True, cutout=16))
    engine: EngineConfig = field(default_factory=EngineConfig)
    label_smoothing: float = 0.0
    drop_path: float = 0.0
    valid_every: int = 10
    eval_batch_size: int = 512
    test_limit: int | None = None
    export: Literal["torchscript", "none"] = "torchscript"
    benchmark: BenchmarkConfig | None = None
    rank_metric: str | None = None
    network: dict[str, Any] = field(default_factory=dict)
    auxiliary_weight: float = 0.0
    repeats: int = 1
    data: StreamedFolderConfig | None = None

    def __post_init__(self) -> None:
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise ConfigError(f"evaluation.repeats: {self.repeats!r} must be an integer >= 1 (training runs)")
        if not self.auxiliary_weight >= 0.0:
            raise ConfigError(f"evaluation.auxiliary_weight: {self.auxiliary_weight} must be >= 0")
        if self.epochs < 1:
            raise ConfigError(f"evaluation.epochs: {self.epochs} must be >= 1")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError(
                f"evaluation.batch_size / eval_batch_size: {self.batch_size} / {self.eval_batch_size} must be >= 1"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"evaluation.label_smoothing: {self.label_smoothing} must be in [0, 1)")
        if not 0.0 <= self.drop_path < 1.0:
            raise ConfigError(f"evaluation.drop_path: {self.drop_path} must be in [0, 1)")
        if self.valid_every < 0:
            raise ConfigError(f"evaluation.valid_every: {self.valid_every} must be >= 0")
        if self.test_limit is not None and self.test_limit < 1:
            raise ConfigError(f"evaluation.test_limit: {self.test_limit} must be >= 1 or null")
        if self.rank_metric is not None and self.benchmark is None:
            raise ConfigError(
                f"evaluation.rank_metric: {self.rank_metric!r} needs evaluation.benchmark (the table to rank in)"
            )

    @property
    def ranked_benchmark(self) -> BenchmarkConfig | None:
        """The benchmark config whose metric is the one reported (``rank_metric`` or its own)."""
        if self.benchmark is None:
            return None
        if self.rank_metric is None or self.rank_metric == self.benchmark.metric:
            return self.benchmark
        return dataclasses.replace(self.benchmark, metric=self.rank_metric)


EvaluationData = ImageSplits | StreamedFolder
"""What training from scratch reads: the search's splits, or a streamed image folder."""


def evaluation_data(splits: ImageSplits | None, cfg: EvaluationConfig) -> EvaluationData:
    """The data step 5 trains on: ``cfg.data`` (listed and checked now) or ``splits``."""
    if cfg.data is not None:
        return StreamedFolder(cfg.data)
    if splits is None:
        raise DataError("evaluation needs image_splits when evaluation.data is null")
    return splits


def _batches(data: EvaluationData, split: str, device: torch.device, batch_size: int, train: bool,
             augment: Any = None, seed: int = 0, channels_last: bool = False, limit: int | None = None) -> Any:
    if isinstance(data, StreamedFolder):  # the folder's own (ImageNet) augmentation
        return data.batches(split, device, batch_size, train, seed=seed, channels_last=channels_last, limit=limit)
    return DeviceBatches.from_splits(data, split, device, batch_size, train=train, augment=augment, seed=seed,
                                     channels_last=channels_last, limit=limit)


def _split_size(data: EvaluationData, split: str) -> int:
    return data.size(split) if isinstance(data, StreamedFolder) else int(data.split(split)[0].shape[0])


@dataclass
class EvaluationResult:
    """What :func:`evaluate_genotype` produces: the ``evaluation_metrics`` dict, the
    ``final_model`` checkpoint, the trained network (eval mode, on the training device),
    its TorchScript export and the per-epoch history."""

    metrics: dict[str, Any]
    checkpoint: dict[str, Any]
    network: nn.Module
    export: TorchScriptExport
    history: list[dict[str, float]]


@dataclass(frozen=True)
class PreparedEvaluation:
    """Everything checked before training: the architecture and its benchmark entry."""

    arch: Arch
    benchmark: dict[str, Any]


# -- checks before training ------------------------------------------------------------------
def read_genotype(genotype: Mapping[str, Any], space: SearchSpace) -> Arch:
    """The architecture of a ``final_genotype`` dict, checked against ``space``.

    Raises ``DataError`` (not a genotype / missing keys), ``ConfigError`` (another space, or
    the same space with other options) or ``ArchitectureError`` (the arch string does not
    parse, or the choices disagree with it).
    """
    if not isinstance(genotype, Mapping):
        raise DataError(f"final_genotype: expected a JSON object (dict), got {type(genotype).__name__}")
    missing = [k for k in GENOTYPE_KEYS if k not in genotype]
    if missing:
        raise DataError(
            f"final_genotype: missing key(s) {missing}; a genotype needs {list(GENOTYPE_KEYS)} "
            f"(it has {sorted(genotype)}); is this the search's final_genotype.json?"
        )
    if genotype["space"] != space.name:
        raise ConfigError(
            f"final_genotype is from space {genotype['space']!r} but space.name is {space.name!r}; "
            f"set space.name to {genotype['space']!r} (with the search's options) or evaluate a {space.name} genotype"
        )
    options = genotype.get("options")
    if options is not None:
        recorded = json_ready(options)
        ours = json_ready(space.options())
        if recorded != ours:
            differ = sorted(k for k in set(recorded) | set(ours) if recorded.get(k) != ours.get(k))
            detail = ", ".join(f"{k}: genotype {recorded.get(k)!r} vs space {ours.get(k)!r}" for k in differ)
            raise ConfigError(
                f"final_genotype was searched in {space.name} with options {recorded}, but space.options."
                f"{space.name} gives {ours} ({detail}); use the search's options"
            )
    text = genotype["arch"]
    if not isinstance(text, str):
        raise ArchitectureError(f"final_genotype.arch: expected the architecture string, got {text!r}")
    try:
        arch = space.from_string(text)
    except ArchitectureError as err:
        raise ArchitectureError(f"final_genotype.arch: {err}") from None
    choices = genotype["choices"]
    try:
        same = [int(c) for c in choices] == list(arch)
    except (TypeError, ValueError):
        same = False
    if not same:
        raise ArchitectureError(
            f"final_genotype.choices {choices!r} disagree with its arch {text!r}, whose choices are {list(arch)}"
        )
    return arch


def check_drop_path(space: SearchSpace, cfg: EvaluationConfig, in_channels: int = 3, num_classes: int = 10) -> None:
    """Refuse ``drop_path > 0`` for a space whose stand-alone network has no drop-path."""
    if cfg.drop_path <= 0.0:
        return
    with torch.device("meta"):
        net = space.build_evaluation_network(space.arch_from_index(0), in_channels, num_classes, cfg.network)
    if not hasattr(net, "drop_path_prob"):
        raise ConfigError(
            f"evaluation.drop_path: {cfg.drop_path} but {space.name}'s network ({type(net).__name__}) has no "
            "cells to drop paths in; set evaluation.drop_path to 0"
        )


def benchmark_entry(space: SearchSpace, arch: Arch, benchmark: BenchmarkConfig | None) -> dict[str, Any]:
    """``benchmark_*`` fields of ``arch`` in the table (empty without a benchmark).

    Rank 1 is the best of the rows that have a value; ``benchmark_size`` counts them.
    """
    if benchmark is None:
        return {}
    table = load_benchmark(benchmark, space)
    if arch not in table:
        raise DataError(
            f"benchmark table {benchmark.path!r} ({len(table)} rows) does not contain the found architecture "
            f"{space.to_string(arch)!r}; point evaluation.benchmark at the table of this space and skeleton, "
            "or set it to null"
        )
    values = table.values(benchmark.metric)
    return {
        "benchmark_metric": benchmark.metric,
        "benchmark_accuracy": table.lookup(arch, benchmark.metric),
        "benchmark_rank": table.rank(arch, benchmark.metric),
        "benchmark_size": int(np.count_nonzero(~np.isnan(values))),
        "benchmark_path": str(benchmark.path),
    }


def prepare_evaluation(
    genotype: Mapping[str, Any], space: SearchSpace, splits: EvaluationData, cfg: EvaluationConfig
) -> PreparedEvaluation:
    """Every check that needs no training: genotype, data, drop-path support, benchmark lookup."""
    arch = read_genotype(genotype, space)
    for name in ("train", "test"):
        if _split_size(splits, name) == 0:
            raise DataError(f"evaluation needs a non-empty {name} split; {splits.source} has none")
    space.check_evaluation_options(cfg.network)
    check_drop_path(space, cfg, splits.in_channels, splits.num_classes)
    return PreparedEvaluation(arch, benchmark_entry(space, arch, cfg.ranked_benchmark))


# -- training ----------------------------------------------------------------------------------
def train_from_scratch(
    space: SearchSpace,
    arch: Arch,
    splits: EvaluationData,
    cfg: EvaluationConfig,
    device: torch.device | str = "cpu",
    seed: int = 0,
    checkpoint: CheckpointPolicy | None = None,
    data_parallel: bool = True,
    metric_prefix: str = "evaluation/",
) -> tuple[nn.Module, list[dict[str, float]], dict[str, float]]:
    """Train ``space.build_evaluation_network(arch, ..., cfg.network)`` from random weights on the train split.

    ``checkpoint`` writes the training state every ``checkpoint.every`` epochs to
    ``<folder>/evaluation-<fingerprint>.pt`` (the fingerprint of the architecture, the
    splits, the settings and the seed) and, with ``checkpoint.resume``, continues a killed
    run from it on the same schedule; the file is removed at the end.

    Returns (network in eval mode, per-epoch history, final scores). Per-epoch metrics
    go to MLflow as ``evaluation/*``; scores are ``test_accuracy``, ``test_loss`` and,
    when the valid split is not empty, ``valid_accuracy``, ``valid_loss``.

    In a world of several ranks the network trains data parallel (DDP), unless
    ``data_parallel`` is false: then this rank trains its own network alone (one item of a
    map over evaluation runs).
    """
    arch = space.validate(arch)
    world = distributed.current()
    parallel = world.active and data_parallel
    writes = world.is_main or not parallel  # a rank alone writes its own run's checkpoint
    if parallel:
        distributed.check_divisible(cfg.batch_size, world.size, "evaluation.batch_size")
    engine = Engine(device, cfg.engine)
    torch.manual_seed(stream_seed(seed, "evaluation.init"))
    net = engine.prepare(space.build_evaluation_network(arch, splits.in_channels, splits.num_classes, cfg.network))
    check_drop_path(space, cfg, splits.in_channels, splits.num_classes)
    train = _batches(splits, "train", engine.device, cfg.batch_size, train=True, augment=cfg.augment,
                     seed=stream_seed(seed, "evaluation.batches"), channels_last=engine.channels_last)
    model, train_batches = _training_model(net, train, splits, cfg, engine, seed, world if parallel else None)
    valid = None
    if _split_size(splits, "valid"):
        valid = _batches(splits, "valid", engine.device, cfg.eval_batch_size, train=False,
                         channels_last=engine.channels_last)
    test = _batches(splits, "test", engine.device, cfg.eval_batch_size, train=False,
                    channels_last=engine.channels_last, limit=cfg.test_limit,
                    seed=stream_seed(seed, "evaluation.batches"))
    trainer = Trainer(net.parameters(), cfg.optim, cfg.epochs * len(train), engine,
                      label_smoothing=cfg.label_smoothing, auxiliary_weight=cfg.auxiliary_weight)
    produced = record({
        "stage": "evaluation", "space": space.name, "options": space.options(), "arch": space.to_string(arch),
        "config": to_dict(cfg), "seed": seed, "inputs": {"image_splits": splits.fingerprint()["fingerprint"]},
    })
    runner = StageRunner("evaluation", produced["fingerprint"], checkpoint, cfg.epochs, writes=writes)
    state = runner.load()
    start_epoch, past = 0, []
    if state is not None:
        net.load_state_dict(state["state_dict"])
        trainer.load_state_dict(state["trainer"])
        train.generator.set_state(state["batch_generator"])
        set_rng_state(state["rng"])
        start_epoch, past = int(state["epoch"]), list(state["history"])
        runner.log_resume(start_epoch)

    def set_drop_path(epoch: int) -> None:  # DARTS: p * epoch / epochs, epoch counted from 0
        if cfg.drop_path > 0.0:
            net.drop_path_prob = cfg.drop_path * epoch / max(cfg.epochs - 1, 1)

    def on_epoch_end(epoch: int, metrics: dict[str, float]) -> dict[str, float]:
        out = {"drop_path": float(getattr(net, "drop_path_prob", 0.0))}
        done = epoch + 1
        if valid is not None and cfg.valid_every and (done % cfg.valid_every == 0 or done == cfg.epochs):
            net.eval()
            scores = evaluate(net, valid, engine)
            out.update(valid_loss=scores["loss"], valid_acc=scores["acc"])
        set_drop_path(done)
        return out

    def snapshot(done: int, hist: list[dict[str, float]]) -> dict[str, Any]:
        return {"state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                "trainer": trainer.state_dict(), "batch_generator": train.generator.get_state(),
                "rng": rng_state(), "epoch": done, "history": hist}

    set_drop_path(start_epoch)
    loop = EpochLoop("evaluation", metric_prefix, runner, lambda done, new: snapshot(done, past + new))
    history = past + train_epochs(trainer, train_batches, cfg.epochs, lambda: model, loop, start_epoch, [net],
                                  on_epoch_end)
    runner.finish(lambda: snapshot(cfg.epochs, history))
    net.eval()
    scores = evaluate(net, test, engine)
    final = {"test_accuracy": scores["acc"], "test_loss": scores["loss"], "test_images": test.num_images}
    if valid is not None:
        scores = evaluate(net, valid, engine)
        final.update(valid_accuracy=scores["acc"], valid_loss=scores["loss"])
    return net, history, final


def _training_model(net: nn.Module, train: Any, splits: EvaluationData, cfg: EvaluationConfig, engine: Engine,
                    seed: int, world: distributed.World | None) -> tuple[nn.Module, Any]:
    """What the epochs run and on what: in a data-parallel ``world``, DDP on this rank's share of
    every global batch (every rank draws the same seeded batches); alone, the network (compiled
    on CUDA: :func:`~wpnas.train.fast.fast_fixed_network`) on the batches."""
    if world is not None:
        model = distributed.data_parallel(net, engine.device)
        # drop-path masks are drawn per image from the global torch generator: a stream per
        # rank, or every rank would drop the same positions of its share
        torch.manual_seed(stream_seed(seed, "evaluation.drop_path") + world.rank)
        return model, distributed.ShardedBatches(train, world)
    refuse = (f"evaluation.drop_path is {cfg.drop_path}: drop-path draws random masks, which compiled "
              "code draws differently") if cfg.drop_path > 0 else None
    model = fast_fixed_network(
        net, engine, lambda: next(iter(_batches(splits, "train", engine.device, cfg.batch_size, train=False,
                                                channels_last=engine.channels_last))),
        "evaluation", refuse=refuse)
    return model, train


# -- artifacts ---------------------------------------------------------------------------------
def model_metadata(space: SearchSpace, arch: Arch, splits: EvaluationData) -> dict[str, Any]:
    """What a user of the exported model needs: architecture, input format, classes."""
    return {
        "space": space.name,
        "options": json_ready(space.options()),
        "arch": space.to_string(arch),
        "choices": [int(a) for a in arch],
        "input_shape": [int(s) for s in splits.input_shape],
        "num_classes": int(splits.num_classes),
        "classes": [str(c) for c in splits.classes],
        "mean": [float(m) for m in splits.mean],
        "std": [float(s) for s in splits.std],
        "input": "float32 NCHW, pixels scaled to [0, 1] then (x - mean) / std per channel; output: logits"
                 + (f"; images resized (shorter side {splits.cfg.resize}) and centre-cropped to "
                    f"{splits.cfg.image_size}" if isinstance(splits, StreamedFolder) else ""),
        "wpnas_version": wpnas.__version__,
    }


def export_torchscript(network: nn.Module, metadata: Mapping[str, Any]) -> TorchScriptExport:
    """Trace a CPU float32 copy of ``network`` in eval mode; the trace is checked on a second batch size."""
    net = copy.deepcopy(network).to("cpu", dtype=torch.float32).to(memory_format=torch.contiguous_format).eval()
    shape = tuple(metadata["input_shape"])
    generator = torch.Generator().manual_seed(fixed_seed("export.probe"))
    example = torch.randn((2, *shape), generator=generator)
    probe = torch.randn((3, *shape), generator=generator)
    with torch.no_grad(), warnings.catch_warnings():
        # The network's Python shape checks become constants of the trace: expected, the
        # exported model serves this input shape only (any batch size).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.trace.* is deprecated", category=FutureWarning)
        traced = torch.jit.trace(net, example, check_trace=False)
        if not torch.allclose(traced(probe), net(probe), rtol=1e-4, atol=1e-5):
            raise CheckpointError(f"the TorchScript trace of {metadata.get('arch')!r} does not reproduce the network")
    return TorchScriptExport(traced, dict(metadata))


def final_model_checkpoint(
    space: SearchSpace,
    arch: Arch,
    network: nn.Module,
    splits: EvaluationData,
    cfg: EvaluationConfig,
    genotype: Mapping[str, Any],
    metrics: Mapping[str, Any],
    history: list[dict[str, float]],
    seed: int,
) -> dict[str, Any]:
    """The ``final_model`` checkpoint: CPU state dict, genotype, space options, input format."""
    meta = model_metadata(space, arch, splits)
    return {
        "kind": FINAL_MODEL_KIND,
        **meta,
        "in_channels": int(splits.in_channels),
        "state_dict": {k: v.detach().to("cpu").contiguous() for k, v in network.state_dict().items()},
        "genotype": json_ready(dict(genotype)),
        "config": to_dict(cfg),
        "seed": int(seed),
        "metrics": dict(metrics),
        "history": [dict(h) for h in history],
    }


def load_final_model(checkpoint: Mapping[str, Any], device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild the trained network of a ``final_model`` checkpoint (eval mode)."""
    if not isinstance(checkpoint, Mapping) or checkpoint.get("kind") != FINAL_MODEL_KIND:
        kind = checkpoint.get("kind") if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
        raise CheckpointError(f"expected a {FINAL_MODEL_KIND!r} checkpoint, got kind {kind!r}")
    space = get_space(checkpoint["space"], checkpoint["options"])
    arch = space.from_string(checkpoint["arch"])
    options = (checkpoint.get("config") or {}).get("network") or {}
    net = space.build_evaluation_network(arch, int(checkpoint["in_channels"]), int(checkpoint["num_classes"]),
                                         options)
    try:
        net.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(f"final_model state dict does not fit {checkpoint['arch']!r}: {err}") from None
    return net.to(device).eval()


# -- the whole step ----------------------------------------------------------------------------
def evaluate_genotype(
    genotype: Mapping[str, Any],
    space: SearchSpace,
    splits: EvaluationData,
    cfg: EvaluationConfig,
    device: torch.device | str = "cpu",
    seed: int = 0,
    checkpoint: CheckpointPolicy | None = None,
) -> EvaluationResult:
    """Paper step 5: check the inputs, train the genotype from scratch, score and export it
    (``checkpoint``: see :func:`train_from_scratch`)."""
    prepared = prepare_evaluation(genotype, space, splits, cfg)
    arch = prepared.arch
    text = space.to_string(arch)
    logger.info("evaluation: training %s from scratch for %d epochs%s", text, cfg.epochs,
                f", {cfg.repeats} runs (seeds {seed}..{seed + cfg.repeats - 1})" if cfg.repeats > 1 else "")
    started = time.monotonic()
    if cfg.repeats == 1:
        net, history, scores = train_from_scratch(space, arch, splits, cfg, device, seed, checkpoint)
    else:
        net, history, scores = _repeated_runs(space, arch, splits, cfg, device, seed, checkpoint)
    cost = space.evaluation_cost(arch, splits.input_shape, splits.num_classes, cfg.network)
    metrics: dict[str, Any] = {
        "space": space.name,
        "arch": text,
        **scores,
        "train_accuracy": history[-1]["train_acc"],
        "params_m": float(cost.params_m),
        "flops_m": float(cost.flops_m),
        "epochs": cfg.epochs,
        "wall_seconds": time.monotonic() - started,
        "device": describe_device(torch.device(device)),
        "seed": int(seed),
        **prepared.benchmark,
        LINEAGE: evaluation_lineage(genotype),  # the report checks it trained the genotype it shows
    }
    export = model_export(net, space, arch, splits, cfg)
    log_evaluation(metrics, export)
    checkpoint = final_model_checkpoint(space, arch, net, splits, cfg, genotype, metrics, history, seed)
    return EvaluationResult(metrics, checkpoint, net, export, history)


def _repeated_runs(
    space: SearchSpace, arch: Arch, splits: EvaluationData, cfg: EvaluationConfig, device: torch.device | str,
    seed: int, checkpoint: CheckpointPolicy | None,
) -> tuple[nn.Module, list[dict[str, float]], dict[str, Any]]:
    """``cfg.repeats`` trainings from scratch with seeds ``seed``, ``seed + 1``, ... (the paper
    reports the mean of 3 on CIFAR-10): a map over the runs, sharded over the ranks of a
    world (each rank trains its runs alone). Returns the first run's network and history and
    the scores: means over the runs, their standard deviations and the per-run values."""
    world = distributed.current()
    if world.active:
        distributed.check_work(cfg.repeats, world.size, "evaluation runs (evaluation.repeats)")

    def one(_: int, run_seed: int) -> dict[str, Any]:
        net, history, scores = train_from_scratch(space, arch, splits, cfg, device, run_seed, checkpoint,
                                                  data_parallel=False,
                                                  metric_prefix=f"evaluation/seed{run_seed}/")
        return {"seed": run_seed, "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                "history": history, "scores": scores}

    runs = distributed.map_items(one, [seed + r for r in range(cfg.repeats)])
    net = space.build_evaluation_network(arch, splits.in_channels, splits.num_classes, cfg.network)
    net.load_state_dict(runs[0]["state_dict"])
    net = Engine(device, cfg.engine).prepare(net).eval()
    scores: dict[str, Any] = {}
    for key in runs[0]["scores"]:
        values = np.asarray([run["scores"][key] for run in runs], dtype=np.float64)
        scores[key] = float(values.mean()) if key != "test_images" else int(values[0])
        if key.endswith("_accuracy"):
            scores[f"{key}_std"] = float(values.std(ddof=1))
    scores["runs"] = [{"seed": run["seed"], **run["scores"]} for run in runs]
    return net, runs[0]["history"], scores


def model_export(net: nn.Module, space: SearchSpace, arch: Arch, splits: EvaluationData,
                 cfg: EvaluationConfig) -> TorchScriptExport:
    """The TorchScript export of the trained network (``export: none``: metadata only)."""
    if cfg.export == "torchscript":
        return export_torchscript(net, model_metadata(space, arch, splits))
    return TorchScriptExport(None, model_metadata(space, arch, splits))


def log_evaluation(metrics: Mapping[str, Any], export: TorchScriptExport | None = None) -> None:
    """The final scores of an evaluation to the active MLflow run (``evaluation/*``), and the
    traced network as the run's MLflow model (when there is one: ``export: torchscript``)."""
    if export is not None and export.module is not None:
        uri = tracking.log_model(export.module, export.metadata["input_shape"], metadata={
            k: export.metadata.get(k) for k in ("space", "arch", "num_classes", "wpnas_version")})
        if uri:
            logger.info("evaluation: trained network logged to MLflow as %s", uri)
    tracking.log_metrics({k: v for k, v in metrics.items()
                          if k in ("test_accuracy", "test_loss", "valid_accuracy", "valid_loss", "params_m",
                                   "flops_m", "wall_seconds", "benchmark_accuracy", "benchmark_rank",
                                   "test_accuracy_std", "valid_accuracy_std")},
                         prefix="evaluation/")
