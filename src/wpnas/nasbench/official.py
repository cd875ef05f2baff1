"""Optional lookups in the official NATS-Bench files through the ``nats_bench`` package.

The CSV tables cover the usual CIFAR-10 metrics; the official archive adds CIFAR-100,
ImageNet16-120, losses and per-epoch schedules. Values are fetched lazily (the archive
holds one pickle per architecture in fast mode) and cached; ``values``/``rank``/``best``
read the whole table once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wpnas.errors import ConfigError, DataError
from wpnas.nasbench.tables import NasBenchmark
from wpnas.spaces.base import SearchSpace

__all__ = ["OfficialNatsTable", "NATS_DATASETS", "NATS_HPS", "NATS_METRICS"]

#: Space name -> the NATS-Bench search-space tag and its training schedules (longest first).
NATS_HPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "nats_tss": ("tss", ("200", "12")),
    "nats_sss": ("sss", ("90", "12", "01")),
}
NATS_DATASETS: tuple[str, ...] = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
#: Keys of ``api.get_more_info`` that are numbers per architecture.
NATS_METRICS: tuple[str, ...] = (
    "train-accuracy",
    "train-loss",
    "valid-accuracy",
    "valid-loss",
    "test-accuracy",
    "test-loss",
    "valtest-accuracy",
    "valtest-loss",
)

_INSTALL_HINT = 'the optional package nats_bench is not installed; run: pip install "wpnas[nats]"'


def _create_api(path: str | Path, tag: str) -> Any:
    try:
        import nats_bench
    except ImportError:
        raise ConfigError(f"OfficialNatsTable: {_INSTALL_HINT}") from None
    return nats_bench.create(str(path), tag, fast_mode=True, verbose=False)


class OfficialNatsTable(NasBenchmark):
    """NATS-Bench (TSS or SSS) as a :class:`NasBenchmark`.

    ``metrics`` are ``get_more_info`` keys (see ``NATS_METRICS``); values are seed means
    (``is_random=False``). ``api`` injects a ready API object (tests, or an API already
    loaded elsewhere); otherwise ``path`` is opened with ``nats_bench.create``.
    """

    def __init__(
        self,
        path: str | Path | None,
        space: SearchSpace,
        dataset: str = "cifar10-valid",
        hp: str | None = None,
        metrics: Sequence[str] = ("valid-accuracy", "test-accuracy"),
        api: Any = None,
    ) -> None:
        if space.name not in NATS_HPS:
            raise ConfigError(
                f"OfficialNatsTable: space {space.name!r} has no official NATS-Bench files; "
                f"expected one of {sorted(NATS_HPS)}"
            )
        tag, hps = NATS_HPS[space.name]
        hp = hps[0] if hp is None else str(hp)
        if hp not in hps:
            raise ConfigError(f"OfficialNatsTable: hp {hp!r} is not a {tag.upper()} schedule; expected one of {list(hps)}")
        if dataset not in NATS_DATASETS:
            raise ConfigError(f"OfficialNatsTable: dataset {dataset!r} unknown; expected one of {list(NATS_DATASETS)}")
        metrics = tuple(metrics)
        if not metrics:
            raise ConfigError("OfficialNatsTable: metrics is empty")
        unknown = [m for m in metrics if m not in NATS_METRICS]
        if unknown:
            raise ConfigError(f"OfficialNatsTable: unknown metric(s) {unknown}; expected some of {list(NATS_METRICS)}")
        if api is None:
            if path is None or not Path(path).exists():
                raise DataError(f"OfficialNatsTable: NATS-Bench archive {str(path)!r} does not exist")
            api = _create_api(path, tag)
        self.api = api
        self.dataset = dataset
        self.hp = hp
        self._metrics = metrics
        self._cache: dict[int, dict[str, float]] = {}
        self._full: dict[str, np.ndarray] = {}
        self.path = None if path is None else str(path)
        strings = [str(api.meta_archs[i]) for i in range(len(api))]
        super().__init__(space, strings, lower_is_better=[m for m in metrics if m.endswith("-loss")])

    def _source(self) -> str:
        return f"NATS-Bench {self.space.name} ({self.dataset}, hp={self.hp})"

    def _row_label(self, i: int) -> str:
        return f"official index {i}"

    @property
    def metrics(self) -> tuple[str, ...]:
        return self._metrics

    def _info(self, row: int) -> dict[str, float]:
        info = self._cache.get(row)
        if info is None:
            raw = self.api.get_more_info(row, self.dataset, iepoch=None, hp=self.hp, is_random=False)
            info = {}
            for m in self._metrics:
                if m not in raw or raw[m] is None:
                    raise DataError(
                        f"{self._source()}: no {m!r} for official index {row} "
                        f"(available: {sorted(k for k, v in raw.items() if isinstance(v, (int, float)))})"
                    )
                info[m] = float(raw[m])
            self._cache[row] = info
        return info

    def _value(self, row: int, metric: str) -> float:
        if metric in self._full:
            return float(self._full[metric][row])
        return self._info(row)[metric]

    def _column(self, metric: str) -> np.ndarray:
        col = self._full.get(metric)
        if col is None:
            infos = [self._info(i) for i in range(len(self))]
            for m in self._metrics:
                self._full[m] = np.asarray([info[m] for info in infos], dtype=np.float64)
            col = self._full[metric]
        return col

    def lookup_many(self, archs: Iterable[Any], metric: str) -> np.ndarray:
        self.check_metric(metric)
        return np.asarray([self._value(int(r), metric) for r in self.rows(archs)], dtype=np.float64)
