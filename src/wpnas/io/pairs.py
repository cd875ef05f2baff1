"""(architecture, accuracy) pairs: the one check shared by every stage that reads them
(predictor training, landmark regularisation, ranking against ground truth).

Accuracies are percent, in [0, 100]; a value outside is refused, naming its row. Pairs
whose accuracies are all <= 1.0 look like fractions and are refused unless the reading
stage's ``accuracy_scale`` says ``fraction`` (they are then converted to percent) or
``percent`` (taken as they are)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from wpnas.errors import ArchitectureError, ConfigError, DataError
from wpnas.fingerprint import content_fingerprint, record
from wpnas.spaces.base import SearchSpace


ACCURACY_SCALES = ("percent", "fraction")

#: Where a user declares the scale, named in the message when none is declared.
_SCALE_HINT = ("ground_truth.accuracy_scale for a benchmark table, predictor.accuracy_scale for a pairs file")


def to_percent(acc: np.ndarray, accuracy_scale: str | None, what: str, scale_key: str | None = None) -> np.ndarray:
    """Accuracies in percent: converted from fractions when ``accuracy_scale`` is 'fraction';
    refused when undeclared (None) and every value is <= 1.0 (fractions given as percent)."""
    key = scale_key or "accuracy_scale"
    if accuracy_scale not in (None, *ACCURACY_SCALES):
        raise ConfigError(f"{key}: {accuracy_scale!r} is not one of {list(ACCURACY_SCALES)} or null")
    if acc.size == 0:
        return acc
    if accuracy_scale == "fraction":
        _check_range(acc, 1.0, what, f"{key} is 'fraction', so every accuracy must lie in [0, 1]")
        return acc * 100.0
    _check_range(acc, 100.0, what, "accuracies are percent and must lie in [0, 100]")
    if accuracy_scale == "percent":
        return acc
    high = float(acc.max())
    if high <= 1.0:
        where = key if scale_key else _SCALE_HINT
        raise DataError(
            f"{what}: every accuracy is <= 1.0 (largest {high:g}), which looks like fractions (0-1), but "
            f"accuracies are percent (0-100). Multiply them by 100, or declare the scale: {where} = 'fraction' "
            "converts them, 'percent' takes them as they are"
        )
    return acc


def _check_range(acc: np.ndarray, top: float, what: str, rule: str) -> None:
    """Refuse an accuracy outside [0, ``top``], naming the first such row (an impossible accuracy
    would otherwise train a predictor or rank a SuperNet without complaint)."""
    bad = np.flatnonzero((acc < 0.0) | (acc > top))
    if bad.size:
        low, high = float(acc.min()), float(acc.max())
        raise DataError(f"{what}: accuracy {float(acc[bad[0]]):g} of row {int(bad[0])} is impossible: {rule} "
                        f"({bad.size} row(s) outside, span [{low:g}, {high:g}])")


def check_pairs(space: SearchSpace, archs: Sequence[Any], accuracies: Sequence[float], min_pairs: int = 2,
                what: str = "training pairs", accuracy_scale: str | None = None,
                scale_key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate (architecture, accuracy) pairs; return (N, L) choice tokens and float64 accuracies (percent).

    Every architecture must parse in ``space`` (no repeats) and every accuracy be finite;
    ``accuracy_scale`` (see :func:`to_percent`, ``scale_key`` names it) fixes the units."""
    if isinstance(archs, (str, bytes)):
        raise DataError("archs: expected a sequence of architectures, got a single string")
    archs = list(archs)
    acc = np.asarray(list(accuracies) if not hasattr(accuracies, "__array__") else accuracies, dtype=np.float64)
    if acc.ndim != 1:
        raise DataError(f"accuracies: expected a 1-D sequence, got shape {acc.shape}")
    if len(archs) != len(acc):
        raise DataError(f"got {len(archs)} architectures but {len(acc)} accuracies; they must pair up")
    bad = np.flatnonzero(~np.isfinite(acc))
    if bad.size:
        raise DataError(f"accuracy {acc[bad[0]]!r} of pair {int(bad[0])} is not finite ({bad.size} such value(s))")
    acc = to_percent(acc, accuracy_scale, what, scale_key)
    tokens = np.zeros((len(archs), space.num_decisions), dtype=np.int64)
    seen: dict[tuple[int, ...], int] = {}
    for i, arch in enumerate(archs):
        try:
            parsed = space.parse(arch)
        except ArchitectureError as err:
            raise ArchitectureError(
                f"{what}: pair {i}, {arch!r}, is not an architecture of space {space.name!r} ({err}); "
                "pairs must come from the same space"
            ) from None
        if parsed in seen:
            raise DataError(
                f"{what} {seen[parsed]} and {i} are the same architecture {space.to_string(parsed)!r}; "
                "average the accuracies or drop one"
            )
        seen[parsed] = i
        tokens[i] = parsed
    if len(archs) < min_pairs:
        raise DataError(f"need at least {min_pairs} {what}, got {len(archs)}")
    return tokens, acc


