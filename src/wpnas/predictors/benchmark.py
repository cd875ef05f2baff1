"""The paper's Table 2 protocol as a function: predictors trained on 170 benchmark pairs.

Per seed: draw ``n_train + n_valid`` architectures uniformly from the table (seeded),
train every row's predictor on the first ``n_train`` and report, on the ``n_valid``
held-out ones, Kendall tau, Pearson and MSE (MSE on accuracy as a fraction, i.e. in
fraction^2 units: accuracy/100), plus Kendall tau on every remaining architecture of
the table. Nothing is tuned here: the validation and remaining architectures are only
ever scored.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from wpnas.config import from_dict, to_dict
from wpnas.errors import ConfigError, DataError
from wpnas.nasbench.metrics import kendall_tau, mse, pearson
from wpnas.nasbench.tables import NasBenchmark
from wpnas.predictors.models import PredictorConfig
from wpnas.predictors.training import train_predictor
from wpnas.progress import Progress
from wpnas.spaces.base import SearchSpace

__all__ = [
    "BASELINE_ROW",
    "BenchmarkRow",
    "METRIC_COLUMNS",
    "default_rows",
    "inner_cv_score",
    "paper_rows",
    "run_predictor_benchmark",
    "summarize",
    "to_markdown",
]

METRIC_COLUMNS = ("tau_valid", "pearson_valid", "mse_valid", "tau_rest", "train_seconds")


@dataclass(frozen=True)
class BenchmarkRow:
    """One line of the table: a name and the predictor settings (on top of the preset)."""

    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)


#: The strong baseline: one plain supervised MLP on the one-hot, pairwise ranking loss,
#: no ensemble, no ordinal features, no extras; fixed here so tuning the defaults
#: cannot move it.
BASELINE_ROW = BenchmarkRow(
    "baseline: MLP one-hot + ranking",
    dict(kind="supervised", encoder="mlp", hidden=128, out_dim=64, layers=2, epochs=100, optimizer="adam",
         lr=1e-3, weight_decay=1e-4, cosine=True, batch_size=32, loss="ranking", target_norm="zscore",
         use_ordinal=False, ensemble=1, dropout=0.0),
)

#: Sizes per encoder that keep CPU training to a few seconds.
ENCODER_SIZES: dict[str, dict[str, Any]] = {
    "mlp": dict(hidden=128, out_dim=64, layers=2),
    "rnn": dict(embed_dim=32, hidden=48, out_dim=64, layers=1),
    "transformer": dict(embed_dim=32, hidden=64, out_dim=64, layers=1, heads=4),
    "gcn": dict(embed_dim=32, hidden=64, out_dim=64, layers=2),
}

_LABELS = {"mlp": "MLP", "rnn": "RNN", "transformer": "Transformer", "gcn": "GCN"}


def default_rows(encoders: Sequence[str] = ("mlp", "rnn", "transformer", "gcn"), baseline: bool = True
                 ) -> list[BenchmarkRow]:
    """Supervised and few-shot rows for each encoder (our tuned defaults) + the strong baseline."""
    rows = []
    for enc in encoders:
        if enc not in ENCODER_SIZES:
            raise ConfigError(f"benchmark: encoder {enc!r} unknown; expected some of {list(ENCODER_SIZES)}")
        for kind in ("supervised", "fewshot"):
            prefix = "few-shot " if kind == "fewshot" else ""
            rows.append(BenchmarkRow(f"{prefix}{_LABELS[enc]}", dict(kind=kind, encoder=enc, **ENCODER_SIZES[enc])))
    if baseline:
        rows.append(BASELINE_ROW)
    return rows


def paper_rows(encoders: Sequence[str] = ("mlp", "rnn", "transformer")) -> list[BenchmarkRow]:
    """The paper's rows with the paper's training settings (:meth:`PredictorConfig.paper`)."""
    rows = []
    for enc in encoders:
        for kind in ("supervised", "fewshot"):
            prefix = "few-shot " if kind == "fewshot" else ""
            settings = to_dict(PredictorConfig.paper(kind=kind, encoder=enc, **ENCODER_SIZES[enc]))
            rows.append(BenchmarkRow(f"paper {prefix}{_LABELS[enc]}", settings))
    return rows


def _row_config(row: BenchmarkRow, overrides: Mapping[str, Any], seed: int) -> PredictorConfig:
    base = {**dict(row.settings), **dict(overrides), "seed": seed}
    return from_dict(PredictorConfig, base, where=f"benchmark row {row.name!r}")


def _one(task: dict[str, Any]) -> dict[str, Any]:
    """Train and score one (row, seed); runs in a worker process or in line."""
    import torch

    from wpnas.spaces import get_space

    if task.get("threads"):
        torch.set_num_threads(task["threads"])
    space = task["space"] if isinstance(task["space"], SearchSpace) else get_space(**task["space"])
    tokens, values = task["tokens"], task["values"]
    train, valid = task["train"], task["valid"]
    cfg: PredictorConfig = task["config"]
    start = time.perf_counter()
    predictor, _ = train_predictor(space, tokens[train], values[train], cfg)
    trained = time.perf_counter()
    pred_all = predictor.predict(tokens[task["scored"]])
    predicted = time.perf_counter()
    pos = {int(r): i for i, r in enumerate(task["scored"])}
    p_valid = pred_all[[pos[int(r)] for r in valid]]
    rest_mask = np.ones(len(task["scored"]), dtype=bool)
    rest_mask[[pos[int(r)] for r in np.concatenate([train, valid])]] = False
    y_valid = values[valid]
    y_rest = values[task["scored"]][rest_mask]
    return {
        "row": task["row"],
        "kind": cfg.kind,
        "encoder": cfg.encoder,
        "loss": cfg.loss,
        "seed": task["seed"],
        "tau_valid": kendall_tau(p_valid, y_valid),
        "pearson_valid": pearson(p_valid, y_valid),
        "mse_valid": mse(p_valid / 100.0, y_valid / 100.0),
        "tau_rest": kendall_tau(pred_all[rest_mask], y_rest) if rest_mask.sum() >= 2 else float("nan"),
        "n_rest": int(rest_mask.sum()),
        "train_seconds": trained - start,
        "predict_seconds": predicted - trained,
    }


def inner_cv_score(
    space: SearchSpace,
    tokens: np.ndarray,
    accuracies: np.ndarray,
    cfg: PredictorConfig,
    folds: int = 5,
    seed: int = 0,
) -> float:
    """Mean Kendall tau over ``folds`` held-out folds of the given training pairs.

    This is how settings are chosen without looking at any validation architecture:
    only the training pairs are split, trained on and scored.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    accuracies = np.asarray(accuracies, dtype=np.float64)
    if folds < 2 or folds > len(tokens):
        raise ConfigError(f"inner_cv_score: folds={folds} must be in 2..{len(tokens)}")
    order = np.random.default_rng(seed).permutation(len(tokens))
    taus = []
    for part in np.array_split(order, folds):
        keep = np.setdiff1d(order, part)
        predictor, _ = train_predictor(space, tokens[keep], accuracies[keep], cfg)
        taus.append(kendall_tau(predictor.predict(tokens[part]), accuracies[part]))
    return float(np.nanmean(taus))


