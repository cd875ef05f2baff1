"""The final selection (beyond the paper): a candidate pool scored by the ground-truth method.

The paper's search ends with ``argmax_A p(A | alpha)``. That choice follows whichever of
its two signals is wrong on a given seed: the SuperNet's cross-entropy (which at small
budgets prefers parameter-free cells) or the predictor's extrapolation from a few
hundred pairs (benchmarks/README.md, "search quality over seeds"). The selection closes
the search instead with a small pool of candidates, each scored the way the ground truth
was scored (the benchmark lookup, or a fine-tune from the same warmed weights):

* ``search_top_k``: the method's own top architectures (WPNAS: the distinct
  architectures of highest joint probability under the final alpha; evolution: the best
  by fitness; the method's final choice always first);
* ``predictor_top_k``: the predictor's best over the whole space, or over a seeded sample
  of ``predictor_sample`` architectures when the space is larger;
* ``ground_truth_top_k``: the best ground-truth architectures, already scored (free).

Under a latency bound (``search.max_latency_ms``) each source gives its best *within* the
bound (the predictor's favourites are asked in order until ``predictor_top_k`` fit), so the
pool stays full when the unbounded favourites are all too slow.

The best of the pool is then refined (``refine_budget``, ``refine_per_step``): its
one-decision neighbours, the predictor's favourites first, are scored the same way a few
at a time, and a better neighbour becomes the best (a local search, the strongest simple
baseline on NAS benchmarks). The found architecture is the best candidate by that score,
so it is never worse by the ground-truth measure than the best ground-truth
architecture. The cost is one ground-truth evaluation per new candidate (at most
``search_top_k + predictor_top_k + refine_budget``; ``new_evaluations`` in the result). With
``enabled: false`` the method's final choice is the answer (the paper's plain argmax).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from wpnas.errors import ConfigError, DataError
from wpnas.io.supernet_checkpoint import restore_supernet
from wpnas.seeds import stream_seed
from wpnas.spaces.base import Arch, SearchSpace
from wpnas.train.ground_truth import acquire_ground_truth

#: ``score(archs) -> accuracies`` (percent) by the ground-truth method.
ScoreFn = Callable[[Sequence[Arch]], Sequence[float]]

#: The origins a candidate can have, in the order a tie between equal scores is broken.
ORIGINS = ("search", "predictor", "ground_truth", "refine")

COLUMNS = ["arch", "origin", "score", "scored_by", "new", "search_rank", "predicted", "objective", "chosen"]


@dataclass(frozen=True)
class SelectionConfig:
    """``search.selection``: the final selection's pool (see the module doc)."""

    enabled: bool = True
    search_top_k: int = 10
    predictor_top_k: int = 10
    predictor_sample: int = 20000
    ground_truth_top_k: int = 5
    refine_budget: int = 48
    refine_per_step: int = 8
    cost_weight: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.cost_weight, bool) or not isinstance(self.cost_weight, (int, float)) \
                or not math.isfinite(self.cost_weight) or self.cost_weight < 0:
            raise ConfigError(f"search.selection.cost_weight: {self.cost_weight!r} must be a number >= 0 (accuracy "
                              "points per unit of cost: MFLOPs, or ms when the search prices latency)")
        minimum = {"search_top_k": 0, "predictor_top_k": 0, "ground_truth_top_k": 0, "refine_budget": 0,
                   "refine_per_step": 1, "predictor_sample": 1}
        for name, least in minimum.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"search.selection.{name}: {value!r} must be an integer >= {least}")
        if self.enabled and self.search_top_k < 1:
            raise ConfigError(
                f"search.selection.search_top_k: {self.search_top_k} must be >= 1 (the method's own choice is a "
                "candidate); set search.selection.enabled: false for the plain final choice"
            )

    def check_space(self, space: SearchSpace) -> None:
        """k larger than the space is refused (before any training)."""
        if not self.enabled:
            return
        for name in ("search_top_k", "predictor_top_k"):
            if getattr(self, name) > space.size:
                raise ConfigError(
                    f"search.selection.{name}: {getattr(self, name)} is more than the {space.size} architectures "
                    f"of {space.name}"
                )


