"""Paper Table 2 over several benchmark tables: one call for the pipeline and the script.

Each table (a space + a benchmark config) goes through :func:`run_predictor_benchmark`;
the per-seed results are concatenated, summarised (mean and std over seeds) and set
next to the paper's Kendall tau for the same rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from wpnas.errors import ConfigError
from wpnas.nasbench import BenchmarkConfig, load_benchmark
from wpnas.predictors.benchmark import default_rows, paper_rows, run_predictor_benchmark, summarize, to_markdown
from wpnas.spaces import SpaceConfig

#: The paper's Table 2, CIFAR-10, Kendall tau on the 30 validation architectures.
PAPER_TABLE2_TAU: dict[str, dict[str, float]] = {
    "nats_tss": {"MLP": 0.550, "few-shot MLP": 0.561, "RNN": 0.517, "few-shot RNN": 0.531,
                 "Transformer": 0.582, "few-shot Transformer": 0.588},
    "nats_sss": {"MLP": 0.795, "few-shot MLP": 0.804, "RNN": 0.773, "few-shot RNN": 0.786,
                 "Transformer": 0.790, "few-shot Transformer": 0.795},
}


@dataclass(frozen=True)
class Table2Table:
    """One benchmark table to run the protocol on."""

    space: SpaceConfig
    benchmark: BenchmarkConfig


@dataclass(frozen=True)
class Table2Config:
    """``predictor_benchmark:`` in the parameters (paper: 170 train / 30 valid)."""

    tables: tuple[Table2Table, ...] = ()
    seeds: int = 10
    n_train: int = 170
    n_valid: int = 30
    rows: Literal["default", "paper", "both"] = "default"
    encoders: tuple[str, ...] = ("mlp", "rnn", "transformer", "gcn")
    overrides: dict[str, Any] = field(default_factory=dict)
    n_jobs: int = 1

    def __post_init__(self) -> None:
        if not self.tables:
            raise ConfigError("predictor_benchmark.tables: empty; expected at least one {space, benchmark} entry")
        if self.seeds < 1 or self.n_jobs < 1:
            raise ConfigError("predictor_benchmark.seeds and n_jobs must be >= 1")

    def benchmark_rows(self):
        rows = []
        if self.rows in ("default", "both"):
            rows += default_rows(self.encoders)
        if self.rows in ("paper", "both"):
            rows += paper_rows([e for e in self.encoders if e != "gcn"])
        return rows


@dataclass
class Table2Result:
    runs: pd.DataFrame
    summary: pd.DataFrame
    markdown: str
    seconds: float


def run_table2(cfg: Table2Config) -> Table2Result:
    """Run the protocol on every table of ``cfg``; tables are all loaded (and checked) first."""
    loaded = []
    for entry in cfg.tables:
        space = entry.space.build()
        loaded.append((space, load_benchmark(entry.benchmark, space), entry.benchmark.metric))
    rows = cfg.benchmark_rows()
    started = time.monotonic()
    frames = [
        run_predictor_benchmark(table, space, metric, rows=rows, seeds=range(cfg.seeds), n_train=cfg.n_train,
                                n_valid=cfg.n_valid, overrides=cfg.overrides, n_jobs=cfg.n_jobs)
        for space, table, metric in loaded
    ]
    runs = pd.concat(frames, ignore_index=True)
    summary = summarize(runs)
    summary["paper_tau_valid"] = [
        PAPER_TABLE2_TAU.get(s, {}).get(r.removeprefix("paper "), np.nan) for s, r in zip(summary.space, summary.row)
    ]
    seconds = time.monotonic() - started
    header = (
        f"Predictors on {cfg.n_train} training / {cfg.n_valid} validation architectures, "
        f"{cfg.seeds} seeds (mean ± std). tau_rest = Kendall tau on every other architecture of the table; "
        "MSE on accuracy / 100.\n\n"
    )
    paper = summary.dropna(subset=["paper_tau_valid"])
    lines = [f"| {r.space} | {r.row} | {r.paper_tau_valid:.3f} | {r.tau_valid_mean:.3f} |" for r in paper.itertuples()]
    comparison = ""
    if lines:
        comparison = ("\nPaper vs ours, Kendall tau on the validation architectures:\n\n"
                      "| space | row | paper | ours |\n|---|---|---|---|\n" + "\n".join(lines) + "\n")
    return Table2Result(runs, summary, header + to_markdown(summary) + comparison, seconds)
