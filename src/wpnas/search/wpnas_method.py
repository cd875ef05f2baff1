"""The WPNAS search method (paper Section 3.4 and procedure step 4).

Each step alternates two updates:

1. **weights**: one architecture (the first policy sample, or a uniform draw for the
   ``sampling: uniform`` ablation of Table 1) trains the SuperNet on a training batch,
   with HyperNet offsets for it when weakly weight sharing is on (a 'trained' HyperNet
   learns from the same loss and optimizer) and, when enabled, the landmark ranking term
   on the same batch.
2. **alpha**: ``samples_per_step`` architectures from p(A | alpha) and the greedy
   ``argmax`` architecture are scored on the *same* validation batch (reward of
   :mod:`wpnas.search.reward`, BN on batch statistics) and alpha takes one
   self-critical policy-gradient step (:mod:`wpnas.search.self_critical`).

Under torch.distributed (a world of several ranks) the search is data parallel: every
rank draws the same architectures from the same seeded sampler, trains the weights (and a
trained HyperNet: one module) on its contiguous share of the same global training batch
through DistributedDataParallel (``find_unused_parameters``: the unsampled paths get no
gradient on any rank), and measures the CE of the samples and the greedy architecture on
its share of the same validation batch; the CEs are all-reduced (a mean weighted by the
share sizes) before the reward, so every rank takes the same alpha step and alpha stays
identical on all ranks. BN normalises each share with its own batch statistics, so a run
of W ranks equals one process whose every batch is cut into W shares normalised apart.

The search starts from the warmed SuperNet; the final architecture is ``argmax alpha``.
Per epoch it reports mean reward, greedy baseline reward, advantage (mean and mean
absolute), CE, FSP (when b1 > 0), sampled FLOPs, alpha loss, entropy of p(A | alpha),
the argmax architecture's joint probability and smallest per-decision probability.

BN: weight steps run in train mode and update the running statistics as usual; the
reward pass uses batch statistics and leaves them alone; evaluations recalibrate the
statistics of the evaluated path (so a searched checkpoint holds the last evaluated
path's statistics).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal, TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from wpnas import distributed
from wpnas.config import to_dict
from wpnas.errors import CheckpointError, ConfigError
from wpnas.io.supernet_checkpoint import check_checkpoint, restore_supernet
from wpnas.nn.paths import block_correct, block_cross_entropies
from wpnas.search.config import MethodNeeds, SearchConfig
from wpnas.search.distribution import ArchDistribution, chosen_probabilities
from wpnas.search.hypernet import HyperNetConfig
from wpnas.search.methods import STAGE, SearchContext, SearchMethod, StepBatches
from wpnas.search.registry import register_method
from wpnas.search.reward import BatchStatistics, Reward, RewardConfig
from wpnas.search.selection import top_k_joint
from wpnas.search.self_critical import (
    DEFAULT_ALPHA_BETAS,
    DEFAULT_ALPHA_LR,
    SelfCriticalOptimizer,
    check_alpha_settings,
)
from wpnas.search.trajectory import alpha_heatmap, trajectory_table
from wpnas.search.weakly_shared import WeaklySharedSuperNet, build_hypernet, restore_hypernet
from wpnas.seeds import stream_seed
from wpnas.spaces.base import Arch, SearchSpace
from wpnas.spaces.supernet import SuperNet
from wpnas.train.engine import Meter, Trainer
from wpnas.train.evaluation import paths_in_flight
from wpnas.train.fast import LANDMARK_REFUSAL
from wpnas.train.landmark import LandmarkConfig, LandmarkRegularizer
from wpnas.train.optim import OptimConfig

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WPNASConfig:
    """``search.wpnas``: the WPNAS method (paper Section 3.4; Table 1 ablation switches).

    Weights: SGD with cosine decay 0.01 -> 1e-5 (paper). alpha: Adam at ``alpha_lr`` on the
    self-critical loss of ``samples_per_step`` policy samples per step, baseline = the
    greedy (argmax) architecture on the same validation batch. ``sampling``: which
    distribution the weight updates draw from (``probabilistic`` = PS, ``uniform`` = SPOS
    weights with a WPNAS policy). ``reward.b1 = 0`` turns the predictor off,
    ``hypernet.mode: off`` turns weakly weight sharing off, ``landmark.enabled`` adds the
    landmark ranking term to the weight updates.
    """

    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.01, lr_min=1e-5))
    alpha_lr: float = DEFAULT_ALPHA_LR
    alpha_betas: tuple[float, float] = DEFAULT_ALPHA_BETAS
    alpha_weight_decay: float = 0.0
    entropy_weight: float = 0.0
    samples_per_step: int = 1
    sampling: Literal["probabilistic", "uniform"] = "probabilistic"
    reward: RewardConfig = field(default_factory=RewardConfig)
    hypernet: HyperNetConfig = field(default_factory=HyperNetConfig)
    landmark: LandmarkConfig = field(default_factory=LandmarkConfig)
    update_weights: bool = True

    def __post_init__(self) -> None:
        if self.samples_per_step < 1:
            raise ConfigError(f"search.wpnas.samples_per_step: {self.samples_per_step} must be >= 1")
        check_alpha_settings(self.alpha_lr, self.alpha_betas, self.alpha_weight_decay, self.entropy_weight)
        if self.hypernet.mode == "trained" and not self.update_weights:
            raise ConfigError(
                "search.wpnas.hypernet.mode is 'trained' but search.wpnas.update_weights is false: nothing would "
                "train the HyperNet; use mode 'fixed' or 'off', or turn update_weights on"
            )
        if self.landmark.enabled and not self.update_weights:
            raise ConfigError(
                "search.wpnas.landmark.enabled needs search.wpnas.update_weights: the landmark term acts on weight updates"
            )



@register_method("wpnas")
class WPNASMethod(SearchMethod):
    """alpha by self-critical policy gradient, weights by SGD (see the module docstring)."""

    settings_key = "wpnas"
    Settings = WPNASConfig

    @classmethod
    def cost_price(cls, settings: WPNASConfig) -> tuple[float, float] | None:
        return (settings.reward.b2, settings.reward.b1) if settings.reward.b2 > 0 else None

    @classmethod
    def needs(cls, settings: WPNASConfig) -> MethodNeeds:
        return MethodNeeds(predictor=settings.reward.uses_predictor, landmarks=settings.landmark.enabled,
                          latency=settings.reward.uses_latency)

    @classmethod
    def check_world(cls, cfg: SearchConfig, size: int) -> None:
        """Data parallel over ``size`` ranks: the batches it splits must split evenly (before any model is built)."""
        if cfg.wpnas.update_weights:
            distributed.check_divisible(cfg.batch_size, size, "search.batch_size")
        distributed.check_divisible(cfg.valid_batch_size, size, "search.valid_batch_size")

    @classmethod
    def outputs(cls, trajectory: pd.DataFrame | None, space: SearchSpace) -> tuple[pd.DataFrame, Figure]:
        """The alpha trajectory and the heatmap of the last epoch's probabilities."""
        return trajectory, alpha_heatmap(trajectory, space)

    def __init__(self, ctx: SearchContext) -> None:
        super().__init__(ctx)
        cfg = self.wcfg = self.settings
        self.world = distributed.current()
        if self.world.active:
            self.check_world(ctx.cfg, self.world.size)
        if ctx.predictor is not None and not cfg.reward.uses_predictor:
            logger.info("search.wpnas.reward.b1 is 0: the predictor is ignored")
        # The reward owns the rule "b1 > 0 needs a predictor"; built first, it fails before any model is.
        self.reward = Reward(ctx.space, cfg.reward, ctx.input_shape, ctx.num_classes, ctx.predictor, ctx.latency)
        self.landmarks = None
        if cfg.landmark.enabled:
            if ctx.landmarks is None:
                raise ConfigError(
                    "search.wpnas.landmark.enabled needs ground-truth pairs (arch, accuracy) as landmarks; "
                    "pass landmarks= or turn the landmark term off"
                )
            self.landmarks = LandmarkRegularizer(ctx.space, ctx.landmarks, cfg.landmark, ctx.seed)
        hypernet = build_hypernet(ctx.space, cfg.hypernet, ctx.seed)
        self.net = WeaklySharedSuperNet(ctx.restore_warmed(), hypernet.to(ctx.device))
        self.batch_statistics = BatchStatistics(self.net)  # the reward pass's BN mode, every step
        self.dist = ArchDistribution(ctx.space)
        self.policy = SelfCriticalOptimizer(
            self.dist, cfg.alpha_lr, cfg.alpha_betas, cfg.alpha_weight_decay, cfg.entropy_weight
        )
        # Probe the reward terms once on the greedy architecture: a predictor that returns
        # the wrong shape or NaN fails here, not after the first epoch.
        self.reward.static([self.dist.argmax()])
        self.trainer = (
            Trainer(self.net.trainable_parameters(), cfg.optim, self.num_epochs * ctx.steps_per_epoch, ctx.engine)
            if cfg.update_weights
            else None
        )
        if not cfg.update_weights:
            self.net.requires_grad_(False)
        # what the weight steps run: the net itself, or its DDP wrapper in a world of several ranks
        self.train_net: torch.nn.Module = self.net
        if self.world.active and self.trainer is not None:
            self.train_net = distributed.data_parallel(self.net, ctx.device)
            self.trainer.data_parallel = self.train_net  # landmark steps: no_sync, averaged by hand
        if self.landmarks is not None:
            self.landmarks.schedule(self.num_epochs * ctx.steps_per_epoch)
        self.generator = torch.Generator().manual_seed(stream_seed(ctx.seed, "search.sampler"))
        self.probabilities: list[list[list[float]]] = [self._snapshot()]

    @property
    def supernet(self) -> SuperNet:
        return self.net.supernet

    @property
    def trains_weights(self) -> bool:
        return self.trainer is not None

    @property
    def graph_weight_steps(self) -> bool:
        return self.trainer is not None

    def weight_offsets(self, arch: Arch) -> torch.Tensor | None:
        return self.net.offsets(arch)

    @property
    def graph_refusal(self) -> str | None:
        return None if self.landmarks is None else LANDMARK_REFUSAL

    @property
    def num_epochs(self) -> int:
        return self.ctx.cfg.epochs

    # -- one step --------------------------------------------------------------------
    def measure(self, archs: list[Arch], x: torch.Tensor, y: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Validation CE (nats) and accuracy (fraction correct) of each architecture on one batch,
        BN on batch statistics; one host sync.

        With paths in flight (``engine.paths_in_flight``), the samples and the greedy
        architecture are scored together: one pass over the batch stacked once per path.
        """
        ce, correct = [], []
        width = paths_in_flight(self.supernet, self.ctx.engine) if len(archs) > 1 else 1
        with self.batch_statistics(), self.ctx.engine.autocast():
            for group in distributed.groups_of(archs, width):
                logits = (self.net(x, group[0]) if len(group) == 1
                          else self.net.forward_paths(x.repeat(len(group), *([1] * (x.dim() - 1))), group))
                ce.append(block_cross_entropies(logits, y, len(group)))
                correct.append(block_correct(logits, y, len(group)) / y.shape[0])
        values = torch.stack([torch.cat(ce).double(), torch.cat(correct).double()]).cpu().numpy()
        return values[0], values[1]

    def begin_epoch(self, epoch: int) -> Meter | None:
        self.net.train()
        return Meter(self.ctx.device) if self.trainer is not None else None

    def step(self, batches: StepBatches) -> dict[str, float]:
        cfg = self.wcfg
        archs = self.dist.sample(cfg.samples_per_step, self.generator)
        if self.trainer is not None and batches.train is not None:
            weight_arch = archs[0] if cfg.sampling == "probabilistic" else self.dist.sample_uniform(None, self.generator)
            x, y = distributed.local_share(*next(batches.train), self.world)
            extra = (
                self.landmarks.extra_loss(self.trainer.steps, self.net, x, y) if self.landmarks is not None else None
            )
            self.trainer.step(lambda inputs: self.train_net(inputs, weight_arch), x, y, batches.meter,
                              extra_loss=extra)
        xv, yv = distributed.local_share(*next(batches.valid), self.world)
        greedy = self.dist.argmax()
        unique = list(dict.fromkeys([greedy, *archs]))
        # every rank scores its share; the weighted means are the whole batch's on every rank
        ce, accuracy = distributed.all_reduce_mean_array(np.stack(self.measure(unique, xv, yv)), float(yv.shape[0]))
        parts = self.reward(ce, unique, accuracy)
        index = {a: i for i, a in enumerate(unique)}
        rows = [index[a] for a in archs]
        baseline = float(parts.total[index[greedy]])
        stats = self.policy.step(archs, parts.total[rows], baseline)
        stats.update(
            reward_mean=float(parts.total[rows].mean()),
            baseline_reward=baseline,
            ce_mean=float(parts.ce[rows].mean()),
            valid_acc_mean=float(100 * accuracy[rows].mean()),
            flops_m_mean=float(parts.flops_m[rows].mean()),
        )
        if parts.latency_ms is not None:
            stats["latency_ms_mean"] = float(parts.latency_ms[rows].mean())
        if cfg.reward.uses_predictor:
            stats["fsp_mean"] = float(parts.fsp[rows].mean())
        return stats

    def end_epoch(self, epoch: int) -> dict[str, float]:
        greedy = self.dist.argmax()
        self.probabilities.append(self._snapshot())
        metrics = {
            "entropy": float(self.dist.entropy().detach()),
            "argmax_probability": self.dist.probability(greedy),
            "argmax_min_choice_probability": min(chosen_probabilities(self.dist, greedy)),
        }
        if self.trainer is not None:
            metrics["lr"] = self.trainer.lr
        if self.landmarks is not None and (mean := self.landmarks.pop_mean()) is not None:
            metrics["landmark_loss"] = mean
        return metrics

    def current(self) -> Arch:
        return self.dist.argmax()

    def top_candidates(self, k: int) -> list[Arch]:
        """The k distinct architectures of highest joint probability under alpha (argmax first)."""
        return [arch for arch, _ in top_k_joint(self.dist.probs(), k)]

    def offsets(self, arch: Arch) -> torch.Tensor | None:
        return self.net.offsets(arch)

    def _snapshot(self) -> list[list[float]]:
        return [p.tolist() for p in self.dist.probs()]

    # -- artifacts -------------------------------------------------------------------
    def details(self, arch: Arch) -> dict[str, Any]:
        cfg = self.wcfg
        return {
            "probabilities": chosen_probabilities(self.dist, arch),
            "joint_probability": self.dist.probability(arch),
            "reward": {
                **to_dict(cfg.reward),
                "units": {"ce": "nats (mean over a validation batch)",
                          "accuracy": "fraction correct (0..1) on a validation batch", "fsp": "percent accuracy",
                          "flops": "MFLOPs (millions)"},
            },
            "predicted_accuracy": float(self.reward.fsp([arch])[0]) if self.reward.predictions else None,
            "sampling": cfg.sampling,
            "hypernet": cfg.hypernet.mode,
            "landmark": cfg.landmark.enabled,
        }

    def trajectory(self) -> pd.DataFrame:
        return trajectory_table(self.ctx.space, self.probabilities)

    def state_dict(self) -> dict[str, Any]:
        return {
            "alpha": self.dist.to_checkpoint(),
            "alpha_optimizer": self.policy.state_dict(),
            "hypernet": self.net.hypernet_checkpoint(),
            "trainer": self.trainer.state_dict() if self.trainer is not None else None,
            "sampler_generator": self.generator.get_state(),
            "probabilities": self.probabilities,
            "landmark_state": self.landmarks.state_dict() if self.landmarks is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any], source: str) -> None:
        for key in ("alpha", "alpha_optimizer", "hypernet", "probabilities", "sampler_generator"):
            if key not in state:
                raise CheckpointError(f"{source} is incomplete: missing {key!r}")
        stored = restore_hypernet(self.ctx.space, state["hypernet"], source)
        if stored.describe() != self.net.hypernet.describe():
            raise CheckpointError(
                f"{source} used HyperNet {stored.describe()['hypernet']}, the config says "
                f"{self.net.hypernet.describe()['hypernet']}"
            )
        if (state.get("trainer") is None) != (self.trainer is None):
            raise CheckpointError(f"{source}: search.wpnas.update_weights differs from the run that wrote it")
        self.net.hypernet.load_state_dict(stored.state_dict())
        self.dist.load_checkpoint(state["alpha"], source)
        self.policy.load_state_dict(state["alpha_optimizer"])
        if self.trainer is not None:
            self.trainer.load_state_dict(state["trainer"])
        self.probabilities = [list(map(list, p)) for p in state["probabilities"]]
        self.generator.set_state(state["sampler_generator"])
        if self.landmarks is not None and state.get("landmark_state") is not None:
            self.landmarks.load_state_dict(state["landmark_state"])


def restore_search(
    checkpoint: dict[str, Any], device: torch.device | str = "cpu", source: str = "searched SuperNet checkpoint"
) -> tuple[WeaklySharedSuperNet, ArchDistribution]:
    """The SuperNet with its HyperNet and the architecture distribution stored by a WPNAS search."""
    check_checkpoint(checkpoint, source)
    if checkpoint.get("stage") != STAGE or "alpha" not in checkpoint or "hypernet" not in checkpoint:
        raise CheckpointError(
            f"{source} is not a WPNAS search checkpoint (stage {checkpoint.get('stage')!r}, "
            f"method {checkpoint.get('method')!r})"
        )
    supernet = restore_supernet(checkpoint, device, source=source)
    hypernet = restore_hypernet(supernet.space, checkpoint["hypernet"], source).to(device)
    dist = ArchDistribution.from_checkpoint(supernet.space, checkpoint["alpha"], source)
    return WeaklySharedSuperNet(supernet, hypernet), dist