def top_k_joint(probs: Sequence[np.ndarray], k: int) -> list[tuple[Arch, float]]:
    """The ``k`` most probable architectures of independent per-decision distributions, with
    their joint probabilities, most probable first (ties: lower choice indices first).

    A beam of width ``k`` over the decisions is exact here: every prefix of a top-k
    assignment is among the top-k prefixes (otherwise k better prefixes, each completed
    with the same suffix, would beat it)."""
    if k < 1:
        return []
    beam: list[tuple[float, tuple[int, ...]]] = [(0.0, ())]
    for p in probs:
        logp = np.log(np.clip(np.asarray(p, dtype=np.float64), 1e-300, None))
        grown = [(score + float(logp[c]), prefix + (c,)) for score, prefix in beam for c in range(len(logp))
                 if p[c] > 0]
        beam = heapq.nlargest(k, grown, key=lambda item: (item[0], tuple(-c for c in item[1])))
    return [(arch, math.exp(score)) for score, arch in beam]


def predictor_top(space: SearchSpace, predict: Callable[[list[Arch]], np.ndarray], k: int, sample: int,
                  seed: int, admissible: Callable[[Arch], bool] | None = None) -> list[tuple[Arch, float]]:
    """The predictor's ``k`` best of the whole space (or of ``sample`` seeded distinct
    architectures when the space is larger), best first, with their (unclipped) predictions.
    ``admissible`` (a latency bound): the ``k`` best of those it accepts, asked in the
    predictor's order until ``k`` are found."""
    if k < 1:
        return []
    if space.size <= sample:
        archs = list(space.enumerate())
    else:
        archs = space.sample_unique(np.random.default_rng(stream_seed(seed, "selection.predictor_sample")), sample)
    scores = np.asarray(predict(archs), dtype=np.float64)
    order = (int(i) for i in np.argsort(-scores, kind="stable"))
    return [(archs[i], float(scores[i])) for i in first_within(order, k, admissible, key=archs.__getitem__)]


def first_within(items: Iterable[Any], k: int, admissible: Callable[[Arch], bool] | None,
                 key: Callable[[Any], Arch] = lambda item: item) -> list[Any]:
    """The first ``k`` of ``items`` (in their order) whose architecture ``admissible`` accepts, asked
    lazily: a latency lookup traces a network, so the rest are never looked up."""
    return list(itertools.islice((item for item in items if admissible is None or admissible(key(item))), k))


def candidate_pool(
    space: SearchSpace,
    search_candidates: Sequence[Arch],
    predictor_candidates: Sequence[Arch],
    pairs: pd.DataFrame | None,
    ground_truth_top_k: int,
    admissible: Callable[[Arch], bool] | None = None,
) -> list[tuple[Arch, str, int | None]]:
    """Distinct candidates ``(arch, origin, search_rank)`` in pool order: the method's (its final
    choice first), the predictor's, then the best ground-truth architectures (with ``admissible``,
    a latency bound: the best of those within it)."""
    pool: dict[Arch, tuple[str, int | None]] = {}
    for rank, arch in enumerate(search_candidates, start=1):
        pool.setdefault(space.validate(arch), ("search", rank))
    for arch in predictor_candidates:
        pool.setdefault(space.validate(arch), ("predictor", None))
    if pairs is not None and ground_truth_top_k > 0 and len(pairs):
        known = (space.parse(str(text)) for text in pairs.sort_values("accuracy", ascending=False, kind="stable")["arch"])
        for arch in first_within(known, ground_truth_top_k, admissible):
            pool.setdefault(arch, ("ground_truth", None))
    return [(arch, origin, rank) for arch, (origin, rank) in pool.items()]


