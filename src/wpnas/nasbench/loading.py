"""Which benchmark a configuration names, and loading it (CSV tables or official NATS-Bench files).

Kept apart from :mod:`wpnas.nasbench.tables` and :mod:`wpnas.nasbench.official` so that
both table kinds depend only on their common base, and this module on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wpnas.errors import ConfigError
from wpnas.nasbench.official import OfficialNatsTable
from wpnas.nasbench.tables import BenchmarkTable, NasBenchmark
from wpnas.spaces.base import SearchSpace


@dataclass(frozen=True)
class BenchmarkConfig:
    """Where a pipeline finds ground truth.

    kind:    'csv' (a table in the shared CSV form) or 'nats_bench' (official files via
             the optional ``nats_bench`` package).
    path:    the CSV file, or the NATS-Bench archive file/folder.
    metric:  the column (csv) or ``get_more_info`` key (nats_bench) pipelines rank by.
    dataset: nats_bench only ('cifar10-valid', 'cifar10', 'cifar100', 'ImageNet16-120').
    hp:      nats_bench only: training schedule ('12'/'200' for TSS, '01'/'12'/'90' for
             SSS); empty = the longest one.
    """

    kind: Literal["csv", "nats_bench"] = "csv"
    path: str = ""
    metric: str = "cifar10_valid_200ep"
    dataset: str = "cifar10-valid"
    hp: str = ""

    def __post_init__(self) -> None:
        if not self.path:
            raise ConfigError("benchmark.path: empty; expected the table file (or NATS-Bench archive) to read")
        if not self.metric:
            raise ConfigError("benchmark.metric: empty; expected a metric name")


def load_benchmark(cfg: BenchmarkConfig, space: SearchSpace) -> NasBenchmark:
    """Build the table a config names and check its metric exists."""
    if cfg.kind == "csv":
        table: NasBenchmark = BenchmarkTable.from_csv(cfg.path, space)
    else:
        table = OfficialNatsTable(cfg.path, space, dataset=cfg.dataset, hp=cfg.hp or None, metrics=(cfg.metric,))
    table.check_metric(cfg.metric)
    return table
