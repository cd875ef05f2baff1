"""Search settings (``search:`` in the parameters), parsed once into these dataclasses.

The dataclass defaults are the paper's settings (one source of defaults); the Kedro
environments override what their budget needs (``conf/base`` is a CPU budget).
``search`` holds what every method shares (which method, epochs, batches, evaluation
cadence, hardware); each method declares its own settings and the section key they
stand under (``search.wpnas``, ``search.evolution``, ...), so a new method adds no field here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from wpnas.data.batching import AugmentConfig
from wpnas.config import keyed_defaults
from wpnas.errors import ConfigError
from wpnas.latency import check_bound
from wpnas.search.registry import check_method_name, get_method, method_settings
from wpnas.search.selection import SelectionConfig
from wpnas.train.engine import EngineConfig


@dataclass(frozen=True)
class MethodNeeds:
    """What a search method takes besides the warmed SuperNet and the splits (the search node
    passes it, and checks where it came from, only when the method needs it)."""

    predictor: bool = False
    landmarks: bool = False
    latency: bool = False  # the method prices architectures by the latency table

    @property
    def pairs(self) -> bool:
        """Are the ground-truth pairs used (through the predictor, or as landmarks)?"""
        return self.predictor or self.landmarks


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
    ``methods``: every registered method's settings, keyed by the section each method declares
    (``search.wpnas``, ``search.evolution``, ...; absent sections at their defaults), so a new
    method adds no field here; ``settings`` is the chosen method's.
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
    methods: dict[str, Any] = keyed_defaults(method_settings)
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

    def __getattr__(self, name: str) -> Any:
        """A method's settings by their section key (``cfg.wpnas``, ``cfg.evolution``)."""
        methods = self.__dict__.get("methods")
        if name.startswith("_") or methods is None or name not in methods:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute or method section {name!r}")
        return methods[name]

    @property
    def method_class(self) -> Any:
        """The chosen method's class (:class:`~wpnas.search.methods.SearchMethod`): the glue asks it."""
        return get_method(self.method)

    @property
    def settings(self) -> Any:
        """The chosen method's settings (``search.<its settings key>``)."""
        return self.methods[self.method_class.settings_key]

    @property
    def needs(self) -> MethodNeeds:
        """What the chosen method takes besides the warmed SuperNet (predictor, landmarks)."""
        return self.method_class.needs(self.settings)

    def with_method(self, method: str, settings: Any = None, **changes: Any) -> SearchConfig:
        """A copy running ``method`` (with ``settings`` as its section, when given)."""
        key = get_method(method).settings_key
        methods = self.methods if settings is None else {**self.methods, key: settings}
        return replace(self, method=method, methods=methods, **changes)

    @property
    def uses_latency(self) -> bool:
        """Does this run need the latency table (the method prices latency, or a latency bound)?"""
        return self.max_latency_ms is not None or self.needs.latency
