"""Tabular NAS benchmarks: the accuracy of every architecture of a space, looked up by arch.

Two sources share one interface (:class:`NasBenchmark`): the CSV tables of
``shared/data`` (:class:`BenchmarkTable`, the default everywhere) and the official
NATS-Bench files (:class:`wpnas.nasbench.official.OfficialNatsTable`, optional).

Rows are keyed by the parsed choice tuple, so any spelling the space accepts finds the
row; ``strings`` holds the canonical form (``space.to_string``). Rank 1 is the best
architecture; metrics are "higher is better" unless named in ``lower_is_better``.
Missing values (NaN) are allowed in a table: ``lookup`` returns NaN for them and
``rank``/``best`` leave them out.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from wpnas.errors import ArchitectureError, ConfigError, DataError
from wpnas.spaces.base import Arch, SearchSpace

__all__ = [
    "BenchmarkTable",
    "Best",
    "NasBenchmark",
]


class Best(NamedTuple):
    """The top architecture of a metric."""

    string: str
    arch: Arch
    value: float


class NasBenchmark(ABC):
    """Read-only arch -> metric table over one search space (rows in a fixed order)."""

    def __init__(self, space: SearchSpace, strings: Sequence[str], lower_is_better: Iterable[str] = ()) -> None:
        self.space = space
        self.lower_is_better = frozenset(lower_is_better)
        self._archs: list[Arch] = []
        self._rows: dict[Arch, int] = {}
        self._strings: list[str] = []
        self._parse_rows(strings)

    # -- construction ------------------------------------------------------------
    def _row_label(self, i: int) -> str:
        return f"row {i}"

    def _source(self) -> str:
        return type(self).__name__

    def _parse_rows(self, strings: Sequence[str]) -> None:
        parse = self.space.from_string
        to_string = self.space.to_string
        cache: dict[str, Arch] = {}
        for i, text in enumerate(strings):
            arch = cache.get(text)
            if arch is None:
                try:
                    arch = parse(text)
                except ArchitectureError as err:
                    raise ArchitectureError(
                        f"{self._source()}: {self._row_label(i)} has arch {text!r}, which is not a "
                        f"{self.space.name} architecture ({err})"
                    ) from None
                cache[text] = arch
            if arch in self._rows:
                raise DataError(
                    f"{self._source()}: {self._row_label(i)} repeats architecture {text!r} "
                    f"(already at {self._row_label(self._rows[arch])})"
                )
            self._rows[arch] = i
            self._archs.append(arch)
            self._strings.append(to_string(arch))

    # -- what subclasses provide -------------------------------------------------
    @property
    @abstractmethod
    def metrics(self) -> tuple[str, ...]:
        """Metric (column) names."""

    @abstractmethod
    def _column(self, metric: str) -> np.ndarray:
        """All values of a (checked) metric in row order, float64."""

    def _value(self, row: int, metric: str) -> float:
        return float(self._column(metric)[row])

    # -- shared interface --------------------------------------------------------
    def check_metric(self, metric: str) -> str:
        if metric not in self.metrics:
            raise ConfigError(f"{self._source()}: unknown metric {metric!r}; expected one of {list(self.metrics)}")
        return metric

    @property
    def archs(self) -> list[Arch]:
        return list(self._archs)

    @property
    def strings(self) -> list[str]:
        return list(self._strings)

    @property
    def tokens(self) -> np.ndarray:
        """(N, L) int64 choice indices in row order (for ``space.encode_tokens``)."""
        return np.asarray(self._archs, dtype=np.int64).reshape(len(self._archs), self.space.num_decisions)

    def __len__(self) -> int:
        return len(self._archs)

    def __contains__(self, arch: object) -> bool:
        try:
            return self._key(arch) in self._rows  # type: ignore[arg-type]
        except ArchitectureError:
            return False

    def _key(self, arch: str | Iterable[int]) -> Arch:
        return self.space.parse(arch)

    def row(self, arch: str | Iterable[int]) -> int:
        """Row position of ``arch`` (any valid spelling)."""
        key = self._key(arch)
        try:
            return self._rows[key]
        except KeyError:
            raise ArchitectureError(
                f"{self._source()}: architecture {self.space.to_string(key)!r} is not in the table "
                f"({len(self)} rows)"
            ) from None

    def rows(self, archs: Iterable[str | Iterable[int]]) -> np.ndarray:
        return np.asarray([self.row(a) for a in archs], dtype=np.int64)

    def values(self, metric: str) -> np.ndarray:
        """All values of ``metric`` in row order (a copy)."""
        return np.array(self._column(self.check_metric(metric)), dtype=np.float64)

    def lookup(self, arch: str | Iterable[int], metric: str) -> float:
        self.check_metric(metric)
        return self._value(self.row(arch), metric)

    def lookup_many(self, archs: Iterable[str | Iterable[int]], metric: str) -> np.ndarray:
        self.check_metric(metric)
        return self._column(metric)[self.rows(archs)].astype(np.float64)

    def _oriented(self, metric: str) -> np.ndarray:
        col = self._column(self.check_metric(metric))
        return -col if metric in self.lower_is_better else col

    def rank(self, arch: str | Iterable[int], metric: str) -> int:
        """1 = best; ties share the best rank (``min`` method)."""
        col = self._oriented(metric)
        value = col[self.row(arch)]
        if np.isnan(value):
            raise DataError(f"{self._source()}: {metric!r} of {self.space.to_string(self._key(arch))!r} is missing")
        return int(np.count_nonzero(col[~np.isnan(col)] > value)) + 1

    def ranks(self, metric: str) -> np.ndarray:
        """Rank of every row (``min`` method; missing values get rank 0)."""
        col = self._oriented(metric)
        ok = ~np.isnan(col)
        valid = np.sort(col[ok])
        out = np.zeros(len(col), dtype=np.int64)
        # number of strictly larger values = n - (index of the first value > v)
        out[ok] = valid.size - np.searchsorted(valid, col[ok], side="right") + 1
        return out

    def best(self, metric: str) -> Best:
        col = self._oriented(metric)
        if np.all(np.isnan(col)):
            raise DataError(f"{self._source()}: metric {metric!r} has no values")
        row = int(np.nanargmax(col))
        return Best(self._strings[row], self._archs[row], float(self._column(metric)[row]))


class BenchmarkTable(NasBenchmark):
    """A table held in memory (the CSV form of ``shared/data``)."""

    def __init__(
        self,
        space: SearchSpace,
        strings: Sequence[str],
        columns: dict[str, np.ndarray],
        index: np.ndarray | None = None,
        source: str = "BenchmarkTable",
        lower_is_better: Iterable[str] = (),
    ) -> None:
        self._source_name = source
        self._columns = {k: np.asarray(v, dtype=np.float64) for k, v in columns.items()}
        for name, col in self._columns.items():
            if col.shape != (len(strings),):
                raise DataError(f"{source}: column {name!r} has {col.shape} values for {len(strings)} rows")
        if not self._columns:
            raise DataError(f"{source}: no metric columns")
        self.index = None if index is None else np.asarray(index)
        super().__init__(space, strings, lower_is_better)
        unknown = sorted(self.lower_is_better - set(self._columns))
        if unknown:
            raise ConfigError(f"{source}: lower_is_better names unknown metric(s) {unknown}")

    def _source(self) -> str:
        return self._source_name

    def _row_label(self, i: int) -> str:
        if self.index is not None:
            return f"row {i} (index {self.index[i]})"
        return f"row {i}"

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self._columns)

    def _column(self, metric: str) -> np.ndarray:
        return self._columns[metric]

    @classmethod
    def from_csv(
        cls, path: str | Path, space: SearchSpace, lower_is_better: Iterable[str] = ()
    ) -> BenchmarkTable:
        """Load ``index,arch,<metric>...`` (``index`` optional; every other column a metric)."""
        import pandas as pd

        path = Path(path)
        if not path.is_file():
            raise DataError(f"benchmark table {str(path)!r} does not exist (expected a CSV with an 'arch' column)")
        try:
            frame = pd.read_csv(path, dtype={"arch": str})
        except Exception as err:  # pandas raises several parser error types
            raise DataError(f"benchmark table {str(path)!r} is not a readable CSV ({err})") from None
        if "arch" not in frame.columns:
            raise DataError(f"benchmark table {str(path)!r} has no 'arch' column (columns: {list(frame.columns)})")
        if len(frame) == 0:
            raise DataError(f"benchmark table {str(path)!r} has no rows")
        if frame["arch"].isna().any():
            row = int(np.flatnonzero(frame["arch"].isna().to_numpy())[0])
            raise ArchitectureError(f"{path}: row {row} has an empty arch string")
        columns: dict[str, np.ndarray] = {}
        for name in frame.columns:
            if name in ("arch", "index"):
                continue
            try:
                columns[name] = pd.to_numeric(frame[name], errors="raise").to_numpy(dtype=np.float64)
            except (ValueError, TypeError):
                raise DataError(f"benchmark table {str(path)!r}: column {name!r} is not numeric") from None
        index = frame["index"].to_numpy() if "index" in frame.columns else None
        return cls(
            space,
            frame["arch"].tolist(),
            columns,
            index=index,
            source=str(path),
            lower_is_better=lower_is_better,
        )
