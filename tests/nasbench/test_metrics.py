import math

import numpy as np
import pytest

from wpnas.errors import DataError
from wpnas.nasbench.metrics import (
    kendall_tau,
    mse,
    pearson,
    precision_at_k,
    rank_of,
    ranking_report,
    spearman,
)


def test_kendall_tau_hand_computed():
    # pairs: 7 concordant, 3 discordant, no ties -> (7 - 3) / 10
    assert kendall_tau([1, 2, 3, 4, 5], [3, 1, 2, 5, 4]) == pytest.approx(0.4)


def test_kendall_tau_b_corrects_for_ties():
    # C = 5, D = 0, one tie in y: tau_b = 5 / sqrt(6 * 5); tau_a would be 5/6
    assert kendall_tau([1, 2, 3, 4], [1, 2, 2, 3]) == pytest.approx(5 / math.sqrt(30))


def test_spearman_and_pearson_hand_computed():
    # sum d^2 = 8 -> 1 - 6*8 / (5 * 24)
    assert spearman([1, 2, 3, 4, 5], [3, 1, 2, 5, 4]) == pytest.approx(0.6)
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(15 / math.sqrt(228))


def test_mse():
    assert mse([1, 2], [2, 4]) == pytest.approx(2.5)


def test_precision_at_k():
    pred = [0.9, 0.8, 0.1, 0.5]
    true = [10, 1, 9, 8]
    assert precision_at_k(pred, true, 1) == 1.0
    assert precision_at_k(pred, true, 2) == 0.5  # true {0, 2} vs predicted {0, 1}
    assert precision_at_k(pred, true, 3) == pytest.approx(2 / 3)
    assert precision_at_k(pred, true, 4) == 1.0
    with pytest.raises(DataError, match="k=5"):
        precision_at_k(pred, true, 5)
    with pytest.raises(DataError, match="k=0"):
        precision_at_k(pred, true, 0)


def test_rank_of_min_method():
    values = [1, 5, 7, 5]
    assert rank_of(7, values) == 1
    assert rank_of(5, values) == 2
    assert rank_of(1, values) == 4
    assert rank_of(0, values) == 5
    with pytest.raises(DataError):
        rank_of(float("nan"), values)


def test_constant_inputs_give_nan_without_error():
    for fn in (kendall_tau, spearman, pearson):
        assert math.isnan(fn([1, 1, 1], [1, 2, 3]))
        assert math.isnan(fn([1, 2, 3], [4, 4, 4]))


@pytest.mark.parametrize("fn", [kendall_tau, spearman, pearson, mse])
def test_nan_and_length_errors(fn):
    with pytest.raises(DataError, match="NaN"):
        fn([1.0, float("nan"), 2.0], [1, 2, 3])
    with pytest.raises(DataError, match="must match"):
        fn([1, 2, 3], [1, 2])


def test_ranking_report():
    rng = np.random.default_rng(0)
    true = rng.normal(size=50)
    pred = true + 0.1 * rng.normal(size=50)
    report = ranking_report(pred, true)
    for key in ("kendall_tau", "spearman", "pearson", "mse", "precision_at_1", "precision_at_10", "best_true_rank"):
        assert key in report
    assert report["kendall_tau"] == pytest.approx(kendall_tau(pred, true))
    assert report["best_true_rank"] >= 1
    exact = ranking_report(true, true)
    assert exact["kendall_tau"] == pytest.approx(1.0) and exact["best_true_rank"] == 1.0
