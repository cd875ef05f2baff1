import numpy as np
import pytest

from wpnas.errors import ConfigError, DataError
from wpnas.nasbench import BenchmarkTable
from wpnas.predictors.benchmark import (
    BASELINE_ROW,
    BenchmarkRow,
    default_rows,
    inner_cv_score,
    paper_rows,
    run_predictor_benchmark,
    split_for_seed,
    summarize,
    to_markdown,
)

from tests.predictors.synthetic import synthetic_accuracy

FAST = dict(epochs=3, support_size=10, hidden=16, out_dim=8, embed_dim=8, decoder_hidden=8, batch_size=16, ensemble=1)


@pytest.fixture
def table(sss):
    archs = sss.sample_unique(np.random.default_rng(0), 150)
    tokens = np.asarray(archs)
    acc = synthetic_accuracy(sss, tokens)
    return BenchmarkTable(sss, [sss.to_string(a) for a in archs], {"acc": acc, "other": -acc})


def test_tiny_benchmark_has_the_expected_shape(table, sss):
    rows = default_rows(("mlp", "gcn"))
    assert [r.name for r in rows] == ["MLP", "few-shot MLP", "GCN", "few-shot GCN", BASELINE_ROW.name]
    df = run_predictor_benchmark(table, sss, "acc", rows=rows, seeds=[0, 1], n_train=40, n_valid=10,
                                 overrides=FAST, progress=False)
    assert len(df) == len(rows) * 2
    for col in ("space", "metric", "row", "kind", "encoder", "loss", "seed", "tau_valid", "pearson_valid",
                "mse_valid", "tau_rest", "n_rest", "train_seconds"):
        assert col in df.columns
    assert (df["n_rest"] == 150 - 50).all()
    assert df["tau_valid"].between(-1, 1).all() and df["tau_rest"].between(-1, 1).all()
    assert set(df["kind"]) == {"supervised", "fewshot"}
    summary = summarize(df)
    assert list(summary["row"]) == [r.name for r in rows]
    assert {"tau_valid_mean", "tau_valid_std", "tau_rest_mean", "mse_valid_mean"} <= set(summary.columns)
    assert (summary["seeds"] == 2).all()
    text = to_markdown(summary)
    assert text.count("\n") == len(rows) + 2 and "few-shot GCN" in text and "±" in text
    # seeded: the same call gives the same numbers
    again = run_predictor_benchmark(table, sss, "acc", rows=rows[:1], seeds=[0], n_train=40, n_valid=10,
                                    overrides=FAST, progress=False)
    assert again["tau_valid"].iloc[0] == df["tau_valid"].iloc[0]


def test_split_is_seeded_and_disjoint():
    cands = np.arange(1000)
    a_train, a_valid = split_for_seed(cands, 3, 170, 30)
    b_train, b_valid = split_for_seed(cands, 3, 170, 30)
    np.testing.assert_array_equal(a_train, b_train)
    assert len(set(a_train) | set(a_valid)) == 200


def test_paper_rows_use_the_paper_settings():
    rows = paper_rows(("mlp",))
    assert [r.name for r in rows] == ["paper MLP", "paper few-shot MLP"]
    assert rows[1].settings["optimizer"] == "sgd" and rows[1].settings["lr"] == 1e-4


def test_benchmark_rejects_bad_settings(table, sss, tss):
    with pytest.raises(ConfigError, match="unknown setting"):
        run_predictor_benchmark(table, sss, "acc", rows=[BenchmarkRow("x", {"kind": "fewshot", "epoch": 1})],
                                seeds=[0], n_train=40, n_valid=10, progress=False)
    with pytest.raises(ConfigError, match="support_size"):
        run_predictor_benchmark(table, sss, "acc", rows=default_rows(("mlp",)), seeds=[0], n_train=30,
                                n_valid=10, progress=False)
    with pytest.raises(DataError, match="need n_train"):
        run_predictor_benchmark(table, sss, "acc", seeds=[0], n_train=140, n_valid=30, progress=False)
    with pytest.raises(ConfigError, match="metric"):
        run_predictor_benchmark(table, sss, "nope", seeds=[0], progress=False)
    with pytest.raises(ConfigError, match="nats_tss"):
        run_predictor_benchmark(table, tss, "acc", seeds=[0], progress=False)


def test_inner_cv_uses_only_the_given_pairs(table, sss):
    from wpnas.predictors import PredictorConfig

    tokens, acc = table.tokens[:60], table.values("acc")[:60]
    score = inner_cv_score(sss, tokens, acc, PredictorConfig(kind="supervised", **{**FAST, "epochs": 20}), folds=3)
    assert -1 <= score <= 1 and score > 0.3


def test_worker_processes_give_the_same_numbers(table, sss):
    rows = [BenchmarkRow("few-shot MLP", {"kind": "fewshot", "encoder": "mlp"})]
    kwargs = dict(rows=rows, seeds=[0, 1], n_train=40, n_valid=10, overrides=FAST, progress=False)
    inline = run_predictor_benchmark(table, sss, "acc", n_jobs=1, **kwargs)
    pooled = run_predictor_benchmark(table, sss, "acc", n_jobs=2, **kwargs)
    np.testing.assert_allclose(pooled["tau_valid"], inline["tau_valid"], atol=1e-6)
    np.testing.assert_allclose(pooled["tau_rest"], inline["tau_rest"], atol=1e-6)