@dataclass
class Selection:
    """What the selection chose and why: ``table`` has one row per candidate (columns ``COLUMNS``)."""

    chosen: Arch
    table: pd.DataFrame
    new_evaluations: int
    scored_by: str

    def summary(self, space: SearchSpace) -> dict[str, Any]:
        """JSON-ready: the chosen architecture's score, the method's own choice and the best
        ground-truth architecture beside it, and the cost."""
        rows = self.table
        chosen = rows[rows["chosen"]].iloc[0]
        first = rows[rows["search_rank"] == 1]
        known = rows[rows["origin"] == "ground_truth"]
        gt_best = known.sort_values("score", ascending=False, kind="stable").head(1)
        return {
            "enabled": True,
            "arch": space.to_string(self.chosen),
            "score": float(chosen["score"]),
            "objective": float(chosen["objective"]),
            "scored_by": self.scored_by,
            "origin": str(chosen["origin"]),
            "candidates": int(len(rows)),
            "new_evaluations": int(self.new_evaluations),
            "search_choice": None if first.empty else {
                "arch": str(first.iloc[0]["arch"]), "score": float(first.iloc[0]["score"])},
            "best_ground_truth": None if gt_best.empty else {
                "arch": str(gt_best.iloc[0]["arch"]), "score": float(gt_best.iloc[0]["score"])},
        }


def neighbours(space: SearchSpace, arch: Arch) -> list[Arch]:
    """Every valid architecture that differs from ``arch`` in exactly one decision."""
    out: list[Arch] = []
    for position, count in enumerate(space.num_choices):
        for choice in range(count):
            if choice != arch[position]:
                candidate = list(arch)
                candidate[position] = choice
                try:
                    out.append(space.validate(candidate))
                except Exception:  # noqa: BLE001 - a space may refuse some one-decision changes
                    continue
    return out


