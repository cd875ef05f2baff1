"""Ranking metrics for predictors and searches (higher value = better architecture).

Every function takes two equally long 1-D sequences. Constant inputs make a correlation
undefined: the result is ``nan`` (no warning, no crash), so a degenerate predictor shows
up in a report instead of stopping a run. NaN or infinite inputs are an error: they mean
a bug upstream, and silently dropping them would bias the numbers.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from wpnas.errors import DataError

__all__ = [
    "kendall_tau",
    "mse",
    "pearson",
    "precision_at_k",
    "rank_of",
    "ranking_report",
    "spearman",
]


def _vector(values: Iterable[float], name: str) -> np.ndarray:
    if not hasattr(values, "__array__") and not isinstance(values, (list, tuple)):
        values = list(values)
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{name}: expected a 1-D sequence of numbers, got {values!r:.80}") from None
    if arr.ndim != 1:
        raise DataError(f"{name}: expected a 1-D sequence of numbers, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = np.flatnonzero(bad)[:5].tolist()
        raise DataError(f"{name}: {int(bad.sum())} NaN/inf value(s), first at position(s) {where}")
    return arr


def _pair(pred: Iterable[float], true: Iterable[float], min_len: int = 2) -> tuple[np.ndarray, np.ndarray]:
    p = _vector(pred, "pred")
    t = _vector(true, "true")
    if p.shape != t.shape:
        raise DataError(f"pred has {p.size} values but true has {t.size}; they must match")
    if p.size < min_len:
        raise DataError(f"need at least {min_len} values, got {p.size}")
    return p, t


def _constant(x: np.ndarray) -> bool:
    return bool(np.all(x == x[0]))


def kendall_tau(pred: Iterable[float], true: Iterable[float]) -> float:
    """Kendall tau-b (ties in either input are corrected for, as scipy's default)."""
    p, t = _pair(pred, true)
    if _constant(p) or _constant(t):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from scipy import stats  # on use: scipy.stats costs most of a second to import

        return float(stats.kendalltau(p, t, variant="b").statistic)


def spearman(pred: Iterable[float], true: Iterable[float]) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    p, t = _pair(pred, true)
    if _constant(p) or _constant(t):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from scipy import stats

        return float(stats.spearmanr(p, t).statistic)


def pearson(pred: Iterable[float], true: Iterable[float]) -> float:
    """Pearson linear correlation."""
    p, t = _pair(pred, true)
    if _constant(p) or _constant(t):
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from scipy import stats

        return float(stats.pearsonr(p, t).statistic)


def mse(pred: Iterable[float], true: Iterable[float]) -> float:
    """Mean squared error in the units of the inputs (square of them)."""
    p, t = _pair(pred, true, min_len=1)
    return float(np.mean((p - t) ** 2))


def _top_k(values: np.ndarray, k: int) -> set[int]:
    # Stable sort on the negated values: among ties the earlier position wins, so the
    # result is deterministic.
    return set(np.argsort(-values, kind="stable")[:k].tolist())


def precision_at_k(pred: Iterable[float], true: Iterable[float], k: int) -> float:
    """Fraction of the true top-k architectures found in the predicted top-k."""
    p, t = _pair(pred, true, min_len=1)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= p.size:
        raise DataError(f"precision_at_k: k={k!r} must be an integer in 1..{p.size}")
    k = int(k)
    return len(_top_k(p, k) & _top_k(t, k)) / k


def rank_of(value: float, values: Iterable[float]) -> int:
    """Rank of ``value`` among ``values`` (1 = best = highest; ties share the best rank)."""
    v = float(value)
    if not math.isfinite(v):
        raise DataError(f"rank_of: value {value!r} is not a finite number")
    arr = _vector(values, "values")
    return int(np.count_nonzero(arr > v)) + 1


def ranking_report(
    pred: Sequence[float] | np.ndarray, true: Sequence[float] | np.ndarray, ks: Sequence[int] = (1, 5, 10)
) -> dict[str, float]:
    """All the metrics above in one dict (``precision_at_k`` for each ``k <= n``).

    ``best_true_rank`` is the true rank (1 = best) of the architecture the prediction
    puts first: what a search that trusts the predictor would end up with.
    """
    p, t = _pair(pred, true)
    report = {
        "kendall_tau": kendall_tau(p, t),
        "spearman": spearman(p, t),
        "pearson": pearson(p, t),
        "mse": mse(p, t),
    }
    for k in ks:
        if k <= p.size:
            report[f"precision_at_{k}"] = precision_at_k(p, t, k)
    report["best_true_rank"] = float(rank_of(t[int(np.argmax(p))], t))
    report["n"] = float(p.size)
    return report
