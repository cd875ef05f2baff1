"""The paper's Table 1 ablation: SPOS, + landmark, + probabilistic sampling (PS),
+ predictor, + weakly weight sharing (WWS), on one space and dataset, over several seeds.

Per seed, the stages the paper shares are run once and shared by the rows:

* ``uniform``: WarmUp by uniform single-path sampling (SPOS's SuperNet training);
* ground truth (from the uniform SuperNet, or a benchmark lookup) and the predictor;
* ``landmark``: the same WarmUp from scratch with landmark regularisation, the
  ground-truth pairs as landmarks.

Rows (the SuperNet each starts from, the method):

=====================  ==========  ====================================================
row                    SuperNet    method
=====================  ==========  ====================================================
``spos``               uniform     SPOS evolution (inherited-weight valid accuracy)
``spos_landmark``      landmark    SPOS evolution
``ps``                 landmark    WPNAS, b1 = 0, HyperNet off, landmark term kept on
``ps_predictor``       landmark    WPNAS, b1 = ``search.wpnas.reward.b1``, HyperNet off
``ps_predictor_wws``   landmark    WPNAS, b1, HyperNet ``search.wpnas.hypernet.mode``
                                   (``trained`` when that is ``off``)
``search_pipeline``    landmark    the row above, then the final selection
                                   (``search.selection``, always on here): what the
                                   ``search`` pipeline runs (beyond the paper)
=====================  ==========  ====================================================

The ``search_pipeline`` row reuses the search of ``ps_predictor_wws`` for the same seed
when both rows run in one process (the same settings give the same search); its cost adds
the selection's time. Its new candidates are scored by the ground-truth method of the run
(fine-tuned from the uniform SuperNet, as the pairs were, or looked up in the benchmark).

All other settings come from the ``search`` section (epochs, b2, alpha, evolution ...).
Two references are measured in the same run: the best ground-truth architecture (what
the ground truth alone would pick) and the predictor's argmax over the space.

Per row and seed: the ranking of the row's final SuperNet on one fixed architecture
sample (``ranking``: Kendall tau, MSE on accuracy / 100, beside the parameter-count
proxy), the found architecture, its benchmark rank and accuracy when a benchmark is
configured, and the cost (hours of the stages the row needs: its WarmUp, plus the
ground truth for landmark rows, plus the predictor for predictor rows, plus its search;
measurements are not counted).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from wpnas import distributed, tracking
from wpnas.config import describe_device, json_ready, seed_everything, to_dict
from wpnas.seeds import fixed_seed
from wpnas.data.splits import ImageSplits
from wpnas.errors import ConfigError
from wpnas.fingerprint import content_fingerprint
from wpnas.io.stage_checkpoint import CheckpointPolicy
from wpnas.io.supernet_checkpoint import restore_supernet
from wpnas.nasbench import kendall_tau, load_benchmark
from wpnas.predictors import load_predictor
from wpnas.predictors.stage import PredictorStageConfig, fit_predictor
from wpnas.search import SearchConfig, get_method, restore_search, run_search
from wpnas.search.selection import run_selection
from wpnas.spaces.base import ENUMERATION_LIMIT, SearchSpace
from wpnas.train.ground_truth import COLUMNS as GROUND_TRUTH_COLUMNS
from wpnas.train.ground_truth import GroundTruthConfig, acquire_ground_truth
from wpnas.train.landmark import LandmarkConfig
from wpnas.train.ranking import RankingConfig, benchmark_position, check_ranking, rank_supernet, ranking_sample
from wpnas.train.warmup import WarmupConfig, warmup_supernet

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    label: str
    warmup: Literal["uniform", "landmark"]
    method: Literal["spos_evolution", "wpnas"]
    predictor: bool = False
    hypernet: bool = False
    selection: bool = False


ROWS: dict[str, Row] = {
    "spos": Row("SPOS", "uniform", "spos_evolution"),
    "spos_landmark": Row("SPOS + landmark", "landmark", "spos_evolution"),
    "ps": Row("SPOS + landmark + PS", "landmark", "wpnas"),
    "ps_predictor": Row("SPOS + landmark + PS + predictor", "landmark", "wpnas", predictor=True),
    "ps_predictor_wws": Row("SPOS + landmark + PS + predictor + WWS", "landmark", "wpnas", predictor=True,
                            hypernet=True),
    "search_pipeline": Row("+ final selection (the `search` pipeline)", "landmark", "wpnas", predictor=True,
                           hypernet=True, selection=True),
}
REFERENCES: dict[str, str] = {
    "best_ground_truth": "reference: best ground-truth architecture",
    "predictor_best": "reference: predictor's best over the space",
}

#: The paper's Table 1 (Kendall tau, MSE, best rank, best acc. %, cost GPU-days), per space and dataset.
PAPER_TABLE1: dict[tuple[str, str], dict[str, tuple[float, float, int, float, float]]] = {
    ("nats_tss", "cifar10"): {
        "spos": (0.614, 0.159, 5301, 91.9, 0.11),
        "spos_landmark": (0.632, 0.153, 4801, 92.02, 0.124),
        "ps": (0.666, 0.157, 559, 93.38, 0.27),
        "ps_predictor": (0.698, 0.140, 167, 93.76, 0.29),
        "ps_predictor_wws": (0.701, 0.135, 94, 93.86, 0.33),
    },
    ("nats_tss", "cifar100"): {
        "spos": (0.673, 0.302, 4694, 67.51, 0.12),
        "spos_landmark": (0.713, 0.318, 4694, 67.51, 0.125),
        "ps": (0.728, 0.317, 1324, 69.63, 0.26),
        "ps_predictor": (0.730, 0.312, 163, 71.11, 0.69),
        "ps_predictor_wws": (0.736, 0.272, 112, 71.41, 0.74),
    },
    ("nats_sss", "cifar10"): {
        "spos": (0.576, 0.089, 6529, 92.13, 0.10),
        "spos_landmark": (0.579, 0.093, 3352, 92.45, 0.13),
        "ps": (0.587, 0.099, 1805, 92.67, 0.20),
        "ps_predictor": (0.623, 0.117, 37, 93.34, 0.22),
        "ps_predictor_wws": (0.634, 0.099, 22, 93.40, 0.25),
    },
    ("nats_sss", "cifar100"): {
        "spos": (0.702, 0.360, 1523, 68.94, 0.10),
        "spos_landmark": (0.718, 0.327, 850, 69.30, 0.12),
        "ps": (0.727, 0.328, 622, 69.45, 0.20),
        "ps_predictor": (0.727, 0.345, 18, 70.63, 0.62),
        "ps_predictor_wws": (0.728, 0.331, 3, 71.03, 0.66),
    },
}


@dataclass(frozen=True)
class AblationConfig:
    """``ablation`` in the parameters.

    ``seeds``: every row is run once per seed (run seeds of WarmUp, ground truth, predictor
    and search; the ranking sample is fixed by ``ranking.sample_seed`` and shared).
    ``landmark``: the landmark term's settings (enabled in the landmark WarmUp and in the
    WPNAS rows). ``predictor_archs``: the predictor reference scores the whole space when
    it can be enumerated, else this many seeded samples. ``paper_dataset``: which of the
    paper's Table 1 columns to show beside ours.
    """

    seeds: tuple[int, ...] = (0, 1, 2)
    rows: tuple[str, ...] = tuple(ROWS)
    references: bool = True
    landmark: LandmarkConfig = field(default_factory=lambda: LandmarkConfig(enabled=True))
    ranking: RankingConfig = field(default_factory=RankingConfig)
    predictor_archs: int = 100_000
    paper_dataset: Literal["cifar10", "cifar100"] = "cifar10"

    def __post_init__(self) -> None:
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"ablation.seeds: {list(self.seeds)} must be a non-empty list of distinct seeds")
        unknown = [r for r in self.rows if r not in ROWS]
        if unknown or not self.rows or len(set(self.rows)) != len(self.rows):
            raise ConfigError(
                f"ablation.rows: {list(self.rows)} must be distinct names from {list(ROWS)} (unknown: {unknown})"
            )
        if not self.landmark.enabled:
            raise ConfigError("ablation.landmark.enabled: false; the landmark rows need it on (drop rows instead)")
        if self.predictor_archs < 1:
            raise ConfigError(f"ablation.predictor_archs: {self.predictor_archs} must be >= 1")


def check_ablation(
    space: SearchSpace, cfg: AblationConfig, search: SearchConfig, input_shape: Sequence[int] | None = None,
    num_classes: int = 10,
) -> None:
    """Everything that can be checked before any training."""
    check_ranking(space, cfg.ranking)
    if any(ROWS[r].predictor for r in cfg.rows) and not search.wpnas.reward.uses_predictor:
        raise ConfigError(
            f"ablation.rows {[r for r in cfg.rows if ROWS[r].predictor]} use the predictor, but "
            f"search.wpnas.reward.b1 = {search.wpnas.reward.b1}; set b1 > 0 or drop those rows"
        )
    if any(ROWS[r].selection for r in cfg.rows):
        dataclasses.replace(search.selection, enabled=True).check_space(space)
    for method in sorted({ROWS[r].method for r in cfg.rows}):  # each row's method checks its own settings
        get_method(method).check(search, space, input_shape, num_classes)


def row_search_config(name: str, search: SearchConfig, landmark: LandmarkConfig) -> SearchConfig:
    """The ``search`` settings of one row (see the module docstring)."""
    row = ROWS[name]
    if row.method == "spos_evolution":
        return search.with_method("spos_evolution")
    wpnas = search.wpnas
    mode = "off" if not row.hypernet else (wpnas.hypernet.mode if wpnas.hypernet.mode != "off" else "trained")
    return search.with_method(
        "wpnas",
        selection=dataclasses.replace(search.selection, enabled=row.selection),
        settings=dataclasses.replace(
            wpnas,
            sampling="probabilistic",
            reward=dataclasses.replace(wpnas.reward, b1=wpnas.reward.b1 if row.predictor else 0.0),
            hypernet=dataclasses.replace(wpnas.hypernet, mode=mode),
            landmark=landmark,
            update_weights=True,
        ),
    )


def _key(seed: int) -> str:
    return f"seed_{seed}"


class _Finished:
    """The finished units (a seed's WarmUp, a row on a seed) of one ablation stage, kept in
    ``run.checkpoint_dir`` while the stage runs, so that a killed run started again redoes only
    what was not finished (the unit in progress resumes from its own stage checkpoint). Keyed
    by the fingerprint of the stage's inputs and settings; removed when the stage completes."""

    def __init__(self, checkpoint: CheckpointPolicy | None, stage: str, inputs: dict[str, Any]) -> None:
        self.store = None if checkpoint is None else checkpoint.store(stage, content_fingerprint(inputs))
        state = self.store.load() if self.store is not None else None
        self.done: dict[str, Any] = dict(state["done"]) if state else {}
        # in a world every rank finishes the same units (a unit's map gathers on every rank): rank 0 writes
        world = distributed.current()
        self.writes = not world.active or world.is_main
        if self.done:
            logger.info("%s: resuming from %s: %s already finished, not redone", stage, self.store.path,
                        ", ".join(self.done))

    def add(self, key: str, value: Any) -> None:
        self.done[key] = value
        if self.store is not None and self.writes:
            self.store.save({"done": self.done})

    def close(self) -> None:
        if self.store is not None and self.writes:
            self.store.finish({"done": self.done})


def _frame_content(frame: pd.DataFrame | None) -> Any:
    return None if frame is None else {str(k): frame[k].tolist() for k in frame.columns}


# -- shared stages ---------------------------------------------------------------------------
def warm_up(
    space: SearchSpace,
    splits: ImageSplits,
    cfg: WarmupConfig,
    device: torch.device,
    seeds: Sequence[int],
    landmarks: pd.DataFrame | None = None,
    landmark: LandmarkConfig | None = None,
    checkpoint: CheckpointPolicy | None = None,
) -> dict[str, dict[str, Any]]:
    """One WarmUp per seed (``landmark`` given: with landmark regularisation on each seed's pairs).

    ``checkpoint``: every WarmUp writes its in-progress checkpoint, and the finished seeds are
    kept until all are done, so a killed run started again redoes only the unfinished ones."""
    cfg = dataclasses.replace(cfg, landmark=landmark or dataclasses.replace(cfg.landmark, enabled=False))
    stage = "ablation_warmup" + ("_landmark" if cfg.landmark.enabled else "")
    finished = _Finished(checkpoint, stage, {
        "space": [space.name, space.options()], "config": to_dict(cfg), "seeds": list(seeds),
        "splits": splits.fingerprint()["fingerprint"], "landmarks": _frame_content(landmarks)})
    out = {}
    for seed in seeds:
        if _key(seed) in finished.done:
            out[_key(seed)] = finished.done[_key(seed)]
            continue
        seed_everything(seed)
        pairs = None if landmarks is None else landmarks[landmarks["seed"] == seed].reset_index(drop=True)
        out[_key(seed)] = warmup_supernet(space, splits, cfg, device, seed=seed, landmarks=pairs, checkpoint=checkpoint)
        finished.add(_key(seed), out[_key(seed)])
    finished.close()
    return out


def ground_truth(
    space: SearchSpace,
    splits: ImageSplits,
    cfg: GroundTruthConfig,
    device: torch.device,
    warmed: dict[str, dict[str, Any]],
    seeds: Sequence[int],
    checkpoint: CheckpointPolicy | None = None,
) -> pd.DataFrame:
    """Each seed's ground-truth pairs (from that seed's uniform SuperNet), with a ``seed`` column.

    ``checkpoint``: as :func:`warm_up` (the seed in progress resumes architecture by architecture)."""
    finished = _Finished(checkpoint, "ablation_ground_truth", {
        "space": [space.name, space.options()], "config": to_dict(cfg), "seeds": list(seeds),
        "splits": splits.fingerprint()["fingerprint"],
        "warmed": {_key(s): warmed[_key(s)]["state_dict"] for s in seeds} if cfg.source == "finetune" else None})
    tables = []
    for seed in seeds:
        if _key(seed) not in finished.done:
            seed_everything(seed)
            supernet = restore_supernet(warmed[_key(seed)], device) if cfg.source == "finetune" else None
            pairs = acquire_ground_truth(space, cfg, seed, supernet=supernet, splits=splits, device=device,
                                         checkpoint=checkpoint)
            finished.add(_key(seed), _frame_content(pairs))
        tables.append(pd.DataFrame(finished.done[_key(seed)], columns=GROUND_TRUTH_COLUMNS).assign(seed=seed))
    finished.close()
    return pd.concat(tables, ignore_index=True)


def train_predictors(
    space: SearchSpace, pairs: pd.DataFrame, cfg: PredictorStageConfig, seeds: Sequence[int], device: str = "cpu"
) -> dict[str, dict[str, Any]]:
    """One predictor per seed on that seed's pairs (checkpoint plus its seconds and metrics)."""
    out = {}
    for seed in seeds:
        seed_everything(seed)
        started = time.monotonic()
        own = pairs[pairs["seed"] == seed].drop(columns="seed").reset_index(drop=True)
        model, metrics, _ = fit_predictor(space, own, cfg, seed=seed, device=device)
        out[_key(seed)] = {"predictor": model.to_checkpoint(), "seconds": time.monotonic() - started,
                           "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}}
    return out


# -- rows --------------------------------------------------------------------------------------
class _Scorer:
    """The ranking sample, the benchmark and their use, shared by every row and seed."""

    def __init__(self, space: SearchSpace, splits: ImageSplits, cfg: RankingConfig, device: torch.device) -> None:
        self.space, self.splits, self.cfg, self.device = space, splits, cfg, device
        self.benchmark = load_benchmark(cfg.benchmark, space) if cfg.benchmark is not None else None

    def rank(self, supernet, seed: int, offsets_for: Callable | None, pairs: pd.DataFrame) -> dict[str, Any]:
        reference = None if self.benchmark is not None else pairs[["arch", "accuracy"]]
        report = rank_supernet(supernet, self.space, self.splits, self.cfg, self.device, seed=seed,
                               offsets_for=offsets_for, reference=reference)
        return report.metrics

    def position(self, arch: str) -> dict[str, Any]:
        if self.benchmark is None:
            return {"best_rank": None, "best_acc": None, "of": None}
        found = benchmark_position(self.benchmark, self.cfg.position_metric, arch)
        return {"best_rank": found["rank"], "best_acc": found["accuracy"], "of": found["of"]}


def run_rows(
    space: SearchSpace,
    splits: ImageSplits,
    search: SearchConfig,
    cfg: AblationConfig,
    device: torch.device,
    warmed: dict[str, dict[str, Any]],
    warmed_landmark: dict[str, dict[str, Any]] | None,
    pairs: pd.DataFrame,
    predictors: dict[str, dict[str, Any]] | None,
    checkpoint: CheckpointPolicy | None = None,
    ground_truth: GroundTruthConfig | None = None,
) -> pd.DataFrame:
    """Every row for every seed, each row in its own MLflow run nested under the active one.

    ``ground_truth``: the run's ground-truth method, which scores the final selection's new
    candidates (the ``search_pipeline`` row; required for it).

    ``checkpoint``: each search writes its in-progress checkpoint, and the finished (row,
    seed) results are kept until all are done, so a killed run started again redoes only the
    unfinished ones (their metrics are logged again in the new run)."""
    scorer = _Scorer(space, splits, cfg.ranking, device)
    if ground_truth is None and any(ROWS[r].selection for r in cfg.rows):
        raise ConfigError(f"ablation.rows {[r for r in cfg.rows if ROWS[r].selection]}: the final selection scores "
                          "with the ground-truth method; pass the run's ground_truth settings")
    searches: dict[tuple[int, str], Any] = {}  # (seed, search settings without the selection) -> its result
    if len(cfg.seeds) < 3:
        logger.warning("ablation over %d seed(s): one or two seeds mislead; use at least 3 for a claim",
                       len(cfg.seeds))
    finished = _Finished(checkpoint, "ablation_rows", {
        "space": [space.name, space.options()], "search": to_dict(search), "ablation": to_dict(cfg),
        "splits": splits.fingerprint()["fingerprint"],
        "warmed": {k: v["state_dict"] for k, v in warmed.items()},
        "warmed_landmark": None if warmed_landmark is None else {k: v["state_dict"] for k, v in warmed_landmark.items()},
        "pairs": _frame_content(pairs),
        "predictors": None if predictors is None else {k: v["predictor"] for k, v in predictors.items()}})
    records = []
    for name in cfg.rows:
        row = ROWS[name]
        row_cfg = row_search_config(name, search, cfg.landmark)
        with tracking.nested_run(name, params={"ablation.row": name, "ablation.label": row.label,
                                               **tracking.flatten(to_dict(row_cfg), prefix="search")},
                                 tags={"ablation_row": name}):
            for seed in cfg.seeds:
                unit = f"{name}/{_key(seed)}"
                if unit not in finished.done:
                    logger.info("ablation row %r, seed %d", name, seed)
                    finished.add(unit, json_ready(_run_row(name, row_cfg, space, splits, device, seed, scorer, warmed,
                                                       warmed_landmark, pairs, predictors, checkpoint,
                                                       ground_truth=ground_truth, searches=searches)))
                record = finished.done[unit]
                records.append(record)
                tracking.log_metrics({k: v for k, v in record.items() if k not in ("row", "seed")}, step=seed,
                                     prefix="ablation/")
            mine = pd.DataFrame([r for r in records if r["row"] == name])
            tracking.log_metrics({f"{k}_mean": mine[k].mean() for k in _SUMMARY if mine[k].notna().any()},
                                 prefix="ablation/")
    finished.close()
    return pd.DataFrame(records, columns=RESULT_COLUMNS)


RESULT_COLUMNS = ["row", "label", "seed", "arch", "flops_m", "params_m", "supernet_valid_acc", "kendall_tau",
                  "spearman", "mse", "params_kendall_tau", "best_rank", "best_acc", "of", "hours", "device"]
_SUMMARY = ("kendall_tau", "mse", "params_kendall_tau", "best_rank", "best_acc", "hours")


def _search_key(seed: int, row_cfg: SearchConfig) -> tuple[int, str]:
    settings = to_dict(row_cfg)
    settings.pop("selection", None)
    return seed, content_fingerprint(settings)


def _run_row(name, row_cfg, space, splits, device, seed, scorer, warmed, warmed_landmark, pairs, predictors,
             checkpoint=None, ground_truth=None, searches=None):
    row = ROWS[name]
    searches = {} if searches is None else searches
    seed_everything(seed)
    own_pairs = pairs[pairs["seed"] == seed].drop(columns="seed").reset_index(drop=True)
    start = (warmed_landmark if row.warmup == "landmark" else warmed)[_key(seed)]
    predictor = None
    seconds = float(start.get("seconds", 0.0))
    if row.warmup == "landmark":
        seconds += float(own_pairs["seconds"].sum())
    if row.predictor:
        entry = predictors[_key(seed)]
        predictor = load_predictor(entry["predictor"], space, device=str(device))
        seconds += float(entry["seconds"])
    landmarks = own_pairs if row.method == "wpnas" else None
    key = _search_key(seed, row_cfg)
    result = searches.get(key)
    if result is None:
        result = run_search(space, splits, start, row_cfg, device, seed=seed, predictor=predictor,
                            landmarks=landmarks, checkpoint=checkpoint)
        searches[key] = result
    seconds += float(result.checkpoint["seconds"])
    if row.method == "wpnas":
        net, _ = restore_search(result.checkpoint, device)
        supernet, offsets_for = net.supernet, (net.offsets if net.mode != "off" else None)
    else:
        supernet, offsets_for = restore_supernet(result.checkpoint, device), None
    ranking = scorer.rank(supernet, seed, offsets_for, own_pairs)
    genotype = result.final_genotype
    if row.selection:
        begun = time.monotonic()
        genotype, _ = run_selection(space, genotype, row_cfg.selection, ground_truth, own_pairs, predictor=predictor,
                                    warmed=warmed[_key(seed)], splits=splits, device=device, seed=seed)
        seconds += time.monotonic() - begun
    return {
        "row": name, "label": row.label, "seed": seed, "arch": genotype["arch"], "flops_m": genotype["flops_m"],
        "params_m": genotype["params_m"], "supernet_valid_acc": genotype["supernet_valid_acc"],
        "kendall_tau": ranking["kendall_tau"], "spearman": ranking["spearman"], "mse": ranking["mse"],
        "params_kendall_tau": ranking["params_kendall_tau"], **scorer.position(genotype["arch"]),
        "hours": seconds / 3600.0, "device": describe_device(device),
    }


# -- references --------------------------------------------------------------------------------
def run_references(
    space: SearchSpace,
    cfg: AblationConfig,
    pairs: pd.DataFrame,
    predictors: dict[str, dict[str, Any]],
    device: str = "cpu",
) -> pd.DataFrame:
    """Per seed: the best ground-truth architecture and the predictor's argmax over the space.

    The predictor row also reports the predictor's own Kendall tau on the ranking sample (against
    the benchmark column), beside the SuperNets'."""
    benchmark = load_benchmark(cfg.ranking.benchmark, space) if cfg.ranking.benchmark is not None else None
    sample = ranking_sample(space, cfg.ranking) if benchmark is not None else None
    candidates = _predictor_candidates(space, cfg)
    records = []
    for seed in cfg.seeds:
        own = pairs[pairs["seed"] == seed]
        best = own.loc[own["accuracy"].idxmax()]
        records.append(_reference("best_ground_truth", seed, space, str(best["arch"]), benchmark, cfg,
                                  hours=float(own["seconds"].sum()) / 3600.0))
        entry = predictors[_key(seed)]
        predictor = load_predictor(entry["predictor"], space, device=device)
        scores = predictor.predict(candidates)
        record = _reference("predictor_best", seed, space, space.to_string(candidates[int(np.argmax(scores))]),
                            benchmark, cfg, hours=(float(own["seconds"].sum()) + entry["seconds"]) / 3600.0)
        if sample is not None:
            truth = [benchmark.lookup(a, cfg.ranking.column) for a in sample]
            record["kendall_tau"] = kendall_tau(predictor.predict(sample), truth)
        records.append(record)
    return pd.DataFrame(records, columns=RESULT_COLUMNS)


def _predictor_candidates(space: SearchSpace, cfg: AblationConfig) -> list[tuple[int, ...]]:
    if space.size <= min(ENUMERATION_LIMIT, cfg.predictor_archs):
        return list(space.enumerate())
    rng = np.random.default_rng(fixed_seed("ablation.predictor_candidates"))
    return space.sample_unique(rng, min(cfg.predictor_archs, space.size))


def _reference(name, seed, space, arch, benchmark, cfg, hours):
    record = {c: None for c in RESULT_COLUMNS}
    record.update(row=name, label=REFERENCES[name], seed=seed, arch=arch, hours=hours)
    if benchmark is not None:
        found = benchmark_position(benchmark, cfg.ranking.position_metric, arch)
        record.update(best_rank=found["rank"], best_acc=found["accuracy"], of=found["of"])
    return record


# -- the table ----------------------------------------------------------------------------------
def _mean_std(values: pd.Series) -> tuple[float | None, float | None]:
    values = pd.to_numeric(values, errors="coerce").dropna()
    if values.empty:
        return None, None
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def table1(results: pd.DataFrame, references: pd.DataFrame | None, space: SearchSpace,
           cfg: AblationConfig) -> tuple[pd.DataFrame, str]:
    """Table 1 in the paper's layout (mean and spread over seeds, each seed's cell), paper numbers beside."""
    paper = PAPER_TABLE1.get((space.name, cfg.paper_dataset), {})
    frames = [results] + ([references] if references is not None and len(references) else [])
    allrows = pd.concat(frames, ignore_index=True)
    table = []
    for name in list(dict.fromkeys(allrows["row"])):
        part = allrows[allrows["row"] == name]
        entry: dict[str, Any] = {"row": name, "method": part["label"].iloc[0], "seeds": len(part)}
        for key in ("kendall_tau", "mse", "best_rank", "best_acc", "hours", "params_kendall_tau"):
            entry[f"{key}_mean"], entry[f"{key}_std"] = _mean_std(part[key])
        entry["archs"] = " ; ".join(
            f"s{int(s)}: {a}" + (f" (rank {int(r)})" if r is not None and not _isnan(r) else "")
            for s, a, r in zip(part["seed"], part["arch"], part["best_rank"])
        )
        ref = paper.get(name)
        for i, key in enumerate(("paper_kendall_tau", "paper_mse", "paper_best_rank", "paper_best_acc",
                                 "paper_cost_gpu_days")):
            entry[key] = ref[i] if ref else None
        table.append(entry)
    frame = pd.DataFrame(table)
    return frame, _markdown(frame, space, cfg, results)


def _isnan(value: Any) -> bool:
    try:
        return math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _fmt(mean: Any, std: Any, digits: int) -> str:
    if mean is None or _isnan(mean):
        return "-"
    text = f"{mean:.{digits}f}"
    return text + (f" ± {std:.{digits}f}" if std is not None and not _isnan(std) else "")


def _markdown(frame: pd.DataFrame, space: SearchSpace, cfg: AblationConfig, results: pd.DataFrame) -> str:
    column = cfg.ranking.column
    rank_column = cfg.ranking.position_metric if cfg.ranking.benchmark is not None else None
    lines = [
        f"# Table 1 ablation: {space.name} {space.options()}",
        "",
        f"Seeds {list(cfg.seeds)}; mean ± standard deviation over seeds. Kendall tau and MSE (on accuracy / 100) "
        f"of each row's final SuperNet (inherited weights, BN recalibrated) against `{column}` on "
        + (f"{'the whole space' if cfg.ranking.all_archs else f'a fixed sample of {cfg.ranking.num_archs} architectures (seed {cfg.ranking.sample_seed})'}"
           if cfg.ranking.benchmark is not None else "each seed's ground-truth architectures")
        + "; `params tau`: the parameter count's Kendall tau on the same sample (a zero-cost proxy). "
        + (f"Best rank / acc.: the found architecture in `{rank_column}`. " if rank_column else
           "No benchmark is configured, so the found architectures have no rank. ")
        + "Cost: hours of the stages the row needs on "
        + (str(results["device"].iloc[0]) if "device" in results and len(results) else "this machine")
        + " (paper: GPU-days on a TITAN RTX)."
        + (" Fewer than 3 seeds: the spread is not reliable." if len(cfg.seeds) < 3 else ""),
        "",
        "| method | Kendall tau | MSE | best rank | best acc. | cost (h) | params tau | paper: tau / MSE / rank / acc. / GPU-days |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, r in frame.iterrows():
        paper = ("-" if r["paper_kendall_tau"] is None or _isnan(r["paper_kendall_tau"]) else
                 f"{r['paper_kendall_tau']:.3f} / {r['paper_mse']:.3f} / {int(r['paper_best_rank'])} / "
                 f"{r['paper_best_acc']:.2f} / {r['paper_cost_gpu_days']:.2f}")
        lines.append(
            f"| {r['method']} | {_fmt(r['kendall_tau_mean'], r['kendall_tau_std'], 3)} | "
            f"{_fmt(r['mse_mean'], r['mse_std'], 4)} | {_fmt(r['best_rank_mean'], r['best_rank_std'], 0)} | "
            f"{_fmt(r['best_acc_mean'], r['best_acc_std'], 2)} | {_fmt(r['hours_mean'], r['hours_std'], 3)} | "
            f"{_fmt(r['params_kendall_tau_mean'], r['params_kendall_tau_std'], 3)} | {paper} |"
        )
    lines += ["", "Found architectures per seed:", ""]
    for _, r in frame.iterrows():
        lines.append(f"- {r['method']}: {r['archs']}")
    return "\n".join(lines) + "\n"
