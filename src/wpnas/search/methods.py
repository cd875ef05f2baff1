"""The search-method interface and its name registry (``get_method("wpnas")``).

A search method decides *which* architectures to train and score and *how* it updates
its belief; the generic runner (:mod:`wpnas.search.runner`) owns everything else:
epochs, data batches, the evaluation cadence, progress, tracking, the artifacts and
checkpoint / resume. A method is one file: it declares ``settings_key`` and ``Settings``
(its section ``search.<settings_key>``), what it ``needs`` (predictor, landmarks), its
checks before a run (``check``, ``check_world`` for a torch.distributed world) and what it
writes (``outputs``: the trajectory table and heatmap), and implements:

* ``num_epochs`` / ``steps_per_epoch``: how long it runs (WPNAS: ``search.epochs`` of one
  pass over the training batches; evolution: ``search.evolution.generations`` of one step);
* ``step(batches)``: one update; returns scalar metrics (averaged per epoch by the runner);
* ``end_epoch(epoch)``: scalar metrics of the epoch (entropy, best fitness, ...);
* ``current()``: the architecture it would choose now (the final choice after the last epoch);
* optionally ``top_candidates(k)``: its k best by its own belief, ``current()`` first (the
  final selection's pool, :mod:`wpnas.search.selection`);
* ``state_dict`` / ``load_state_dict``: its own state, merged into the search checkpoint;
* optionally ``offsets(arch)`` (weakly weight sharing), ``known_valid_accuracy(arch)``
  (a score it already measured the runner's way), ``details(arch)`` (extra genotype fields)
  and ``trajectory()`` (a per-epoch table, e.g. alpha).

Methods never special-case a space, and the runner never special-cases a method.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, TYPE_CHECKING

import pandas as pd
import torch

from wpnas import distributed
from wpnas.data.batching import DeviceBatches, warn_oversize_batch
from wpnas.data.splits import ImageSplits
from wpnas.io.supernet_checkpoint import restore_supernet
from wpnas.search.config import MethodNeeds, SearchConfig
from wpnas.search.trajectory import COLUMNS, no_trajectory_figure
from wpnas.seeds import stream_seed
from wpnas.spaces.base import Arch, SearchSpace
from wpnas.spaces.supernet import SuperNet, describe_supernet
from wpnas.train.engine import Engine, Meter
from wpnas.train.evaluation import evaluate_architecture, evaluate_many, paths_in_flight

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn
    from matplotlib.figure import Figure

#: ``stage`` of every search checkpoint (whatever the method).
STAGE = "search"

Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


class SearchContext:
    """What the runner hands a method: settings, inputs, the engine and the data streams.

    The data streams are built on first use, so a method validates its inputs (predictor,
    checkpoints, landmarks) before any image reaches the device.
    """

    def __init__(
        self,
        space: SearchSpace,
        splits: ImageSplits,
        cfg: SearchConfig,
        engine: Engine,
        seed: int,
        warmed_checkpoint: dict[str, Any],
        predictor: Any = None,
        landmarks: pd.DataFrame | None = None,
        latency: Any = None,
    ) -> None:
        self.space = space
        self.splits = splits
        self.cfg = cfg
        self.engine = engine
        self.seed = int(seed)
        self.input_shape: tuple[int, int, int] = tuple(splits.input_shape)
        self.num_classes = int(splits.num_classes)
        self.warmed_checkpoint = warmed_checkpoint
        self.predictor = predictor
        self.landmarks = landmarks
        #: the latency table (:class:`~wpnas.latency.LatencyTable`, ``arch -> ms``) when the reward prices
        #: latency or ``search.max_latency_ms`` bounds it; else None
        self.latency = latency

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @cached_property
    def train_batches(self) -> DeviceBatches | None:
        """Augmented, shuffled training batches (None when the train split is empty)."""
        if self.splits.train_x.shape[0] == 0:
            return None
        warn_oversize_batch("search.batch_size", self.cfg.batch_size, self.splits.train_x.shape[0], "train")
        return DeviceBatches.from_splits(
            self.splits, "train", self.device, self.cfg.batch_size, train=True, augment=self.cfg.augment,
            seed=self.seed, channels_last=self.engine.channels_last,
        )

    @cached_property
    def valid_batches(self) -> DeviceBatches:
        """Shuffled validation batches of ``valid_batch_size`` (rewards)."""
        vx, vy = self.splits.split("valid")
        size = self.cfg.valid_batch_size
        warn_oversize_batch("search.valid_batch_size", size, vx.shape[0], "valid")
        return DeviceBatches(
            vx, vy, self.splits.mean, self.splits.std, device=self.device, batch_size=size, shuffle=True,
            augment=None, drop_last=vx.shape[0] > size, seed=stream_seed(self.seed, "search.valid_batches"),
            channels_last=self.engine.channels_last,
        )

    @cached_property
    def eval_batches(self) -> DeviceBatches:
        """Up to ``eval_valid_limit`` validation images (inherited-weight evaluations, fitness)."""
        return DeviceBatches.from_splits(
            self.splits, "valid", self.device, self.cfg.eval_batch_size, train=False, seed=self.seed,
            channels_last=self.engine.channels_last, limit=self.cfg.eval_valid_limit,
        )

    @cached_property
    def calib_source(self) -> DeviceBatches | None:
        """Class-mixed training batches for BN recalibration (None when the train split is empty)."""
        if self.splits.train_x.shape[0] == 0:
            return None
        return DeviceBatches.from_splits(
            self.splits, "train", self.device, self.cfg.batch_size, train=False, shuffle=True,
            seed=stream_seed(self.seed, "calibration"), channels_last=self.engine.channels_last,
        )

    @cached_property
    def steps_per_epoch(self) -> int:
        """``search.steps_per_epoch``, or one pass over the training (else validation) batches."""
        if self.cfg.steps_per_epoch:
            return self.cfg.steps_per_epoch
        base = self.train_batches if self.train_batches is not None else self.valid_batches
        return len(base)

    def restore_warmed(self) -> SuperNet:
        """The warmed SuperNet on the device, after checking it was built for this space and data."""
        expected = describe_supernet(self.space, self.input_shape[0], self.num_classes)
        supernet = restore_supernet(self.warmed_checkpoint, "cpu", expected=expected, source="warmed SuperNet checkpoint")
        return self.engine.prepare(supernet)

    def evaluate(self, supernet: SuperNet, arch: Arch, offsets: torch.Tensor | None = None) -> dict[str, float]:
        """Valid loss / accuracy (%) of ``arch`` with inherited weights after BN recalibration."""
        return evaluate_architecture(supernet, arch, self.eval_batches, self.engine, self._calibration(arch), offsets)

    def evaluate_many(self, supernet: SuperNet, archs: list[Arch]) -> list[dict[str, float]]:
        """:meth:`evaluate` of each architecture (plain sharing), ``engine.paths_in_flight`` at a time."""
        return evaluate_many(supernet, archs, self.eval_batches, self.engine,
                             calib_per_arch=[self._calibration(a) for a in archs])

    def accuracies(self, supernet: SuperNet, archs: list[Arch]) -> list[float]:
        """Inherited-weight validation accuracy (%) of each architecture (:meth:`evaluate_many`), in
        groups of paths in flight, sharded over the ranks of a torch.distributed world and gathered
        in order: the fitness of the methods that score architectures on frozen SuperNet weights."""
        width = paths_in_flight(supernet, self.engine)
        return distributed.map_groups(lambda group: [r["acc"] for r in self.evaluate_many(supernet, group)],
                                      archs, width)

    def _calibration(self, arch: Arch) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self.calib_source is None or not self.cfg.calib_batches:
            return []
        # A fixed draw per architecture: the same whenever (and whether resumed or not) it is measured.
        self.calib_source.generator.manual_seed(stream_seed(self.seed, "calibration") + self.space.index(arch) % (2**31))
        return self.calib_source.take(self.cfg.calib_batches)


@dataclass
class StepBatches:
    """What one step may draw from: endless training and validation streams, and the epoch's meter."""

    train: Batches | None
    valid: Batches
    meter: Meter | None