def select_architecture(
    space: SearchSpace,
    pool: Sequence[tuple[Arch, str, int | None]],
    score: ScoreFn,
    scored_by: str,
    pairs: pd.DataFrame | None = None,
    predicted: Callable[[list[Arch]], np.ndarray] | None = None,
    refine_budget: int = 0,
    refine_per_step: int = 8,
    rank_neighbours: Callable[[list[Arch]], np.ndarray] | None = None,
    seed: int = 0,
    admissible: Callable[[Arch], bool] | None = None,
    penalty: Callable[[Arch], float] | None = None,
) -> Selection:
    """Score every candidate the ground truth has not scored yet with ``score`` and choose the best;
    then refine it: up to ``refine_budget`` more ground-truth evaluations of the best's
    one-decision neighbours, ``refine_per_step`` at a time (the most promising first by
    ``rank_neighbours``, else in a seeded random order), moving to a better neighbour
    whenever one is found, until the budget is spent or no unscored neighbour is left.

    Candidates already in ``pairs`` keep their ground-truth accuracy (no new evaluation).
    Ties go to the earlier candidate (the method's own choice first; a neighbour must be
    strictly better to replace the best). ``admissible``: candidates and neighbours it refuses
    (a latency bound) are left out. ``penalty``: what a candidate's cost takes off its score
    (``cost_weight`` x its cost); the best is then the best by score minus penalty."""
    if admissible is not None:
        pool = [row for row in pool if admissible(row[0])]
    if not pool:
        raise DataError("the final selection got no candidates" + (
            "" if admissible is None else " within the bound: neither the search's, the predictor's nor the ground "
            "truth's architectures meet search.max_latency_ms; raise the bound"))
    if refine_budget < 0 or refine_per_step < 1:
        raise ConfigError(f"refine_budget ({refine_budget}) must be >= 0 and refine_per_step ({refine_per_step}) >= 1")
    known: dict[Arch, float] = {}
    if pairs is not None:
        for text, acc in zip(pairs["arch"], pairs["accuracy"]):
            known.setdefault(space.parse(str(text)), float(acc))
    scores: dict[Arch, float] = {}
    new: set[Arch] = set()

    def measure(archs: list[Arch]) -> None:
        fresh = [a for a in dict.fromkeys(archs) if a not in known and a not in scores]
        values = [float(v) for v in score(fresh)] if fresh else []
        if len(values) != len(fresh):
            raise DataError(f"the ground-truth scorer returned {len(values)} scores for {len(fresh)} candidates")
        bad = [(space.to_string(a), v) for a, v in zip(fresh, values) if not (math.isfinite(v) and 0 <= v <= 100)]
        if bad:
            raise DataError(f"the ground-truth scorer returned accuracies outside [0, 100] %: {bad[:3]}")
        scores.update(zip(fresh, values))
        new.update(fresh)
        for a in archs:
            if a in known:
                scores.setdefault(a, known[a])

    def objective(arch: Arch) -> float:
        return scores[arch] - (float(penalty(arch)) if penalty is not None else 0.0)

    rows: list[tuple[Arch, str, int | None]] = list(pool)
    measure([a for a, _, _ in rows])
    best = max(rows, key=lambda row: (objective(row[0]), -rows.index(row)))[0]
    rng = np.random.default_rng(stream_seed(seed, "selection"))
    spent = 0
    while spent < refine_budget:
        options = [a for a in neighbours(space, best) if a not in scores and (admissible is None or admissible(a))]
        if not options:
            break
        if rank_neighbours is not None:
            order = np.argsort(-np.asarray(rank_neighbours(options), dtype=np.float64), kind="stable")
        else:
            order = rng.permutation(len(options))
        step = [options[i] for i in order[:min(refine_per_step, refine_budget - spent)]]
        before = len(new)
        measure(step)
        spent += len(new) - before
        rows.extend((a, "refine", None) for a in step)
        top = max(step, key=lambda a: objective(a))
        if objective(top) > objective(best):
            best = top
    archs = [a for a, _, _ in rows]
    preds = np.asarray(predicted(archs), dtype=np.float64) if predicted is not None else [None] * len(archs)
    table = pd.DataFrame(
        [{"arch": space.to_string(arch), "origin": origin, "score": scores[arch],
          "scored_by": scored_by if arch in new else "ground_truth", "new": arch in new,
          "search_rank": rank, "predicted": None if p is None else float(p), "objective": objective(arch),
          "chosen": arch == best}
         for (arch, origin, rank), p in zip(rows, preds)],
        columns=COLUMNS,
    )
    return Selection(chosen=best, table=table, new_evaluations=len(new), scored_by=scored_by)


