"""The WPNAS search loop (paper Section 3.4 and procedure step 4).

Each step alternates two updates:

1. **weights**: one architecture (the first policy sample, or a uniform draw for the
   ``sampling: uniform`` ablation of Table 1) trains the SuperNet on a training batch,
   with HyperNet offsets for it when weakly weight sharing is on; a 'trained' HyperNet
   learns from the same loss and optimizer (SGD, cosine 0.01 -> 1e-5 in the paper).
2. **alpha**: ``samples_per_step`` architectures from p(A | alpha) and the greedy
   ``argmax`` architecture are scored on the *same* validation batch (reward of
   :mod:`wpnas.search.reward`, BN on batch statistics) and alpha takes one
   self-critical policy-gradient step (:mod:`wpnas.search.self_critical`).

The search starts from the warmed SuperNet; the final architecture is ``argmax alpha``.
Nothing here depends on a particular space.

BN: weight steps run in train mode and update the running statistics as usual; the
reward pass uses batch statistics and leaves them alone; every ``eval_every`` epochs the
argmax path is evaluated after BN recalibration, which rewrites the statistics of the
BN layers on that path (so a searched checkpoint holds the final argmax's statistics).

Per epoch the history (and the active MLflow run, prefix ``search/``) gets: mean
reward, greedy baseline reward, advantage (mean and mean absolute), CE, FSP (when
b1 > 0), sampled FLOPs, alpha loss, entropy of p(A | alpha), the argmax architecture's
FLOPs, params, joint probability and smallest per-decision probability, train
loss/accuracy and lr, and ``argmax_valid_acc`` / ``argmax_valid_loss`` on evaluation
epochs. ``run(stop_epoch)`` stops early; ``resume`` continues from a search checkpoint
exactly (same config) or extends it to more epochs (the cosine schedule then follows
the new total).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from wpnas import tracking
from wpnas.config import from_dict, rng_state, set_rng_state, to_dict
from wpnas.data.batching import AugmentConfig, DeviceBatches
from wpnas.data.splits import ImageSplits
from wpnas.errors import CheckpointError, ConfigError, DataError
from wpnas.io.supernet_checkpoint import check_checkpoint, make_checkpoint, restore_supernet
from wpnas.search.hypernet import HyperNetConfig
from wpnas.progress import Progress
from wpnas.search.distribution import ArchDistribution, chosen_probabilities
from wpnas.search.reward import Reward, RewardConfig, batch_statistics, path_cross_entropy
from wpnas.search.self_critical import (
    DEFAULT_ALPHA_BETAS,
    DEFAULT_ALPHA_LR,
    SelfCriticalOptimizer,
    check_alpha_settings,
)
from wpnas.search.trajectory import trajectory_table
from wpnas.seeds import stream_seed
from wpnas.search.weakly_shared import WeaklySharedSuperNet, build_hypernet, restore_hypernet
from wpnas.spaces.base import Arch, SearchSpace
from wpnas.train.engine import Engine, EngineConfig, Meter, Trainer, check_finite
from wpnas.train.evaluation import evaluate_architecture
from wpnas.train.optim import OptimConfig

logger = logging.getLogger(__name__)

STAGE = "search"


@dataclass(frozen=True)
class SearchConfig:
    """Search settings (``search:`` in the parameters).

    Paper: 300 epochs; weights by SGD with cosine decay 0.01 -> 1e-5; alpha by
    equation (7). ``steps_per_epoch`` (default: one pass over the training batches)
    bounds an epoch for quick runs. ``valid_batch_size`` is the reward batch: the sample
    and the greedy baseline are scored on the same one, with BN batch statistics, so it
    should not be tiny. ``eval_every`` epochs (and after the last) the argmax
    architecture is evaluated on up to ``eval_valid_limit`` validation images after BN
    recalibration on ``calib_batches`` training batches (0 = never).
    """

    epochs: int = 300
    steps_per_epoch: int | None = None
    batch_size: int = 64
    valid_batch_size: int = 256
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.01, lr_min=1e-5))
    alpha_lr: float = DEFAULT_ALPHA_LR
    alpha_betas: tuple[float, float] = DEFAULT_ALPHA_BETAS
    alpha_weight_decay: float = 0.0
    entropy_weight: float = 0.0
    samples_per_step: int = 1
    sampling: Literal["probabilistic", "uniform"] = "probabilistic"
    reward: RewardConfig = field(default_factory=RewardConfig)
    hypernet: HyperNetConfig = field(default_factory=HyperNetConfig)
    update_weights: bool = True
    eval_every: int = 10
    eval_valid_limit: int | None = 2000
    eval_batch_size: int = 512
    calib_batches: int = 4
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    log_every: float = 30.0

    def __post_init__(self) -> None:
        for name, kind in _NESTED.items():  # also accept plain dicts when built directly
            value = getattr(self, name)
            if not isinstance(value, kind):
                object.__setattr__(self, name, from_dict(kind, value, where=f"search.{name}"))
        if self.epochs < 1:
            raise ConfigError(f"search.epochs: {self.epochs} must be >= 1")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(f"search.steps_per_epoch: {self.steps_per_epoch} must be >= 1 or null")
        for name in ("batch_size", "valid_batch_size", "eval_batch_size", "samples_per_step"):
            if getattr(self, name) < 1:
                raise ConfigError(f"search.{name}: {getattr(self, name)} must be >= 1")
        if self.sampling not in ("probabilistic", "uniform"):
            raise ConfigError(f"search.sampling: {self.sampling!r} is not one of ['probabilistic', 'uniform']")
        check_alpha_settings(self.alpha_lr, self.alpha_betas, self.alpha_weight_decay, self.entropy_weight)
        if self.eval_every < 0 or self.calib_batches < 0:
            raise ConfigError("search.eval_every and search.calib_batches must be >= 0")
        if self.eval_valid_limit is not None and self.eval_valid_limit < 1:
            raise ConfigError(f"search.eval_valid_limit: {self.eval_valid_limit} must be >= 1 or null")
        if self.hypernet.mode == "trained" and not self.update_weights:
            raise ConfigError(
                "search.hypernet.mode is 'trained' but search.update_weights is false: nothing would train "
                "the HyperNet; use mode 'fixed' or 'off', or turn update_weights on"
            )


_NESTED = {
    "optim": OptimConfig,
    "reward": RewardConfig,
    "hypernet": HyperNetConfig,
    "augment": AugmentConfig,
    "engine": EngineConfig,
}


@dataclass
class SearchResult:
    """The three search artifacts plus the per-epoch history (also inside the checkpoint)."""

    checkpoint: dict[str, Any]
    alpha_trajectory: pd.DataFrame
    final_genotype: dict[str, Any]
    history: list[dict[str, Any]]


class WPNASSearch:
    """One search run; :func:`run_search` is the usual entry point.

    Construction validates everything (config, predictor, checkpoints, data) and builds
    the models before any training, so bad input fails fast.
    """

    def __init__(
        self,
        space: SearchSpace,
        splits: ImageSplits,
        warmed_checkpoint: dict[str, Any],
        cfg: SearchConfig | dict[str, Any],
        device: torch.device | str,
        seed: int = 0,
        predictor: Any = None,
        resume: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg = from_dict(SearchConfig, cfg, where="search")
        self.space = space
        self.seed = int(seed)
        if cfg.reward.uses_predictor and predictor is None:
            raise ConfigError(
                f"search.reward.b1 = {cfg.reward.b1} weights the predictor, but no predictor was given; "
                "pass the trained predictor or set reward.b1 to 0"
            )
        if predictor is not None and not cfg.reward.uses_predictor:
            logger.info("reward.b1 is 0: the predictor is ignored")
        if splits.valid_x.shape[0] == 0:
            raise DataError("search needs a non-empty valid split: the reward is measured on it")
        if cfg.update_weights and splits.train_x.shape[0] == 0:
            raise DataError("search needs a non-empty train split to update the SuperNet weights")
        self.input_shape = splits.input_shape
        self.num_classes = splits.num_classes
        self.engine = Engine(device, cfg.engine)
        self.device = self.engine.device

        expected = {
            "space": space.name,
            "options": space.options(),
            "in_channels": splits.in_channels,
            "num_classes": splits.num_classes,
        }
        supernet = restore_supernet(warmed_checkpoint, "cpu", expected=expected, source="warmed SuperNet checkpoint")
        self.warmed_from = {k: warmed_checkpoint.get(k) for k in ("stage", "epoch", "seed") if k in warmed_checkpoint}
        hypernet = build_hypernet(space, cfg.hypernet, self.seed)
        self.net = WeaklySharedSuperNet(self.engine.prepare(supernet), hypernet.to(self.device))
        self.dist = ArchDistribution(space)
        self.policy = SelfCriticalOptimizer(
            self.dist, cfg.alpha_lr, cfg.alpha_betas, cfg.alpha_weight_decay, cfg.entropy_weight
        )
        self.reward = Reward(space, cfg.reward, self.input_shape, self.num_classes, predictor)
        # Probe the reward terms once on the greedy architecture: a predictor that returns
        # the wrong shape or NaN fails here, not after the first epoch.
        self.reward.static([self.dist.argmax()])

        cl = self.engine.channels_last
        self.train_batches = (
            DeviceBatches.from_splits(
                splits, "train", self.device, cfg.batch_size, train=True, augment=cfg.augment, seed=self.seed,
                channels_last=cl,
            )
            if splits.train_x.shape[0]
            else None
        )
        vx, vy = splits.split("valid")
        self.valid_batches = DeviceBatches(
            vx, vy, splits.mean, splits.std, device=self.device, batch_size=cfg.valid_batch_size, shuffle=True,
            augment=None, drop_last=vx.shape[0] > cfg.valid_batch_size, seed=stream_seed(self.seed, "search.valid_batches"),
            channels_last=cl,
        )
        self.eval_batches = DeviceBatches.from_splits(
            splits, "valid", self.device, cfg.eval_batch_size, train=False, seed=self.seed, channels_last=cl,
            limit=cfg.eval_valid_limit,
        )
        self.calib_source = (
            DeviceBatches.from_splits(
                splits, "train", self.device, cfg.batch_size, train=False, shuffle=True, seed=stream_seed(self.seed, "calibration"),
                channels_last=cl,
            )
            if self.train_batches is not None
            else None
        )
        base = len(self.train_batches) if self.train_batches is not None else len(self.valid_batches)
        self.steps_per_epoch = cfg.steps_per_epoch or base
        self.trainer = (
            Trainer(self.net.trainable_parameters(), cfg.optim, cfg.epochs * self.steps_per_epoch, self.engine)
            if cfg.update_weights
            else None
        )
        if not cfg.update_weights:
            self.net.requires_grad_(False)
        self.generator = torch.Generator().manual_seed(stream_seed(self.seed, "search.sampler"))
        self.epoch = 0  # completed epochs
        self.history: list[dict[str, Any]] = []
        self.probabilities: list[list[list[float]]] = [self._snapshot()]
        self.elapsed = 0.0
        if resume is not None:
            self._resume(resume)

    # -- one step --------------------------------------------------------------------
    def cross_entropies(self, archs: list[Arch], x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        """Validation CE (nats) of each architecture on one batch, BN on batch statistics; one host sync."""
        values = []
        with batch_statistics(self.net), self.engine.autocast():
            for arch in archs:
                values.append(path_cross_entropy(self.net(x, arch), y))
        return torch.stack(values).double().cpu().numpy()

    def step(
        self,
        train_iter: Iterator[tuple[torch.Tensor, torch.Tensor]] | None,
        valid_iter: Iterator[tuple[torch.Tensor, torch.Tensor]],
        meter: Meter | None,
    ) -> dict[str, float]:
        cfg = self.cfg
        archs = self.dist.sample(cfg.samples_per_step, self.generator)
        if self.trainer is not None and train_iter is not None:
            if cfg.sampling == "probabilistic":
                weight_arch = archs[0]
            else:
                weight_arch = self.dist.sample_uniform(None, self.generator)
            x, y = next(train_iter)
            self.trainer.step(lambda inputs: self.net(inputs, weight_arch), x, y, meter)
        xv, yv = next(valid_iter)
        greedy = self.dist.argmax()
        unique = list(dict.fromkeys([greedy, *archs]))
        parts = self.reward(self.cross_entropies(unique, xv, yv), unique)
        index = {a: i for i, a in enumerate(unique)}
        rows = [index[a] for a in archs]
        baseline = float(parts.total[index[greedy]])
        stats = self.policy.step(archs, parts.total[rows], baseline)
        stats.update(
            reward_mean=float(parts.total[rows].mean()),
            baseline_reward=baseline,
            ce_mean=float(parts.ce[rows].mean()),
            fsp_mean=float(parts.fsp[rows].mean()),
            flops_m_mean=float(parts.flops_m[rows].mean()),
        )
        return stats

    # -- epochs ----------------------------------------------------------------------
    def run(self, stop_epoch: int | None = None) -> SearchResult:
        """Search up to ``cfg.epochs`` (or stop after ``stop_epoch``; ``run`` again continues)."""
        cfg = self.cfg
        stop = cfg.epochs if stop_epoch is None else min(int(stop_epoch), cfg.epochs)
        started = time.monotonic()
        with Progress(max(0, stop - self.epoch), "search", unit="epoch", log_every=cfg.log_every) as bar:
            for epoch in range(self.epoch, stop):
                metrics = self._epoch(epoch)
                self.history.append(metrics)
                self.epoch = epoch + 1
                tracking.log_metrics(
                    {k: v for k, v in metrics.items() if k not in ("epoch", "argmax")}, step=epoch + 1,
                    prefix="search/",
                )
                bar.update_metrics(
                    reward=metrics["reward_mean"], entropy=metrics["entropy"], argmax_mflops=metrics["argmax_flops_m"]
                )
                if "argmax_valid_acc" in metrics:
                    bar.update_metrics(argmax_valid_acc=metrics["argmax_valid_acc"])
                bar.advance()
        self.elapsed += time.monotonic() - started
        return self.result()

    def _epoch(self, epoch: int) -> dict[str, Any]:
        cfg = self.cfg
        begun = time.monotonic()
        self.net.train()
        meter = Meter(self.device) if self.trainer is not None else None
        train_iter = self.train_batches.forever() if self.trainer is not None else None
        valid_iter = self.valid_batches.forever()
        sums: dict[str, float] = {}
        for _ in range(self.steps_per_epoch):
            for key, value in self.step(train_iter, valid_iter, meter).items():
                sums[key] = sums.get(key, 0.0) + value
        metrics: dict[str, Any] = {k: v / self.steps_per_epoch for k, v in sums.items()}
        if not cfg.reward.uses_predictor:
            metrics.pop("fsp_mean", None)
        if meter is not None:
            metrics.update({f"train_{k}": v for k, v in meter.result().items()})
            check_finite(metrics["train_loss"], f"search epoch {epoch + 1}")
            metrics["lr"] = self.trainer.lr
        greedy = self.dist.argmax()
        cost = self.space.cost(greedy, self.input_shape, self.num_classes)
        metrics.update(
            entropy=float(self.dist.entropy().detach()),
            argmax_flops_m=float(cost.flops_m),
            argmax_params_m=float(cost.params_m),
            argmax_probability=self.dist.probability(greedy),
            argmax_min_choice_probability=min(chosen_probabilities(self.dist, greedy)),
        )
        if cfg.eval_every and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            result = self.evaluate(greedy)
            metrics.update(argmax_valid_acc=result["acc"], argmax_valid_loss=result["loss"])
        self.probabilities.append(self._snapshot())
        metrics["epoch_seconds"] = time.monotonic() - begun
        metrics["epoch"] = epoch + 1
        metrics["argmax"] = self.space.to_string(greedy)
        return metrics

    def evaluate(self, arch: Arch) -> dict[str, float]:
        """Valid loss / accuracy (%) of ``arch`` with inherited (offset) weights after BN recalibration."""
        calib = ()
        if self.calib_source is not None and self.cfg.calib_batches:
            # A fixed draw per architecture: the same whether the run was resumed or not.
            self.calib_source.generator.manual_seed(stream_seed(self.seed, "calibration") + self.space.index(arch) % (2**31))
            calib = self.calib_source.take(self.cfg.calib_batches)
        with torch.no_grad():
            offsets = self.net.offsets(arch)
        return evaluate_architecture(self.net.supernet, arch, self.eval_batches, self.engine, calib, offsets)

    def _snapshot(self) -> list[list[float]]:
        return [p.tolist() for p in self.dist.probs()]

    # -- artifacts -------------------------------------------------------------------
    def final_genotype(self) -> dict[str, Any]:
        """``argmax alpha`` with its cost, probabilities and the settings that produced it (JSON-ready)."""
        arch = self.dist.argmax()
        cost = self.space.cost(arch, self.input_shape, self.num_classes)
        last = self.history[-1] if self.history else {}
        genotype: dict[str, Any] = {
            "space": self.space.name,
            "options": self.space.options(),
            "arch": self.space.to_string(arch),
            "choices": [int(a) for a in arch],
            "choice_names": self.space.choice_names(arch),
            "decisions": [d.name for d in self.space.decisions],
            "flops_m": float(cost.flops_m),
            "params_m": float(cost.params_m),
            "input_shape": [int(s) for s in self.input_shape],
            "num_classes": int(self.num_classes),
            "probabilities": chosen_probabilities(self.dist, arch),
            "joint_probability": self.dist.probability(arch),
            "reward": {
                **to_dict(self.cfg.reward),
                "units": {"ce": "nats (mean over a validation batch)", "fsp": "percent accuracy",
                          "flops": "MFLOPs (millions)"},
            },
            "predicted_accuracy": float(self.reward.fsp([arch])[0]) if self.reward.predictions else None,
            "supernet_valid_acc": last.get("argmax_valid_acc") if last.get("argmax") == self.space.to_string(arch)
            else None,
            "sampling": self.cfg.sampling,
            "hypernet": self.cfg.hypernet.mode,
            "epochs": self.epoch,
            "seed": self.seed,
        }
        return genotype

    def checkpoint(self) -> dict[str, Any]:
        """The ``searched_supernet`` checkpoint: everything needed to reuse or resume the search."""
        return make_checkpoint(
            self.net.supernet,
            stage=STAGE,
            epoch=self.epoch,
            alpha=self.dist.to_checkpoint(),
            alpha_optimizer=self.policy.state_dict(),
            hypernet=self.net.hypernet_checkpoint(),
            trainer=self.trainer.state_dict() if self.trainer is not None else None,
            rng=rng_state(),
            sampler_generator=self.generator.get_state(),
            batch_generators={
                "train": self.train_batches.generator.get_state() if self.train_batches is not None else None,
                "valid": self.valid_batches.generator.get_state(),
            },
            config=to_dict(self.cfg),
            seed=self.seed,
            history=self.history,
            probabilities=self.probabilities,
            final_arch=self.space.to_string(self.dist.argmax()),
            warmed_from=self.warmed_from,
            seconds=self.elapsed,
            device=str(self.device),
        )

    def result(self) -> SearchResult:
        return SearchResult(
            checkpoint=self.checkpoint(),
            alpha_trajectory=trajectory_table(self.space, self.probabilities),
            final_genotype=self.final_genotype(),
            history=list(self.history),
        )

    # -- resume ----------------------------------------------------------------------
    def _resume(self, state: dict[str, Any]) -> None:
        source = "search resume checkpoint"
        check_checkpoint(state, source)
        if state.get("stage") != STAGE:
            raise CheckpointError(f"{source} is a {state.get('stage')!r} checkpoint, expected a {STAGE!r} one")
        for key in ("alpha", "alpha_optimizer", "hypernet", "epoch", "probabilities", "sampler_generator"):
            if key not in state:
                raise CheckpointError(f"{source} is incomplete: missing {key!r}")
        self.net.supernet.check_compatible(state["supernet"], source)
        stored = restore_hypernet(self.space, state["hypernet"], source)
        if stored.describe() != self.net.hypernet.describe():
            raise CheckpointError(
                f"{source} used HyperNet {stored.describe()['hypernet']}, the config says "
                f"{self.net.hypernet.describe()['hypernet']}"
            )
        if (state.get("trainer") is None) != (self.trainer is None):
            raise CheckpointError(f"{source}: update_weights differs from the run that wrote it")
        changed = sorted(k for k, v in to_dict(self.cfg).items() if k != "epochs" and state.get("config", {}).get(k) != v)
        if changed:
            logger.warning("resuming a search with changed settings: %s", changed)
        self.net.supernet.load_state_dict(state["state_dict"])
        self.net.hypernet.load_state_dict(stored.state_dict())
        self.dist.load_checkpoint(state["alpha"], source)
        self.policy.load_state_dict(state["alpha_optimizer"])
        if self.trainer is not None:
            self.trainer.load_state_dict(state["trainer"])
        self.epoch = int(state["epoch"])
        self.history = list(state.get("history", []))
        self.probabilities = [list(map(list, p)) for p in state["probabilities"]]
        self.elapsed = float(state.get("seconds", 0.0))
        set_rng_state(state["rng"])
        self.generator.set_state(state["sampler_generator"])
        generators = state.get("batch_generators") or {}
        if self.train_batches is not None and generators.get("train") is not None:
            self.train_batches.generator.set_state(generators["train"])
        if generators.get("valid") is not None:
            self.valid_batches.generator.set_state(generators["valid"])
        if self.epoch >= self.cfg.epochs:
            logger.info("search checkpoint already has %d >= %d epochs; nothing to do", self.epoch, self.cfg.epochs)


def run_search(
    space: SearchSpace,
    splits: ImageSplits,
    warmed_checkpoint: dict[str, Any],
    cfg: SearchConfig | dict[str, Any],
    device: torch.device | str,
    seed: int = 0,
    predictor: Any = None,
    resume: dict[str, Any] | None = None,
) -> SearchResult:
    """Run the WPNAS search from a warmed SuperNet checkpoint (paper step 4).

    ``predictor``: a :class:`~wpnas.predictors.Predictor` or any callable mapping a list
    of architectures to predicted accuracies in percent; required when ``reward.b1 > 0``.
    ``resume``: a ``searched_supernet`` checkpoint of the same space to continue up to
    ``cfg.epochs``. Returns the ``searched_supernet`` checkpoint, the ``alpha_trajectory``
    table and the ``final_genotype`` (``argmax alpha``).
    """
    return WPNASSearch(space, splits, warmed_checkpoint, cfg, device, seed, predictor, resume).run()


def restore_search(
    checkpoint: dict[str, Any], device: torch.device | str = "cpu", source: str = "searched SuperNet checkpoint"
) -> tuple[WeaklySharedSuperNet, ArchDistribution]:
    """The SuperNet with its HyperNet and the architecture distribution stored by a search."""
    check_checkpoint(checkpoint, source)
    if checkpoint.get("stage") != STAGE or "alpha" not in checkpoint or "hypernet" not in checkpoint:
        raise CheckpointError(f"{source} is not a search checkpoint (stage {checkpoint.get('stage')!r})")
    supernet = restore_supernet(checkpoint, device, source=source)
    hypernet = restore_hypernet(supernet.space, checkpoint["hypernet"], source).to(device)
    dist = ArchDistribution.from_checkpoint(supernet.space, checkpoint["alpha"], source)
    return WeaklySharedSuperNet(supernet, hypernet), dist

