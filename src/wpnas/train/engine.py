"""The training engine: how one batch is trained or evaluated, written once.

Stages differ only in *what* they run (a sampled path, a stand-alone network, a path with
HyperNet offsets) — they pass a ``forward(x) -> logits`` callable per batch — not in how
a batch is trained: autocast, channels-last, backward, clipping, optimizer and scheduler
steps, NaN detection and metric accumulation live here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from wpnas import distributed
from wpnas.errors import ConfigError, TrainingError
from wpnas.progress import Progress
from wpnas.train.optim import OptimConfig, build_optimizer, build_scheduler
from wpnas.train.stage import EpochLoop

logger = logging.getLogger(__name__)

Forward = Callable[[torch.Tensor], torch.Tensor | tuple[torch.Tensor, torch.Tensor]]
#: ``engine.paths_in_flight: auto`` on CUDA (unmeasured on a GPU so far: see benchmarks/README.md).
PATHS_IN_FLIGHT_CUDA = 16
#: A zero-argument callable returning a scalar term added to a step's loss.
ExtraLoss = Callable[[], torch.Tensor]


@dataclass(frozen=True)
class EngineConfig:
    """Hardware knobs. bf16 autocast and channels-last apply on CUDA only."""

    amp: bool = True
    channels_last: bool = True
    nan_check_every: int = 20
    # cudnn autotuning re-tunes for every new tensor shape: a loss for SuperNets whose
    # widths change each step (NATS-SSS measured 20x slower per step on an H200).
    cudnn_benchmark: bool = False
    # The fixed-architecture fast path (wpnas.train.fast): auto = compiled on CUDA, eager on CPU.
    compile: Literal["auto", "on", "off"] = "auto"
    compile_mode: str = "reduce-overhead"    # torch.compile mode (reduce-overhead: CUDA graphs)
    compile_backend: str = "inductor"
    # SuperNet candidate ops as CUDA graphs (wpnas.train.fast.graph_candidate_ops): auto = on CUDA.
    graph_ops: Literal["auto", "on", "off"] = "auto"
    # Architectures evaluated together with inherited weights (wpnas.nn.paths): ranking,
    # evolution's fitness, WarmUp probes, the search's reward pass. 1: one at a time;
    # auto: PATHS_IN_FLIGHT_CUDA on CUDA, 1 on the CPU (where it measured slower).
    paths_in_flight: int | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        for key in ("compile", "graph_ops"):
            if getattr(self, key) not in ("auto", "on", "off"):
                raise ConfigError(f"engine.{key}: {getattr(self, key)!r} is not one of ['auto', 'on', 'off']")
        width = self.paths_in_flight
        if width != "auto" and (isinstance(width, bool) or not isinstance(width, int) or width < 1):
            raise ConfigError(
                f"engine.paths_in_flight: {width!r}; expected an integer >= 1 (1: one at a time) or 'auto'"
            )


class Engine:
    def __init__(self, device: torch.device | str, cfg: EngineConfig | None = None) -> None:
        self.device = torch.device(device)
        self.cfg = cfg or EngineConfig()
        if self.on_cuda and not torch.backends.cudnn.deterministic:
            torch.backends.cudnn.benchmark = self.cfg.cudnn_benchmark

    @property
    def on_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def paths_in_flight(self) -> int:
        """How many architectures inherited-weight evaluations run together (``engine.paths_in_flight``)."""
        width = self.cfg.paths_in_flight
        if width == "auto":
            return PATHS_IN_FLIGHT_CUDA if self.on_cuda else 1
        return int(width)

    @property
    def channels_last(self) -> bool:
        return self.cfg.channels_last and self.on_cuda

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.cfg.amp and self.on_cuda:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare(self, module: nn.Module) -> nn.Module:
        module = module.to(self.device)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return module


class Meter:
    """Loss / accuracy sums kept on the device (no host sync per step)."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device, dtype=torch.float64)
        self.correct = torch.zeros((), device=device, dtype=torch.float64)
        self.count = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        n = y.shape[0]
        self.loss += loss.detach().double() * n
        self.correct += (logits.detach().argmax(1) == y).sum().double()
        self.count += n

    def result(self, across_ranks: bool = False) -> dict[str, float]:
        """Mean loss and accuracy (%). ``across_ranks``: this meter saw one rank's share of global
        batches, and the result is the global batches' (a mean weighted by the shares, one
        all-reduce that every rank makes; as is alone)."""
        if self.count == 0:
            return {"loss": float("nan"), "acc": float("nan")}
        local = {"loss": float(self.loss) / self.count, "acc": 100.0 * float(self.correct) / self.count}
        return distributed.all_reduce_mean(local, float(self.count)) if across_ranks else local