def split_for_seed(candidates: np.ndarray, seed: int, n_train: int, n_valid: int) -> tuple[np.ndarray, np.ndarray]:
    """The seeded uniform draw of the protocol: rows for training and validation."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(candidates, size=n_train + n_valid, replace=False)
    return picks[:n_train], picks[n_train:]


def run_predictor_benchmark(
    table: NasBenchmark,
    space: SearchSpace,
    metric: str,
    rows: Sequence[BenchmarkRow] | None = None,
    seeds: Iterable[int] = range(10),
    n_train: int = 170,
    n_valid: int = 30,
    overrides: Mapping[str, Any] | None = None,
    n_jobs: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """One DataFrame row per (benchmark row, seed); see the module docstring for the columns.

    ``rows`` default to :func:`default_rows`; ``overrides`` apply to every row (e.g.
    ``{"epochs": 5}`` for a smoke test); ``n_jobs`` > 1 runs (row, seed) tasks in that
    many worker processes with one torch thread each (started with ``spawn``, so a calling
    script needs the usual ``if __name__ == "__main__":`` guard). Results do not depend
    on ``n_jobs``.
    """
    if table.space.describe() != space.describe():
        raise ConfigError(f"benchmark: table is for {table.space.describe()}, not {space.describe()}")
    values = table.values(metric)
    rows = list(default_rows() if rows is None else rows)
    seeds = [int(s) for s in seeds]
    if not rows or not seeds:
        raise ConfigError("benchmark: need at least one row and one seed")
    names = [r.name for r in rows]
    if len(set(names)) != len(names):
        raise ConfigError(f"benchmark: row names must be unique, got {names}")
    if n_train < 2 or n_valid < 2:
        raise ConfigError(f"benchmark: n_train ({n_train}) and n_valid ({n_valid}) must be >= 2")
    scored = np.flatnonzero(np.isfinite(values))
    if len(scored) < n_train + n_valid:
        raise DataError(
            f"benchmark: {metric!r} has {len(scored)} architectures with a value; need n_train + n_valid = "
            f"{n_train + n_valid}"
        )
    overrides = dict(overrides or {})
    # Validate every row's config up front: a typo fails before any training.
    for row in rows:
        cfg = _row_config(row, overrides, seeds[0])
        if cfg.kind == "fewshot" and n_train <= cfg.support_size:
            raise ConfigError(
                f"benchmark row {row.name!r}: n_train={n_train} leaves no queries beyond support_size={cfg.support_size}"
            )
    tokens = table.tokens
    space_spec = {"name": space.name, "options": space.options()}
    tasks = []
    for seed in seeds:
        train, valid = split_for_seed(scored, seed, n_train, n_valid)
        for row in rows:
            tasks.append({
                "row": row.name, "seed": seed, "config": _row_config(row, overrides, seed),
                "space": space_spec if n_jobs > 1 else space, "tokens": tokens, "values": values,
                "train": train, "valid": valid, "scored": scored, "threads": 1 if n_jobs > 1 else 0,
            })
    results: list[dict[str, Any]] = []
    with Progress(len(tasks), f"predictor benchmark {space.name}", unit="fit", enabled=progress) as bar:
        if n_jobs > 1:
            import multiprocessing as mp

            workers = min(n_jobs, len(tasks), os.cpu_count() or 1)
            with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
                for out in pool.map(_one, tasks):
                    results.append(out)
                    bar.update_metrics(row=out["row"], tau=out["tau_valid"])
                    bar.advance()
        else:
            for task in tasks:
                out = _one(task)
                results.append(out)
                bar.update_metrics(row=out["row"], tau=out["tau_valid"])
                bar.advance()
    frame = pd.DataFrame(results)
    frame.insert(0, "space", space.name)
    frame.insert(1, "metric", metric)
    frame["order"] = frame["row"].map({n: i for i, n in enumerate(names)})
    return frame.sort_values(["order", "seed"]).drop(columns="order").reset_index(drop=True)


def summarize(df: pd.DataFrame, columns: Sequence[str] = METRIC_COLUMNS) -> pd.DataFrame:
    """Mean and std over seeds per (space, metric, row); keeps the row order of ``df``."""
    missing = [c for c in ("space", "metric", "row", *columns) if c not in df.columns]
    if missing:
        raise DataError(f"summarize: columns {missing} missing from the benchmark frame")
    keys = ["space", "metric", "row"]
    grouped = df.groupby(keys, sort=False)
    mean = grouped[list(columns)].mean().add_suffix("_mean")
    std = grouped[list(columns)].std(ddof=1).add_suffix("_std")
    out = pd.concat([mean, std], axis=1)
    out["seeds"] = grouped.size()
    ordered = [f"{c}_{s}" for c in columns for s in ("mean", "std")]
    return out[ordered + ["seeds"]].reset_index()


def to_markdown(summary: pd.DataFrame, columns: Sequence[str] = METRIC_COLUMNS, digits: int = 3) -> str:
    """A GitHub markdown table, ``mean ± std`` per cell (MSE in scientific notation)."""
    headers = ["space", "row"] + list(columns) + ["seeds"]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * len(headers)) + "|"]
    for _, rec in summary.iterrows():
        cells = [str(rec["space"]), str(rec["row"])]
        for c in columns:
            m, s = rec[f"{c}_mean"], rec[f"{c}_std"]
            if c.startswith("mse"):
                cells.append(f"{m:.2e} ± {s:.1e}" if np.isfinite(s) else f"{m:.2e}")
            else:
                cells.append(f"{m:.{digits}f} ± {s:.{digits}f}" if np.isfinite(s) else f"{m:.{digits}f}")
        cells.append(str(int(rec["seeds"])))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
