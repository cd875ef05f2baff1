"""WarmUp (paper step 1): train SuperNet weights with uniform single-path sampling.

Only weights are updated; every batch trains one architecture drawn uniformly from the
space (SPOS-style). A fixed, seeded probe set of architectures is evaluated on the valid
split each ``probe_every`` epochs with inherited weights (after BN recalibration), so the
MLflow run shows whether the SuperNet is learning to rank anything at all.

With ``landmark.enabled`` and ground-truth pairs, a landmark ranking term
(:mod:`wpnas.train.landmark`, Yu et al. CVPR 2021) is added on the training batch of the
due steps.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from wpnas import distributed
from wpnas.config import rng_state, set_rng_state, to_dict
from wpnas.data.batching import AugmentConfig, DeviceBatches, warn_oversize_batch
from wpnas.data.splits import ImageSplits
from wpnas.errors import CheckpointError, ConfigError
from wpnas.fingerprint import check_fingerprint, content_fingerprint, record
from wpnas.io.stage_checkpoint import CheckpointPolicy
from wpnas.io.supernet_checkpoint import check_checkpoint, make_checkpoint
from wpnas.spaces.supernet import SuperNet
from wpnas.spaces.base import SearchSpace
from wpnas.train.engine import Engine, EngineConfig, Trainer, train_epochs
from wpnas.train.fast import LANDMARK_REFUSAL, first_batch, graph_candidate_ops
from wpnas.train.evaluation import evaluate_many
from wpnas.train.landmark import LandmarkConfig, LandmarkRegularizer
from wpnas.train.optim import OptimConfig
from wpnas.train.stage import EpochLoop, StageRunner
from wpnas.seeds import stream_seed

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WarmupConfig:
    """Paper: 200 epochs, SGD, cosine 0.1 -> 0.01."""

    epochs: int = 200
    batch_size: int = 128
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.1, lr_min=0.01))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    probe_archs: int = 8
    probe_every: int = 1
    probe_valid_limit: int | None = 2000
    calib_batches: int = 4
    eval_batch_size: int = 512
    landmark: LandmarkConfig = field(default_factory=LandmarkConfig)

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"warmup.epochs: {self.epochs} must be >= 1")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError("warmup.batch_size and eval_batch_size must be >= 1")
        if self.probe_archs < 0 or self.probe_every < 0 or self.calib_batches < 0:
            raise ConfigError("warmup.probe_archs, probe_every and calib_batches must be >= 0")


def initial_supernet(space: SearchSpace, in_channels: int, num_classes: int, seed: int) -> SuperNet:
    """The SuperNet WarmUp starts from: initial weights drawn from the ``warmup.init`` stream of ``seed``
    (torch's global generator is left as it was), so the same seed gives the same weights in any process."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, "warmup.init"))
        return space.build_supernet(in_channels, num_classes)


def probe_architectures(space: SearchSpace, count: int, seed: int) -> list[tuple[int, ...]]:
    """The fixed probe set: the same ``count`` architectures for a given seed."""
    if count == 0:
        return []
    return space.sample_unique(np.random.default_rng(stream_seed(seed, "warmup.probes")), count)


def warmup_supernet(
    space: SearchSpace,
    splits: ImageSplits,
    cfg: WarmupConfig,
    device: torch.device,
    seed: int = 0,
    resume: dict[str, Any] | None = None,
    landmarks: pd.DataFrame | None = None,
    checkpoint: CheckpointPolicy | None = None,
) -> dict[str, Any]:
    """Run WarmUp and return the ``warmed_supernet`` checkpoint dict.

    ``checkpoint`` writes the state every ``checkpoint.every`` epochs to
    ``<folder>/warmup-<fingerprint>.pt`` (the fingerprint of the splits, space, settings,
    seed and ``resume``), and, with ``checkpoint.resume``, continues from that file when a
    killed run left one: the same schedule, so the result equals an uninterrupted run's.
    The file is removed when the warm-up finishes. The returned checkpoint records its
    ``fingerprint`` and its ``inputs`` (the splits' fingerprint record).

    ``resume`` continues an earlier warm-up checkpoint of the same space and splits (weights,
    optimizer, scheduler, epoch and RNG states) up to ``cfg.epochs``. A checkpoint planned
    for another number of epochs (a finished run extended) continues on a new cosine
    schedule over ``cfg.epochs``, from the step it reached; this is logged. ``landmarks``
    (ground-truth ``arch``/``accuracy`` pairs) are required when ``cfg.landmark.enabled``
    and ignored otherwise.
    """
    return WarmupRun(space, splits, cfg, device, seed, resume, landmarks, checkpoint).run()


class WarmupRun:
    """One WarmUp (see :func:`warmup_supernet`): construction builds and checks everything and
    resumes; :meth:`run` trains the epochs left and returns the ``warmed_supernet`` checkpoint."""

    def __init__(self, space: SearchSpace, splits: ImageSplits, cfg: WarmupConfig, device: torch.device, seed: int = 0,
                 resume: dict[str, Any] | None = None, landmarks: pd.DataFrame | None = None,
                 checkpoint: CheckpointPolicy | None = None) -> None:
        self.space, self.splits, self.cfg, self.device, self.seed = space, splits, cfg, device, seed
        world = distributed.current()
        if world.active:
            # Data parallel: every rank samples the same path per step (same seeded stream) and
            # trains on its share of the same global batch; DDP averages the gradients.
            distributed.check_divisible(cfg.batch_size, world.size, "warmup.batch_size")
        self.regularizer = regularizer = _landmark_regularizer(space, cfg.landmark, landmarks, seed)
        self.engine = engine = Engine(device, cfg.engine)
        self.supernet: SuperNet = engine.prepare(initial_supernet(space, splits.in_channels, splits.num_classes, seed))
        warn_oversize_batch("warmup.batch_size", cfg.batch_size, splits.train_x.shape[0], "train")
        self.train = DeviceBatches.from_splits(
            splits, "train", device, cfg.batch_size, train=True, augment=cfg.augment, seed=seed,
            channels_last=engine.channels_last,
        )
        self.model = distributed.data_parallel(self.supernet, device) if world.active else self.supernet
        self.train_batches: Any = distributed.ShardedBatches(self.train, world) if world.active else self.train
        self.valid = DeviceBatches.from_splits(
            splits, "valid", device, cfg.eval_batch_size, train=False, seed=seed,
            channels_last=engine.channels_last, limit=cfg.probe_valid_limit,
        )
        self.trainer = Trainer(self.supernet.parameters(), cfg.optim, cfg.epochs * len(self.train), engine)
        if world.active:
            self.trainer.data_parallel = self.model  # landmark steps: no_sync, averaged by hand
        if regularizer is not None:
            regularizer.schedule(cfg.epochs * len(self.train))
        self.splits_record = splits.fingerprint()
        self.produced = warmup_fingerprint(self.supernet, self.splits_record, cfg, seed, resume,
                                           landmarks if regularizer else None)
        self.stage = StageRunner("warmup", self.produced["fingerprint"], checkpoint, cfg.epochs,
                                 writes=world.is_main, label="warm-up")
        in_progress = self.stage.load()
        self.rng = np.random.default_rng(seed)  # the path sampler
        self.epoch, self.history, self.elapsed = 0, [], 0.0
        self.here = {"size": world.size, "backend": world.backend or "none"}
        self.worlds = [{**self.here, "from_epoch": 0}]  # the world of each stretch of epochs
        if in_progress is not None:
            self._resume(in_progress, f"in-progress checkpoint {str(self.stage.store.path)!r}")
            self.stage.log_resume(self.epoch)
        elif resume is not None:
            self._resume(resume, "warmup.resume_from checkpoint")
            self._replan()
        self.probes = probe_architectures(space, cfg.probe_archs, seed)
        self.calib_source = DeviceBatches.from_splits(
            splits, "train", device, cfg.batch_size, train=False, shuffle=True, seed=stream_seed(seed, "calibration"),
            channels_last=engine.channels_last,
        )

    def _resume(self, state: dict[str, Any], source: str) -> None:
        """Continue from ``state`` (an in-progress file, or ``warmup.resume_from``): checked, then loaded."""
        check_checkpoint(state, source)
        check_fingerprint(self.splits_record, state.get("inputs", {}).get("image_splits"), source, CheckpointError,
                          hint="the image splits changed since; start a new warm-up")
        self.supernet.check_compatible(state["supernet"], source)
        self.supernet.load_state_dict(state["state_dict"])
        self.trainer.load_state_dict(state["trainer"])
        self.epoch = int(state["epoch"])
        self.history = list(state.get("history", []))
        self.elapsed = float(state.get("seconds", 0.0))
        set_rng_state(state["rng"])
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["sampler_state"]
        self.train.generator.set_state(state["batch_generator"])
        if self.regularizer is not None and state.get("landmark", {}).get("state") is not None:
            self.regularizer.load_state_dict(state["landmark"]["state"])
        self.planned = int(state.get("planned_epochs", self.epoch))
        self.worlds = resumed_worlds(state, self.here, self.epoch)
        if self.worlds[-1]["from_epoch"] == self.epoch and len(self.worlds) > 1 and self.epoch < self.cfg.epochs:
            before = self.worlds[-2]
            logger.warning(
                "warm-up: epochs 1-%d ran on %d process(es) (%s), the rest run on %d (%s): the global batches are "
                "the same, their split over the processes is not, so the result differs from an uninterrupted "
                "run; the checkpoint records both worlds (worlds)", self.epoch, before["size"], before["backend"],
                self.here["size"], self.here["backend"])

    def _replan(self) -> None:
        """After ``warmup.resume_from``: nothing to do, or the same plan, or a new schedule (logged)."""
        cfg, trainer = self.cfg, self.trainer
        if self.epoch >= cfg.epochs:
            logger.info("warm-up checkpoint already has %d >= %d epochs; nothing to do", self.epoch, cfg.epochs)
        elif self.planned != cfg.epochs:
            # Extending (or re-planning) a run: the cosine is laid over the new total, from the
            # step reached. Set the learning rate of the next step now (the optimizer state holds
            # the old schedule's).
            before = trainer.lr
            trainer.restart_schedule()
            logger.info(
                "warm-up: warmup.resume_from continues a run planned for %d epochs (at epoch %d) to %d epochs: "
                "a new cosine schedule over %d epochs from the step reached, lr %.4g -> %.4g for epoch %d "
                "(an uninterrupted %d-epoch run would have had another schedule)",
                self.planned, self.epoch, cfg.epochs, cfg.epochs, before, trainer.lr, self.epoch + 1, cfg.epochs,
            )

    def run(self) -> dict[str, Any]:
        """Train the epochs left; the ``warmed_supernet`` checkpoint (the stage's file finished)."""
        cfg, regularizer = self.cfg, self.regularizer
        self._started = time.monotonic()
        # the fast path of random-path steps: each candidate op replayed as a CUDA graph (GPU only)
        restore_ops = graph_candidate_ops(
            self.supernet, self.engine, lambda: first_batch(self.splits, cfg.batch_size, self.engine), "warm-up",
            refuse=None if regularizer is None else LANDMARK_REFUSAL,
        ) if self.epoch < cfg.epochs else (lambda: None)
        try:
            loop = EpochLoop("warmup", "warmup/", self.stage, lambda done, new: self.snapshot(done, self.history + new))
            self.history += train_epochs(
                self.trainer, self.train_batches, cfg.epochs, self._sample_forward, loop, self.epoch,
                [self.supernet], self._end_epoch,
                None if regularizer is None else lambda step, x, y: regularizer.extra_loss(step, self.supernet, x, y),
            )
        finally:
            restore_ops()
        result = self.snapshot(max(self.epoch, self.history[-1]["epoch"] if self.history else 0), self.history)
        self.stage.finish(lambda: result)
        return result

    def _sample_forward(self):
        arch = tuple(int(self.rng.integers(0, k)) for k in self.space.num_choices)
        return lambda x: self.model(x, arch)

    def _end_epoch(self, epoch: int, metrics: dict[str, float]) -> dict[str, float]:
        extra = {}
        if self.regularizer is not None and (mean := self.regularizer.pop_mean()) is not None:
            extra["landmark_loss"] = mean
        return {**extra, **self._probe_metrics(epoch)}

    def _probe_metrics(self, epoch: int) -> dict[str, float]:
        cfg = self.cfg
        if not self.probes or not cfg.probe_every or (epoch + 1) % cfg.probe_every and epoch + 1 != cfg.epochs:
            return {}
        # the same draw whether resumed or not
        self.calib_source.generator.manual_seed(stream_seed(self.seed, "calibration") + epoch)
        calib = self.calib_source.take(cfg.calib_batches)
        accs = [r["acc"] for r in evaluate_many(self.supernet, self.probes, self.valid, self.engine, calib)]
        return {
            "probe_valid_acc_mean": float(np.mean(accs)),
            "probe_valid_acc_max": float(np.max(accs)),
            "probe_valid_acc_min": float(np.min(accs)),
        }

    def snapshot(self, epoch: int, history: list[dict[str, float]]) -> dict[str, Any]:
        """The warm-up checkpoint after ``epoch`` epochs with ``history``."""
        splits, regularizer = self.splits, self.regularizer
        return make_checkpoint(
            self.supernet,
            stage="warmup",
            epoch=epoch,
            planned_epochs=self.cfg.epochs,
            trainer=self.trainer.state_dict(),
            rng=rng_state(),
            sampler_state=self.rng.bit_generator.state,
            batch_generator=self.train.generator.get_state(),
            config=to_dict(self.cfg),
            seed=self.seed,
            history=history,
            probes=[self.space.to_string(a) for a in self.probes],
            data={"source": splits.source, "input_shape": list(splits.input_shape), "mean": list(splits.mean),
                  "std": list(splits.std), "classes": list(splits.classes)},
            fingerprint=self.produced,
            inputs={"image_splits": self.splits_record},
            seconds=self.elapsed + time.monotonic() - self._started,
            device=str(self.device),
            world=self.here,
            worlds=self.worlds,
            landmark=(
                {"enabled": False, "pairs": 0} if regularizer is None
                else {**regularizer.describe(), "state": regularizer.state_dict()}
            ),
        )


def resumed_worlds(state: dict[str, Any], here: dict[str, Any], start_epoch: int) -> list[dict[str, Any]]:
    """The worlds a resumed warm-up ran on: the checkpoint's (``worlds``, or its one ``world`` for an
    older checkpoint) and, when this one differs from the last, this one from ``start_epoch``."""
    worlds = [dict(w) for w in state.get("worlds") or []]
    if not worlds and isinstance(state.get("world"), dict):
        worlds = [{"size": state["world"].get("size", 1), "backend": state["world"].get("backend", "none"),
                   "from_epoch": 0}]
    if not worlds:
        return [{**here, "from_epoch": 0}]
    last = worlds[-1]
    if (last.get("size"), last.get("backend")) != (here["size"], here["backend"]):
        worlds.append({**here, "from_epoch": start_epoch})
    return worlds


def warmup_fingerprint(
    supernet: SuperNet,
    splits_record: dict[str, Any],
    cfg: WarmupConfig,
    seed: int,
    resume: dict[str, Any] | None,
    landmarks: pd.DataFrame | None,
) -> dict[str, Any]:
    """The fingerprint record of a warm-up: the SuperNet (space, options, channels, classes),
    the splits' fingerprint, every setting, the seed, and the checkpoint it continues and the
    landmark pairs, when given."""
    inputs: dict[str, Any] = {"image_splits": splits_record["fingerprint"]}
    if resume is not None:
        inputs["resume_from"] = (resume.get("fingerprint") or {}).get("fingerprint") or {
            "epoch": resume.get("epoch"), "seed": resume.get("seed")}
    if landmarks is not None:
        inputs["landmarks"] = content_fingerprint(landmarks[["arch", "accuracy"]].astype({"arch": str}).values.tolist())
    return record({"stage": "warmup", "supernet": supernet.describe(), "config": to_dict(cfg), "seed": seed,
                   "inputs": inputs})


def _landmark_regularizer(
    space: SearchSpace, cfg: LandmarkConfig, landmarks: pd.DataFrame | None, seed: int
) -> LandmarkRegularizer | None:
    """The validated regulariser when enabled (before anything expensive is built), else None."""
    if not cfg.enabled:
        if landmarks is not None:
            logger.info("warm-up: %d landmark pairs given but warmup.landmark.enabled is false; ignored",
                        len(landmarks))
        return None
    if landmarks is None:
        raise ConfigError(
            "warmup.landmark.enabled needs ground-truth pairs (a DataFrame with 'arch' and 'accuracy'), "
            "but no landmarks were given; pass landmarks= or set warmup.landmark.enabled: false"
        )
    regularizer = LandmarkRegularizer(space, landmarks, cfg, seed=seed)
    logger.info("warm-up: landmark regularisation on %d architectures (%d ordered pairs), weight %g every %d step(s)",
                len(regularizer), regularizer.num_pairs, cfg.weight, cfg.every)
    return regularizer


@dataclass(frozen=True)
class PhaseLandmarkConfig(LandmarkConfig):
    """The landmark term's settings inside the landmark phase: always on, and ``start`` is a
    fraction of the phase, 0 by default (the WarmUp before the phase is the term's delay)."""

    enabled: bool = True
    start: float = 0.0


@dataclass(frozen=True)
class LandmarkPhaseConfig:
    """``landmark_phase``: the WarmUp continued with the landmark ranking term, once the ground
    truth exists (the search's SuperNet in the paper's full method, Table 1).

    The phase resumes the warmed SuperNet for ``epochs`` more epochs (the WarmUp's own
    settings: batch, optimizer on a new cosine over the whole length, augmentation) with
    the term of ``landmark`` on (its ``enabled`` is implied); its ``start`` is a fraction of the phase (0 = from the phase's first
    step, the term ramping up on a cosine by its end). So WarmUp + phase is the delayed
    start the landmark term needs (measured: full weight from step 0 wrecks the SuperNet).
    ``enabled: false`` hands the warmed SuperNet to the search unchanged.
    """

    enabled: bool = True
    epochs: int = 10
    landmark: PhaseLandmarkConfig = field(default_factory=PhaseLandmarkConfig)

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(f"landmark_phase.epochs: {self.epochs!r} must be an integer >= 1")

    def warmup_settings(self, warmup: WarmupConfig, warmed_epochs: int) -> WarmupConfig:
        """The WarmUp's settings extended by the phase, the term starting within the phase."""
        total = int(warmed_epochs) + self.epochs
        start = (warmed_epochs + self.landmark.start * self.epochs) / total
        return replace(warmup, epochs=total, landmark=replace(self.landmark, enabled=True, start=start))


def landmark_phase(
    space: SearchSpace,
    splits: ImageSplits,
    warmup: WarmupConfig,
    cfg: LandmarkPhaseConfig,
    warmed: dict[str, Any],
    pairs: pd.DataFrame,
    device: torch.device,
    seed: int = 0,
    checkpoint: CheckpointPolicy | None = None,
) -> dict[str, Any]:
    """The ``landmark_supernet`` checkpoint: ``warmed`` continued for ``cfg.epochs`` epochs with
    the landmark term on ``pairs`` (at least 2 with different accuracies; checked first).

    Its ``landmark_phase`` field records the warmed SuperNet it continues (``warmed_from``)
    and the pairs' count, so later stages can tell where it came from."""
    if not cfg.enabled:
        raise ConfigError("landmark_phase is disabled: the warmed SuperNet is the search's SuperNet")
    # at least 2 usable pairs, checked before any training
    LandmarkRegularizer(space, pairs, replace(cfg.landmark, enabled=True), seed=seed)
    warmed_epochs = int(warmed.get("epoch", 0))
    settings = cfg.warmup_settings(warmup, warmed_epochs)
    logger.info("landmark phase: the warmed SuperNet (epoch %d) continues for %d epochs with the landmark term "
                "on %d ground-truth pairs", warmed_epochs, cfg.epochs, len(pairs))
    result = warmup_supernet(space, splits, settings, device, seed=seed, resume=warmed, landmarks=pairs,
                             checkpoint=checkpoint)
    result["landmark_phase"] = {
        "warmed_from": (warmed.get("fingerprint") or {}).get("fingerprint"),
        "warmed_epochs": warmed_epochs,
        "epochs": cfg.epochs,
        "pairs": int(len(pairs)),
    }
    return result