class Trainer:
    """Optimizer + cosine schedule + one-step training for a set of parameters.

    ``label_smoothing`` (default 0) smooths the training cross-entropy's targets; the
    loss a meter records is then the smoothed one.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        optim: OptimConfig,
        total_steps: int,
        engine: Engine,
        label_smoothing: float = 0.0,
        auxiliary_weight: float = 0.0,
    ) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing: {label_smoothing} must be in [0, 1)")
        if not auxiliary_weight >= 0.0:
            raise ConfigError(f"auxiliary_weight: {auxiliary_weight} must be >= 0")
        self.auxiliary_weight = float(auxiliary_weight)
        self.params = [p for p in params if p.requires_grad]
        self.cfg = optim
        self.engine = engine
        self.label_smoothing = float(label_smoothing)
        self.optimizer = build_optimizer(self.params, optim)
        self.scheduler = build_scheduler(self.optimizer, optim, total_steps)
        self.steps = 0
        #: the DistributedDataParallel wrapper the forwards run through, if any (set by the stage)
        self.data_parallel: nn.Module | None = None

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def step(
        self,
        forward: Forward,
        x: torch.Tensor,
        y: torch.Tensor,
        meter: Meter | None = None,
        extra_loss: ExtraLoss | None = None,
    ) -> torch.Tensor:
        """One SGD step on cross-entropy; returns the (device) cross-entropy.

        ``extra_loss()``, when given, runs in the same autocast context after the
        cross-entropy and its value is added to it before backward (a regulariser such as
        the landmark ranking term); the returned loss and the meter stay the plain CE.
        A forward that returns ``(logits, auxiliary_logits)`` (a network with an auxiliary
        head, in training mode) adds ``auxiliary_weight`` times the auxiliary head's CE.
        """
        self.optimizer.zero_grad(set_to_none=True)
        # An extra term that runs the wrapped module outside DDP's forward (the landmark paths)
        # cannot be reduced by DDP: such a step runs under no_sync and averages by hand.
        by_hand = self.data_parallel is not None and extra_loss is not None
        with self.data_parallel.no_sync() if by_hand else contextlib.nullcontext():
            total, loss, logits = self._loss(forward, x, y, extra_loss)
            total.backward()
        if by_hand:
            distributed.average_gradients(self.params)
        if self.cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.steps += 1
        if meter is not None:
            meter.add(loss, logits, y)
        every = self.engine.cfg.nan_check_every
        if every and self.steps % every == 0:
            check_finite(loss, f"step {self.steps}")
        return loss

    def _loss(self, forward: Forward, x: torch.Tensor, y: torch.Tensor,
              extra_loss: ExtraLoss | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss to minimise, plain CE, logits) of one batch."""
        with self.engine.autocast():
            out = forward(x)
            logits, auxiliary = out if isinstance(out, tuple) else (out, None)
            loss = F.cross_entropy(logits.float(), y, label_smoothing=self.label_smoothing)
            total = loss if extra_loss is None else loss + extra_loss()
            if auxiliary is not None and self.auxiliary_weight > 0.0:
                total = total + self.auxiliary_weight * F.cross_entropy(
                    auxiliary.float(), y, label_smoothing=self.label_smoothing)
        return total, loss, logits

    def restart_schedule(self) -> None:
        """Set the learning rate of the next step from this trainer's schedule (after loading the
        state of a run planned for another number of steps, whose optimizer holds its own rate)."""
        step = self.scheduler.last_epoch
        for group, base, factor in zip(self.optimizer.param_groups, self.scheduler.base_lrs,
                                       self.scheduler.lr_lambdas):
            group["lr"] = base * factor(step)
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.steps = int(state["steps"])


def check_finite(value: torch.Tensor | float, where: str) -> None:
    v = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
    if not math.isfinite(v):
        raise TrainingError(
            f"loss is {v} at {where}: training diverged; lower the learning rate or check the data "
            "(nothing was saved from this run)"
        )


@torch.no_grad()
def evaluate(forward: Forward, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], engine: Engine) -> dict[str, float]:
    """Cross-entropy and top-1 accuracy (%) of ``forward`` over ``batches``."""
    meter = Meter(engine.device)
    for x, y in batches:
        with engine.autocast():
            logits = forward(x)
            loss = F.cross_entropy(logits.float(), y)
        meter.add(loss, logits, y)
    return meter.result()


def train_epochs(
    trainer: Trainer,
    batches: Any,
    epochs: int,
    forward_for_batch: Callable[[], Forward],
    loop: EpochLoop | str,
    start_epoch: int = 0,
    modules: Iterable[nn.Module] = (),
    end_epoch: Callable[[int, dict[str, float]], dict[str, float] | None] | None = None,
    extra_loss_for_step: Callable[[int, torch.Tensor, torch.Tensor], ExtraLoss | None] | None = None,
) -> list[dict[str, float]]:
    """Train epochs ``start_epoch`` .. ``epochs - 1``; ``forward_for_batch()`` picks what runs on each
    batch, ``loop`` (or a description) shows, records and checkpoints the epochs.

    Each epoch's metrics are the train loss/accuracy (of the global batches when ``batches``
    are this rank's share of them, :class:`~wpnas.distributed.ShardedBatches`), lr, seconds
    and whatever ``end_epoch(epoch, metrics)`` returns. ``extra_loss_for_step(step, x, y)``
    (step = ``trainer.steps`` before the step) may return an extra loss term for that batch
    (see ``Trainer.step``) or None. Returns the history of the epochs trained here.
    """
    loop = EpochLoop(loop) if isinstance(loop, str) else loop
    modules = list(modules)
    across_ranks = isinstance(batches, distributed.ShardedBatches)

    def one_epoch(epoch: int, progress: Progress) -> dict[str, float]:
        for m in modules:
            m.train()
        meter = Meter(trainer.engine.device)
        started = time.monotonic()
        steps = len(batches) if hasattr(batches, "__len__") else None
        for done, (x, y) in enumerate(batches, 1):
            forward = forward_for_batch()
            extra = None if extra_loss_for_step is None else extra_loss_for_step(trainer.steps, x, y)
            trainer.step(forward, x, y, meter, extra)
            progress.within(done, steps)
        metrics = {f"train_{k}": v for k, v in meter.result(across_ranks).items()}
        check_finite(metrics["train_loss"], f"epoch {epoch + 1} of {loop.desc}")
        metrics["lr"] = trainer.lr
        metrics["epoch_seconds"] = time.monotonic() - started
        if end_epoch is not None:
            metrics.update(end_epoch(epoch, metrics) or {})
        return metrics

    return loop.run(one_epoch, start_epoch, epochs)