def run_selection(
    space: SearchSpace,
    genotype: dict[str, Any],
    cfg: SelectionConfig,
    ground_truth: Any,
    pairs: pd.DataFrame | None,
    predictor: Any = None,
    warmed: dict[str, Any] | None = None,
    splits: Any = None,
    device: Any = "cpu",
    seed: int = 0,
    latency: Callable[[Arch], float] | None = None,
    max_latency_ms: float | None = None,
    cost: Callable[[Arch], float] | None = None,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """The final genotype and the candidates table of the selection after a search.

    ``genotype``: the search's genotype (with ``top_candidates``); ``ground_truth``: the
    :class:`~wpnas.train.ground_truth.GroundTruthConfig` whose method scores new candidates
    (the benchmark lookup, or a fine-tune of ``warmed`` on ``splits``); ``predictor``: a
    :class:`~wpnas.predictors.Predictor` or None (then no predictor candidates). With
    ``cfg.enabled`` false the search's choice is returned unchanged, marked so. ``max_latency_ms``
    with ``latency`` (a latency table): only candidates within the bound are chosen. With
    ``cfg.cost_weight`` > 0 each candidate's score loses ``cost_weight`` x ``cost(arch)``
    (default cost: its FLOPs in millions at the genotype's input shape)."""
    if not cfg.enabled:
        return {**genotype, "selection": {"enabled": False}}, pd.DataFrame(columns=COLUMNS)
    if ground_truth is None:
        raise ConfigError(
            "search.selection is enabled but no ground_truth settings were given: the selection scores its "
            "candidates with the ground-truth method; configure ground_truth or set search.selection.enabled: false"
        )
    cfg.check_space(space)
    if ground_truth.source == "finetune" and (warmed is None or splits is None):
        raise ConfigError("search.selection with ground_truth.source 'finetune' needs the warmed SuperNet and the splits")
    search_archs = [space.parse(a) for a in genotype.get("top_candidates") or [genotype["arch"]]]
    search_archs = search_archs[:max(1, cfg.search_top_k)]
    admissible = (None if max_latency_ms is None or latency is None
                  else lambda a: float(latency(a)) <= max_latency_ms)
    predict = None
    predicted_top: list[Arch] = []
    if predictor is not None:
        predict = predictor.predict_normalised if hasattr(predictor, "predict_normalised") else predictor
        predicted_top = [a for a, _ in predictor_top(space, predict, cfg.predictor_top_k, cfg.predictor_sample, seed,
                                                     admissible)]
    pool = candidate_pool(space, search_archs, predicted_top, pairs, cfg.ground_truth_top_k, admissible)
    supernet = None
    if ground_truth.source == "finetune":
        supernet = restore_supernet(warmed, device, source="warmed_supernet")
    scored_by = (f"benchmark:{ground_truth.benchmark.metric}" if ground_truth.source == "benchmark"
                 else f"finetune:{ground_truth.epochs}ep")

    def score(archs: Sequence[Arch]) -> list[float]:
        table = acquire_ground_truth(space, ground_truth, stream_seed(seed, "selection"), supernet=supernet,
                                     splits=splits, device=device, archs=list(archs))
        return [float(v) for v in table["accuracy"]]

    as_percent = None if predictor is None or not hasattr(predictor, "predict") else predictor.predict
    penalty = None
    if cfg.cost_weight > 0:
        shape, classes = genotype.get("input_shape") or (3, 32, 32), int(genotype.get("num_classes", 10))
        cost_of = cost or (lambda a: space.cost(a, shape, classes).flops_m)
        penalty = lambda a: cfg.cost_weight * float(cost_of(a))  # noqa: E731
    selection = select_architecture(space, pool, score, scored_by, pairs, predicted=as_percent,
                                    refine_budget=cfg.refine_budget, refine_per_step=cfg.refine_per_step,
                                    rank_neighbours=predict, seed=seed, admissible=admissible, penalty=penalty)
    return chosen_genotype(space, genotype, selection, predictor), selection.table


def chosen_genotype(space: SearchSpace, genotype: dict[str, Any], selection: Selection,
                    predictor: Any = None) -> dict[str, Any]:
    """The search's genotype rewritten for the selected architecture: its cost, its score and
    where that came from; values measured only for the search's own choice (inherited-weight
    accuracy, alpha's probabilities) are kept only when the selection kept that choice."""
    arch = selection.chosen
    text = space.to_string(arch)
    same = text == genotype["arch"]
    shape = genotype.get("input_shape") or (3, 32, 32)
    cost = space.cost(arch, shape, int(genotype.get("num_classes", 10)))
    result = dict(genotype)
    result.update(
        arch=text, choices=[int(a) for a in arch], choice_names=space.choice_names(arch),
        flops_m=float(cost.flops_m), params_m=float(cost.params_m),
        selection=selection.summary(space),
        search_choice={k: genotype.get(k) for k in ("arch", "flops_m", "params_m", "supernet_valid_acc",
                                                   "predicted_accuracy", "joint_probability") if k in genotype},
    )
    if not same:
        for key in ("supernet_valid_acc", "joint_probability", "probabilities"):
            if key in result:
                result[key] = None
        if "predicted_accuracy" in result:
            result["predicted_accuracy"] = (None if predictor is None or not hasattr(predictor, "predict")
                                            else float(predictor.predict([arch])[0]))
    return result
