"""The generic search runner: epochs, batches, evaluation cadence, progress, tracking,
artifacts and checkpoint / resume, for any :class:`~wpnas.search.methods.SearchMethod`.

Per epoch the history (and the active MLflow run, prefix ``search/``) gets the mean of
the method's step metrics, its epoch metrics, the cost of its current architecture
(``argmax_flops_m``, ``argmax_params_m``: "argmax" is the method's current choice:
argmax alpha for WPNAS, the best evaluated architecture for evolution), training
loss/accuracy and lr when weights train, and ``argmax_valid_acc`` / ``argmax_valid_loss``
on evaluation epochs (inherited weights, BN recalibrated on a fixed draw of training
batches per architecture, so a score does not depend on when it was measured).

``run(stop_epoch)`` stops early; ``resume`` continues from a search checkpoint of the same
method exactly, or extends it to more epochs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from wpnas import distributed
from wpnas import tracking  # noqa: F401  (where EpochLoop sends the search/* metrics; tests patch it here)
from wpnas.config import rng_state, set_rng_state, to_dict
from wpnas.data.splits import ImageSplits
from wpnas.errors import CheckpointError, ConfigError, DataError
from wpnas.fingerprint import content_fingerprint, record
from wpnas.io.stage_checkpoint import CheckpointPolicy
from wpnas.io.supernet_checkpoint import check_checkpoint, check_made_from, make_checkpoint
from wpnas.progress import Progress
from wpnas.search.config import SearchConfig
from wpnas.search.methods import STAGE, SearchContext, SearchMethod, StepBatches
from wpnas.search.registry import get_method
from wpnas.spaces.base import Arch, SearchSpace
from wpnas.train.engine import Engine, check_finite
from wpnas.train.fast import first_batch, graph_candidate_ops
from wpnas.train.stage import EpochLoop, StageRunner

logger = logging.getLogger(__name__)


@dataclass
class SearchResult:
    """The search artifacts plus the per-epoch history (also inside the checkpoint).

    ``trajectory``: the method's per-epoch table (WPNAS: ``alpha_trajectory``), or None.
    """

    checkpoint: dict[str, Any]
    final_genotype: dict[str, Any]
    history: list[dict[str, Any]]
    trajectory: pd.DataFrame | None

    @property
    def alpha_trajectory(self) -> pd.DataFrame | None:
        return self.trajectory


class SearchRunner:
    """One search run of ``cfg.method``; :func:`run_search` is the usual entry point.

    Construction validates everything (config, inputs, checkpoints, data) and builds the
    method before any training, so bad input fails fast.
    """

    def __init__(
        self,
        space: SearchSpace,
        splits: ImageSplits,
        warmed_checkpoint: dict[str, Any],
        cfg: SearchConfig,
        device: torch.device | str,
        seed: int = 0,
        predictor: Any = None,
        landmarks: pd.DataFrame | None = None,
        resume: dict[str, Any] | None = None,
        checkpoint: CheckpointPolicy | None = None,
        latency: Any = None,
    ) -> None:
        if not isinstance(cfg, SearchConfig):
            raise ConfigError(
                f"search settings must be a SearchConfig (parse parameters with from_dict), got {type(cfg).__name__}"
            )
        self.cfg = cfg
        self.space = space
        self.seed = int(seed)
        if splits.valid_x.shape[0] == 0:
            raise DataError("search needs a non-empty valid split: rewards, fitness and evaluations are measured on it")
        check_made_from(warmed_checkpoint, splits, "warmed_supernet")
        splits_record = splits.fingerprint()
        self.inputs = {"image_splits": splits_record, "warmed_supernet": _get(warmed_checkpoint, "fingerprint")}
        if cfg.uses_latency and latency is None:
            raise ConfigError(
                "search prices or bounds latency (search.wpnas.reward.cost: latency or search.max_latency_ms) but no "
                "latency table was given; build one with kedro run --pipelines=latency"
            )
        if latency is not None and cfg.max_latency_ms is not None:
            latency.check_bound(cfg.max_latency_ms, "search.max_latency_ms")
        self.ctx = SearchContext(space, splits, cfg, Engine(device, cfg.engine), seed, warmed_checkpoint, predictor,
                                 landmarks, latency if cfg.uses_latency else None)
        self.device = self.ctx.device
        self.warmed_from = {k: warmed_checkpoint.get(k) for k in ("stage", "epoch", "seed") if k in warmed_checkpoint}
        method_cls = get_method(cfg.method)
        self.method: SearchMethod = method_cls(self.ctx)
        if self.method.trains_weights and splits.train_x.shape[0] == 0:
            raise DataError(f"search method {cfg.method!r} trains SuperNet weights and needs a non-empty train split")
        self.fingerprint = record({
            "stage": STAGE, "space": space.name, "options": space.options(),
            # the selection runs after the search (its own node): its settings do not change the search
            "config": {k: v for k, v in to_dict(cfg).items() if k != "selection"}, "seed": self.seed,
            "inputs": {"image_splits": splits_record["fingerprint"],
                       "warmed_supernet": (_get(warmed_checkpoint, "fingerprint") or {}).get("fingerprint")
                       or content_fingerprint(_get(warmed_checkpoint, "state_dict")),
                       "predictor": None if predictor is None else content_fingerprint(_predictor_state(predictor)),
                       "landmarks": None if landmarks is None else content_fingerprint(
                           landmarks.to_dict("list") if isinstance(landmarks, pd.DataFrame) else landmarks),
                       "resume": None if resume is None else content_fingerprint(
                           {k: resume.get(k) for k in ("epoch", "state_dict")}),
                       **({"latency": latency.fingerprint["fingerprint"]} if self.ctx.latency is not None else {})},
        })
        self.epoch = 0  # completed epochs
        self.history: list[dict[str, Any]] = []
        self.elapsed = 0.0
        self.stage = StageRunner(STAGE, self.fingerprint["fingerprint"], checkpoint, self.num_epochs,
                                 writes=distributed.current().is_main)
        in_progress = self.stage.load()
        if in_progress is not None:
            self._resume(in_progress, f"in-progress checkpoint {str(self.stage.store.path)!r}")
            self.stage.log_resume(self.epoch)
        elif resume is not None:
            self._resume(resume)

    @property
    def num_epochs(self) -> int:
        return self.method.num_epochs

    # -- epochs ----------------------------------------------------------------------
    def run(self, stop_epoch: int | None = None) -> SearchResult:
        """Search up to the method's epochs (or stop after ``stop_epoch``; ``run`` again continues)."""
        total = self.num_epochs
        stop = total if stop_epoch is None else min(int(stop_epoch), total)
        restore_ops = (
            graph_candidate_ops(self.method.supernet, self.ctx.engine,
                                lambda: first_batch(self.ctx.splits, self.cfg.batch_size, self.ctx.engine), "search",
                                refuse=self.method.graph_refusal, offsets_for=self.method.weight_offsets)
            if self.method.graph_weight_steps and self.epoch < stop else (lambda: None)
        )
        self._clock = time.monotonic()
        loop = EpochLoop(self.cfg.method, "search/", self.stage, lambda done, new: self._timed_checkpoint(),
                         log_every=self.cfg.log_every, progress_keys=_PROGRESS_KEYS, untracked=("epoch", "argmax"))
        try:
            loop.run(self._epoch, self.epoch, stop)
        finally:
            restore_ops()
        self._fold_time()
        if self.epoch >= total:
            self.stage.finish(self.checkpoint)
        return self.result()

    def _fold_time(self) -> None:
        """Add the time since the last fold to ``elapsed`` (the checkpoint's ``seconds``)."""
        now = time.monotonic()
        self.elapsed += now - self._clock
        self._clock = now

    def _timed_checkpoint(self) -> dict[str, Any]:
        self._fold_time()
        return self.checkpoint()

    def _epoch(self, epoch: int, bar: Progress | None = None) -> dict[str, Any]:
        """One epoch of the method; its metrics, also added to the history."""
        cfg = self.cfg
        begun = time.monotonic()
        meter = self.method.begin_epoch(epoch)
        batches = StepBatches(
            train=self.ctx.train_batches.forever() if self.ctx.train_batches is not None else None,
            valid=self.ctx.valid_batches.forever(),
            meter=meter,
        )
        steps = self.method.steps_per_epoch()
        sums: dict[str, float] = {}
        for done in range(1, steps + 1):
            for key, value in self.method.step(batches).items():
                sums[key] = sums.get(key, 0.0) + value
            if bar is not None:
                bar.within(done, steps, "step")
        metrics: dict[str, Any] = {k: v / steps for k, v in sums.items()}
        if meter is not None and meter.count:
            # in a world of several ranks each meter saw its share: the mean of the global batches
            metrics.update({f"train_{k}": v for k, v in meter.result(across_ranks=True).items()})
            check_finite(metrics["train_loss"], f"search epoch {epoch + 1}")
        metrics.update(self.method.end_epoch(epoch))
        current = self.method.current()
        cost = self.space.cost(current, self.ctx.input_shape, self.ctx.num_classes)
        metrics.update(argmax_flops_m=float(cost.flops_m), argmax_params_m=float(cost.params_m))
        if cfg.eval_every and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == self.num_epochs):
            result = self.evaluate(current)
            metrics.update(argmax_valid_acc=result["acc"], argmax_valid_loss=result["loss"])
        metrics["epoch_seconds"] = time.monotonic() - begun
        metrics["epoch"] = epoch + 1
        metrics["argmax"] = self.space.to_string(current)
        self.history.append(metrics)
        self.epoch = epoch + 1
        return metrics

    def evaluate(self, arch: Arch) -> dict[str, float]:
        """Valid loss / accuracy (%) of ``arch`` with the method's inherited (offset) weights."""
        with torch.no_grad():
            offsets = self.method.offsets(arch)
        return self.ctx.evaluate(self.method.supernet, arch, offsets)

    # -- artifacts -------------------------------------------------------------------
    def final_genotype(self) -> dict[str, Any]:
        """The method's final choice with its cost and the settings that produced it (JSON-ready)."""
        arch = self.method.current()
        cost = self.space.cost(arch, self.ctx.input_shape, self.ctx.num_classes)
        last = self.history[-1] if self.history else {}
        text = self.space.to_string(arch)
        measured = last.get("argmax_valid_acc") if last.get("argmax") == text else None
        if measured is None:
            measured = self.method.known_valid_accuracy(arch)
        return {
            "space": self.space.name,
            "options": self.space.options(),
            "method": self.cfg.method,
            "arch": text,
            "choices": [int(a) for a in arch],
            "choice_names": self.space.choice_names(arch),
            "decisions": [d.name for d in self.space.decisions],
            "flops_m": float(cost.flops_m),
            "params_m": float(cost.params_m),
            "input_shape": [int(s) for s in self.ctx.input_shape],
            "num_classes": int(self.ctx.num_classes),
            "supernet_valid_acc": measured,
            "epochs": self.epoch,
            "seed": self.seed,
            # the method's best architectures by its own belief, its choice first (the final selection's pool)
            "top_candidates": [self.space.to_string(a) for a in self.method.top_candidates(
                self.cfg.selection.search_top_k if self.cfg.selection.enabled else 1)],
            **self.method.details(arch),
            **({"latency_table_ms": float(self.ctx.latency(arch)),
                "cost": "latency" if self.cfg.needs.latency else "flops", "max_latency_ms": self.cfg.max_latency_ms}
               if self.ctx.latency is not None else {}),
        }

    def checkpoint(self) -> dict[str, Any]:
        """The ``searched_supernet`` checkpoint: everything needed to reuse or resume the search."""
        train = self.ctx.train_batches
        return make_checkpoint(
            self.method.supernet,
            stage=STAGE,
            method=self.cfg.method,
            epoch=self.epoch,
            rng=rng_state(),
            batch_generators={
                "train": train.generator.get_state() if train is not None else None,
                "valid": self.ctx.valid_batches.generator.get_state(),
            },
            config=to_dict(self.cfg),
            seed=self.seed,
            history=self.history,
            final_arch=self.space.to_string(self.method.current()),
            warmed_from=self.warmed_from,
            fingerprint=self.fingerprint,
            inputs=self.inputs,
            seconds=self.elapsed,
            device=str(self.device),
            world={"size": distributed.current().size, "backend": distributed.current().backend or "none"},
            **self.method.state_dict(),
        )

    def result(self) -> SearchResult:
        return SearchResult(
            checkpoint=self.checkpoint(),
            final_genotype=self.final_genotype(),
            history=list(self.history),
            trajectory=self.method.trajectory(),
        )

    # -- resume ----------------------------------------------------------------------
    def _resume(self, state: dict[str, Any], source: str = "search resume checkpoint") -> None:
        check_checkpoint(state, source)
        if state.get("stage") != STAGE:
            raise CheckpointError(f"{source} is a {state.get('stage')!r} checkpoint, expected a {STAGE!r} one")
        method = state.get("method", "wpnas")
        if method != self.cfg.method:
            raise CheckpointError(f"{source} was written by search method {method!r}, the config says {self.cfg.method!r}")
        for key in ("epoch", "rng"):
            if key not in state:
                raise CheckpointError(f"{source} is incomplete: missing {key!r}")
        self.method.supernet.check_compatible(state["supernet"], source)
        stored = state.get("config", {})
        changed = sorted(k for k, v in to_dict(self.cfg).items() if k not in ("epochs", "selection") and stored.get(k) != v)
        if changed:
            logger.warning("resuming a search with changed settings: %s", changed)
        self.method.load_state_dict(state, source)
        self.method.supernet.load_state_dict(state["state_dict"])
        self.epoch = int(state["epoch"])
        self.history = list(state.get("history", []))
        self.elapsed = float(state.get("seconds", 0.0))
        set_rng_state(state["rng"])
        generators = state.get("batch_generators") or {}
        if self.ctx.train_batches is not None and generators.get("train") is not None:
            self.ctx.train_batches.generator.set_state(generators["train"])
        if generators.get("valid") is not None:
            self.ctx.valid_batches.generator.set_state(generators["valid"])
        if self.epoch >= self.num_epochs:
            logger.info("search checkpoint already has %d >= %d epochs; nothing to do", self.epoch, self.num_epochs)