class SearchMethod(ABC):
    """One search method bound to one run (see the module docstring for the contract)."""

    #: Registry name, set by :func:`register_method`.
    name: ClassVar[str]
    #: The section of its settings under ``search`` (``search.<settings_key>``) ...
    settings_key: ClassVar[str]
    #: ... and their frozen dataclass (its defaults: the method's published settings).
    Settings: ClassVar[type]
    #: Does its own choice respect ``search.max_latency_ms`` (else only the final selection bounds it)?
    bounds_latency: ClassVar[bool] = False

    def __init__(self, ctx: SearchContext) -> None:
        self.ctx = ctx

    @property
    def settings(self) -> Any:
        """Its own settings (``search.<settings_key>``)."""
        return self.ctx.cfg.settings

    # -- what the glue asks the method (before a run; class level) -----------------------
    @classmethod
    def needs(cls, settings: Any) -> MethodNeeds:
        """What it takes besides the warmed SuperNet and the splits (predictor, landmarks)."""
        return MethodNeeds()

    @classmethod
    def cost_price(cls, settings: Any) -> tuple[float, float] | None:
        """How its own objective prices an architecture's cost, as ``(per cost unit, per
        accuracy point)`` (WPNAS: ``(b2, b1)``), or None when it does not price cost."""
        return None

    @classmethod
    def check(cls, cfg: SearchConfig, space: SearchSpace, input_shape: Sequence[int] | None,
              num_classes: int) -> None:
        """Raise ``ConfigError`` (naming ``search.<key>``) when the settings cannot run on ``space``;
        ``input_shape`` None: the image size is not known before the data is loaded."""

    @classmethod
    def check_world(cls, cfg: SearchConfig, size: int) -> None:
        """Raise ``ConfigError`` when the settings cannot run on a torch.distributed world of ``size`` ranks."""

    @classmethod
    def outputs(cls, trajectory: pd.DataFrame | None, space: SearchSpace) -> tuple[pd.DataFrame, Figure]:
        """What it writes as ``alpha_trajectory`` and ``alpha_heatmap``: methods without an
        architecture distribution write an empty table and a figure that says so."""
        return pd.DataFrame(columns=list(COLUMNS)), no_trajectory_figure(cls.name)

    @property
    def trains_weights(self) -> bool:
        """Does the method update SuperNet weights (then it needs a non-empty train split)?"""
        return False

    @property
    def graph_weight_steps(self) -> bool:
        """Do its weight steps run one SuperNet path per step (so the candidate ops may be
        replayed as CUDA graphs, :func:`wpnas.train.fast.graph_candidate_ops`)?"""
        return False

    def weight_offsets(self, arch: Arch) -> torch.Tensor | None:
        """The offsets its weight steps give ``arch``'s path (weakly weight sharing), or None."""
        return None

    @property
    def graph_refusal(self) -> str | None:
        """Why the weight steps must not use per-op graphs although they are plain (logged), or None."""
        return None

    @property
    @abstractmethod
    def supernet(self) -> SuperNet:
        """The shared weights the method searches with (saved in the search checkpoint)."""

    @property
    @abstractmethod
    def num_epochs(self) -> int:
        """Epochs of a full run."""

    def steps_per_epoch(self) -> int:
        return self.ctx.steps_per_epoch

    def begin_epoch(self, epoch: int) -> Meter | None:
        """Prepare an epoch; return a meter for training loss/accuracy when weights train."""
        return None

    @abstractmethod
    def step(self, batches: StepBatches) -> dict[str, float]:
        """One update."""

    def end_epoch(self, epoch: int) -> dict[str, float]:
        return {}

    @abstractmethod
    def current(self) -> Arch:
        """The architecture the method would choose now."""

    def top_candidates(self, k: int) -> list[Arch]:
        """The method's ``k`` best architectures by its own belief, its final choice first (the
        final selection's pool; methods without a ranking offer their one choice)."""
        return [self.current()][:k]

    def offsets(self, arch: Arch) -> torch.Tensor | None:
        """Weakly-weight-sharing offsets of ``arch`` for inherited-weight evaluation (None: plain sharing)."""
        return None

    def known_valid_accuracy(self, arch: Arch) -> float | None:
        """An inherited-weight validation accuracy of ``arch`` measured the runner's way, if the method has one."""
        return None

    def details(self, arch: Arch) -> dict[str, Any]:
        """Method-specific fields of the final genotype (JSON-ready)."""
        return {}

    def trajectory(self) -> pd.DataFrame | None:
        """A per-epoch table of the method's state (WPNAS: alpha), or None."""
        return None

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly (merged into the search checkpoint)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any], source: str) -> None:
        """Restore from a search checkpoint written by the same method."""


class FrozenSuperNetMethod(SearchMethod):
    """Base of the methods that score architectures with the warmed SuperNet's weights, unchanged
    (SPOS evolution, random search): one step per epoch, and ``_fitness(archs)`` is the runner's
    inherited-weight validation accuracy (:meth:`SearchContext.accuracies`). A subclass builds
    its search first (so its checks fail before any model is restored), then calls
    :meth:`restore_frozen`."""

    _supernet: SuperNet

    def restore_frozen(self) -> None:
        self._supernet = self.ctx.restore_warmed()
        self._supernet.requires_grad_(False)

    def _fitness(self, archs: list[Arch]) -> list[float]:
        # each with its own fixed calibration draw, sharded over the ranks of a world
        return self.ctx.accuracies(self._supernet, archs)

    @property
    def supernet(self) -> SuperNet:
        return self._supernet

    def steps_per_epoch(self) -> int:
        return 1