def read_pairs(space: SearchSpace, pairs: Any, min_pairs: int = 2, what: str = "ground-truth pairs",
               accuracy_scale: str | None = None, scale_key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`check_pairs` on a table with columns ``arch`` and ``accuracy`` (percent, see ``accuracy_scale``)."""
    if not isinstance(pairs, pd.DataFrame):
        raise DataError(f"{what}: expected a table with columns 'arch' and 'accuracy', got {type(pairs).__name__}")
    missing = [c for c in ("arch", "accuracy") if c not in pairs.columns]
    if missing:
        raise DataError(
            f"{what}: no {missing[0]!r} column (missing column(s) {missing}); expected 'arch' and 'accuracy', "
            f"got {list(pairs.columns)}"
        )
    try:
        acc = pd.to_numeric(pairs["accuracy"]).to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{what}: column 'accuracy' must hold numbers (percent)") from None
    return check_pairs(space, list(pairs["arch"]), acc, min_pairs=min_pairs, what=what,
                       accuracy_scale=accuracy_scale, scale_key=scale_key)


def pairs_fingerprint(pairs: pd.DataFrame) -> dict[str, Any]:
    """The fingerprint record of an ``arch_accuracy_pairs`` table: its size, its architectures
    and its accuracies (rounded to 1e-6, so the CSV round trip keeps it)."""
    if not isinstance(pairs, pd.DataFrame) or not {"arch", "accuracy"} <= set(pairs.columns):
        return record({"rows": None})
    return record({
        "rows": int(len(pairs)),
        "archs": content_fingerprint([str(a) for a in pairs["arch"]]),
        "accuracy": content_fingerprint([round(float(a), 6) for a in pairs["accuracy"]]),
    })


def check_pairs_source(summary: Mapping[str, Any] | None, pairs: pd.DataFrame,
                       warmed_fingerprint: str | None) -> None:
    """Refuse pairs fine-tuned from another warmed SuperNet than the one a stage is given.

    ``summary`` is the ground-truth stage's summary (it records the fingerprint of the
    SuperNet the pairs were fine-tuned from, and the pairs' own fingerprint). Nothing is
    compared when the pairs came from a benchmark table, when the summary belongs to another
    table, or when either side predates fingerprints.
    """
    if not summary or summary.get("source") != "finetune":
        return
    if summary.get("pairs_fingerprint") != pairs_fingerprint(pairs)["fingerprint"]:
        return
    recorded = (summary.get("inputs") or {}).get("warmed_supernet")
    if recorded and warmed_fingerprint and recorded != warmed_fingerprint:
        raise DataError(
            f"arch_accuracy_pairs were fine-tuned from the warmed SuperNet with fingerprint {recorded}, but "
            f"warmed_supernet has fingerprint {warmed_fingerprint} (WarmUp ran again after the ground truth): "
            "run the ground_truth and predictor pipelines again, or load the matching warmed_supernet with "
            "--load-versions"
        )