_PROGRESS_KEYS = ("reward_mean", "entropy", "best_fitness", "argmax_flops_m", "argmax_valid_acc")


def _predictor_state(predictor: Any) -> Any:
    to_checkpoint = getattr(predictor, "to_checkpoint", None)
    return to_checkpoint() if callable(to_checkpoint) else type(predictor).__qualname__


def _get(checkpoint: Any, key: str) -> Any:
    return checkpoint.get(key) if isinstance(checkpoint, dict) else None


def run_search(
    space: SearchSpace,
    splits: ImageSplits,
    warmed_checkpoint: dict[str, Any],
    cfg: SearchConfig,
    device: torch.device | str,
    seed: int = 0,
    predictor: Any = None,
    landmarks: pd.DataFrame | None = None,
    resume: dict[str, Any] | None = None,
    checkpoint: CheckpointPolicy | None = None,
    latency: Any = None,
) -> SearchResult:
    """Run the configured search method from a warmed SuperNet checkpoint (paper step 4).

    ``predictor``: a :class:`~wpnas.predictors.Predictor` or any callable mapping a list of
    architectures to predicted accuracies in percent; required by WPNAS when
    ``wpnas.reward.b1 > 0``. ``landmarks``: ground-truth pairs (columns ``arch``,
    ``accuracy``) for ``wpnas.landmark``. ``resume``: a ``searched_supernet`` checkpoint of
    the same method to continue up to its epochs. ``checkpoint``: write the search state
    every ``checkpoint.every`` epochs to ``<folder>/search-<fingerprint>.pt`` (the fingerprint
    of the splits, warmed SuperNet, predictor, landmarks, settings and seed) and, with
    ``checkpoint.resume``, continue a killed search from it (same schedule); removed when done.
    ``latency``: a :class:`~wpnas.latency.LatencyTable`, needed when ``cfg.uses_latency``.
    """
    return SearchRunner(space, splits, warmed_checkpoint, cfg, device, seed, predictor, landmarks, resume,
                        checkpoint, latency).run()
