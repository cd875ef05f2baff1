"""Search settings (``search:`` in the parameters), parsed once into these dataclasses.

The dataclass defaults are the paper's settings (one source of defaults); the Kedro
environments override what their budget needs (``conf/base`` is a CPU budget).
``search`` holds what every method shares (which method, epochs, batches, evaluation
cadence, hardware); each method has its own section: ``search.wpnas``,
``search.evolution``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from wpnas.data.batching import AugmentConfig
from wpnas.errors import ConfigError
from wpnas.latency import check_bound
from wpnas.search.evolution import EvolutionConfig
from wpnas.search.hypernet import HyperNetConfig
from wpnas.search.registry import check_method_name
from wpnas.search.reward import RewardConfig
from wpnas.search.selection import SelectionConfig
from wpnas.search.self_critical import DEFAULT_ALPHA_BETAS, DEFAULT_ALPHA_LR, check_alpha_settings
from wpnas.train.engine import EngineConfig
from wpnas.train.landmark import LandmarkConfig
from wpnas.train.optim import OptimConfig


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


@dataclass(frozen=True)
class SearchConfig:
    """``search``: the method and what the runner owns.

    ``epochs`` (paper: 300) of ``steps_per_epoch`` steps (default: one pass over the
    training batches) for step-based methods; evolution runs ``evolution.generations``
    epochs of one generation. ``valid_batch_size``: the reward batch (WPNAS scores the
    sample and the greedy baseline on the same one, BN on batch statistics, so it should
    not be tiny). Every ``eval_every`` epochs (and after the last) the method's current
    architecture is evaluated on up to ``eval_valid_limit`` validation images with
    inherited weights after BN recalibration on ``calib_batches`` training batches
    (0 = never); evolution's fitness is the same evaluation. ``selection``: the final
    selection after the search (:mod:`wpnas.search.selection`; its own node in the pipeline).
    ``max_latency_ms`` (beyond the paper): a hard bound on the latency table's milliseconds for
    every candidate of SPOS evolution and for the final selection's choice (null: none).
    """

    method: str = "wpnas"
    epochs: int = 300
    steps_per_epoch: int | None = None
    batch_size: int = 64
    valid_batch_size: int = 256
    eval_every: int = 10
    eval_valid_limit: int | None = 2000
    eval_batch_size: int = 512
    calib_batches: int = 4
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    log_every: float = 30.0
    wpnas: WPNASConfig = field(default_factory=WPNASConfig)
    evolution: EvolutionConfig = field(default_factory=EvolutionConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    max_latency_ms: float | None = None

    def __post_init__(self) -> None:
        check_method_name(self.method)
        check_bound(self.max_latency_ms, "search.max_latency_ms")
        if self.epochs < 1:
            raise ConfigError(f"search.epochs: {self.epochs} must be >= 1")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ConfigError(f"search.steps_per_epoch: {self.steps_per_epoch} must be >= 1 or null")
        for name in ("batch_size", "valid_batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"search.{name}: {getattr(self, name)} must be >= 1")
        if self.eval_every < 0 or self.calib_batches < 0:
            raise ConfigError(
                f"search.eval_every ({self.eval_every}) and search.calib_batches ({self.calib_batches}) must be >= 0"
            )
        if self.eval_valid_limit is not None and self.eval_valid_limit < 1:
            raise ConfigError(f"search.eval_valid_limit: {self.eval_valid_limit} must be >= 1 or null")

    @property
    def uses_predictor(self) -> bool:
        """Does this run need the trained predictor (WPNAS with ``reward.b1 > 0``)?"""
        return self.method == "wpnas" and self.wpnas.reward.uses_predictor

    @property
    def uses_latency(self) -> bool:
        """Does this run need the latency table (the reward prices latency, or a latency bound)?"""
        return self.max_latency_ms is not None or (self.method == "wpnas" and self.wpnas.reward.uses_latency)

    @property
    def uses_landmarks(self) -> bool:
        """Does this run need ground-truth pairs as landmarks?"""
        return self.method == "wpnas" and self.wpnas.landmark.enabled
