"""NAS benchmark tables (NB201 / NATS) and ranking metrics."""

from wpnas.nasbench.metrics import (
    kendall_tau,
    mse,
    pearson,
    precision_at_k,
    rank_of,
    ranking_report,
    spearman,
)
from wpnas.nasbench.official import OfficialNatsTable  # imports nats_bench only when used
from wpnas.nasbench.loading import BenchmarkConfig, load_benchmark
from wpnas.nasbench.tables import Best, BenchmarkTable, NasBenchmark

__all__ = [
    "Best",
    "BenchmarkConfig",
    "BenchmarkTable",
    "NasBenchmark",
    "OfficialNatsTable",
    "kendall_tau",
    "load_benchmark",
    "mse",
    "pearson",
    "precision_at_k",
    "rank_of",
    "ranking_report",
    "spearman",
]

