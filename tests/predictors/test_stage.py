"""The predictor stage: split the ground truth, train, validate (and score on a whole table)."""

import numpy as np
import pandas as pd
import pytest

from wpnas.config import from_dict
from wpnas.errors import ArchitectureError, ConfigError, DataError
from wpnas.predictors import load_predictor
from wpnas.predictors.stage import PredictorStageConfig, fit_predictor, split_pairs

FAST = {"epochs": 25, "ensemble": 1, "support_size": 8, "hidden": 32, "out_dim": 16}


def _pairs(space, n, seed=0):
    rng = np.random.default_rng(seed)
    archs = space.sample_unique(rng, n)
    # a learnable target: accuracy grows with the number of 3x3 convolutions
    acc = [50 + 8 * sum(a == 3 for a in arch) + rng.normal(0, 1) for arch in archs]
    return pd.DataFrame({"arch": [space.to_string(a) for a in archs], "accuracy": acc})


def test_split_is_seeded_disjoint_and_complete():
    train, valid = split_pairs(50, 10, seed=3)
    assert len(valid) == 10 and set(train).isdisjoint(valid) and len(train) + len(valid) == 50
    again = split_pairs(50, 10, seed=3)
    assert np.array_equal(train, again[0]) and np.array_equal(valid, again[1])


def test_fit_reports_validation_metrics_and_round_trips(tss):
    pairs = _pairs(tss, 60)
    cfg = from_dict(PredictorStageConfig, {"valid_size": 12, "model": FAST})
    predictor, metrics, predictions = fit_predictor(tss, pairs, cfg, seed=0)
    assert metrics["train_pairs"] == 48 and metrics["valid_pairs"] == 12
    assert metrics["valid_kendall_tau"] > 0.5
    assert {"valid_pearson", "valid_mse", "valid_spearman"} <= set(metrics)
    assert len(predictions) == 12 and set(predictions["arch"]) <= set(pairs["arch"])
    again = load_predictor(predictor.to_checkpoint(), tss)
    assert np.allclose(again.predict(list(pairs["arch"][:5])), predictor.predict(list(pairs["arch"][:5])))


def test_scores_against_a_whole_table(tss, shared_data):
    from wpnas.nasbench import BenchmarkTable

    table = BenchmarkTable.from_csv(shared_data / "nb201" / "nb201_cifar10.csv", tss)
    rng = np.random.default_rng(0)
    rows = rng.choice(len(table), 60, replace=False)
    pairs = pd.DataFrame({"arch": [table.strings[i] for i in rows],
                          "accuracy": table.values("cifar10_valid_200ep")[rows]})
    cfg = from_dict(PredictorStageConfig, {
        "valid_size": 10, "model": FAST,
        "benchmark": {"kind": "csv", "path": str(shared_data / "nb201" / "nb201_cifar10.csv"),
                      "metric": "cifar10_valid_200ep"},
    })
    _, metrics, _ = fit_predictor(tss, pairs, cfg)
    assert metrics["table_archs"] == len(table) - 50  # every architecture it did not train on
    assert metrics["table_kendall_tau"] > 0.2


def test_bad_ground_truth_is_rejected_before_training(tss, sss):
    cfg = from_dict(PredictorStageConfig, {"valid_size": 5, "model": FAST})
    pairs = _pairs(tss, 30)
    with pytest.raises(DataError, match="too few"):
        fit_predictor(tss, pairs.iloc[:10], cfg)
    with pytest.raises(ArchitectureError, match="8:16"):
        fit_predictor(sss, pairs, cfg)  # TSS strings handed to an SSS predictor
    nan = pairs.copy()
    nan.loc[3, "accuracy"] = float("nan")
    with pytest.raises(DataError, match="not finite"):
        fit_predictor(tss, nan, cfg)
    dup = pd.concat([pairs, pairs.iloc[:1]], ignore_index=True)
    with pytest.raises(DataError, match="same architecture"):
        fit_predictor(tss, dup, cfg)
    with pytest.raises(DataError, match="no 'accuracy' column"):
        fit_predictor(tss, pairs.rename(columns={"accuracy": "acc"}), cfg)


def test_stage_settings_are_checked_up_front():
    with pytest.raises(ConfigError, match="predictor.model"):
        from_dict(PredictorStageConfig, {"model": {"encoder": "lstm9"}})
    assert from_dict(PredictorStageConfig, {"valid_size": 30, "model": {"support_size": 30}}).min_pairs == 61
    assert from_dict(PredictorStageConfig, {"preset": "paper"}).predictor_config().lr == pytest.approx(1e-4)
