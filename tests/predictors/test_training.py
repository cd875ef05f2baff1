import io
import time

import numpy as np
import pytest
import torch

from wpnas.errors import ArchitectureError, CheckpointError, ConfigError, DataError
from wpnas.nasbench import kendall_tau
from wpnas.predictors import PredictorConfig, load_predictor, train_predictor
from wpnas.spaces import get_space

from tests.predictors.synthetic import sample_pairs


@pytest.mark.parametrize("encoder", ["mlp", "rnn", "transformer", "gcn"])
@pytest.mark.parametrize("kind", ["supervised", "fewshot"])
def test_learns_a_synthetic_target(space, encoder, kind, tiny):
    archs, acc = sample_pairs(space, 300, seed=1)
    cfg = PredictorConfig(kind=kind, encoder=encoder, loss="ranking+mse", mse_weight=0.5, **tiny)
    predictor, history = train_predictor(space, archs[:100], acc[:100], cfg)
    pred = predictor.predict(archs[100:])
    assert pred.shape == (200,) and np.isfinite(pred).all()
    assert kendall_tau(pred, acc[100:]) > 0.6
    assert len(history["loss"]) == 1 and len(history["loss"][0]) == cfg.epochs
    assert history["loss"][0][-1] < history["loss"][0][0]
    # predictions come back on the accuracy scale (percent), not normalised units
    assert abs(np.mean(pred) - np.mean(acc[100:])) < 3 * np.std(acc)


def test_paper_preset():
    cfg = PredictorConfig.paper()
    assert (cfg.epochs, cfg.optimizer, cfg.lr, cfg.support_size, cfg.loss) == (100, "sgd", 1e-4, 30, "ranking")
    assert PredictorConfig.paper(encoder="rnn").encoder == "rnn"


def test_config_errors():
    from wpnas.config import from_dict

    with pytest.raises(ConfigError, match="unknown setting"):
        from_dict(PredictorConfig, {"lerning_rate": 0.1})
    with pytest.raises(ConfigError, match="encoder"):
        from_dict(PredictorConfig, {"encoder": "lstm"})
    with pytest.raises(ConfigError, match="loss"):
        from_dict(PredictorConfig, {"loss": "l1"})
    with pytest.raises(ConfigError, match="support_size"):
        PredictorConfig(support_size=0)
    with pytest.raises(ConfigError, match="divisible"):
        PredictorConfig(encoder="transformer", embed_dim=30, heads=4)
    with pytest.raises(ConfigError, match="device"):
        PredictorConfig(device="gpu0")


def test_checkpoint_round_trip_is_exact_and_self_contained(tss, tiny):
    archs, acc = sample_pairs(tss, 60, seed=2)
    cfg = PredictorConfig(kind="fewshot", encoder="transformer", **{**tiny, "epochs": 5, "ensemble": 2})
    predictor, _ = train_predictor(tss, archs, acc, cfg)
    query = tss.sample_unique(np.random.default_rng(9), 50)
    before = predictor.predict(query)
    buffer = io.BytesIO()
    torch.save({"predictor": predictor.to_checkpoint()}, buffer)
    del predictor
    buffer.seek(0)
    restored = load_predictor(torch.load(buffer, weights_only=True)["predictor"], get_space("nats_tss"))
    np.testing.assert_array_equal(restored.predict(query), before)
    assert len(restored.support_strings) == cfg.support_size and restored.kind == "fewshot"
    # strings, tuples and token arrays give the same predictions
    np.testing.assert_array_equal(restored.predict([tss.to_string(a) for a in query]), before)
    np.testing.assert_array_equal(restored.predict(np.asarray(query)), before)


def test_supervised_checkpoint_and_wrong_space(tss, sss, tiny):
    archs, acc = sample_pairs(tss, 40, seed=3)
    predictor, _ = train_predictor(tss, archs, acc, PredictorConfig(kind="supervised", **{**tiny, "epochs": 3}))
    ckpt = predictor.state_dict_full()
    assert ckpt["support"] is None and ckpt["space"]["space"] == "nats_tss"
    again = load_predictor(ckpt, tss)
    np.testing.assert_array_equal(again.predict(archs), predictor.predict(archs))
    with pytest.raises(CheckpointError, match="nats_tss"):
        load_predictor(ckpt, sss)
    with pytest.raises(CheckpointError, match="C"):
        load_predictor(ckpt, get_space("nats_tss", C=8))
    with pytest.raises(CheckpointError, match="format"):
        load_predictor({"state_dict": {}}, tss)
    on_gpu = dict(ckpt, config={**ckpt["config"], "device": "cuda:7"})
    if not torch.cuda.is_available() or torch.cuda.device_count() < 8:
        assert load_predictor(on_gpu, tss).device.type == "cpu"  # falls back to the CPU
    broken = dict(ckpt, state_dicts=[{"nothing": torch.zeros(1)}])
    with pytest.raises(CheckpointError, match="inconsistent"):
        load_predictor(broken, tss)


def test_bad_inputs_fail_before_training(tss, sss, tiny):
    archs, acc = sample_pairs(tss, 40, seed=4)
    cfg = PredictorConfig(kind="fewshot", **tiny)
    with pytest.raises(DataError, match="at least 11"):
        train_predictor(tss, archs[:10], acc[:10], cfg)  # support 10 + one query
    with pytest.raises(DataError, match="40 architectures but 39"):
        train_predictor(tss, archs, acc[:-1], cfg)
    bad = acc.copy()
    bad[5] = np.nan
    with pytest.raises(DataError, match="pair 5"):
        train_predictor(tss, archs, bad, cfg)
    bad[5] = np.inf
    with pytest.raises(DataError, match="not finite"):
        train_predictor(tss, archs, bad, cfg)
    dup = list(archs)
    dup[7] = tss.to_string(dup[3])
    with pytest.raises(DataError, match="pairs 3 and 7"):
        train_predictor(tss, dup, acc, cfg)
    sss_strings = [sss.to_string(a) for a in sss.sample_unique(np.random.default_rng(0), 40)]
    with pytest.raises(ArchitectureError, match="training pairs: pair 0"):
        train_predictor(tss, sss_strings, acc, cfg)
    with pytest.raises(DataError, match="equal"):
        train_predictor(tss, archs, np.full(40, 50.0), cfg)
    with pytest.raises(DataError, match="inference_support=41"):
        train_predictor(tss, archs, acc, PredictorConfig(kind="fewshot", inference_support=41, **tiny))
    with pytest.raises(ConfigError, match="unknown setting"):
        train_predictor(tss, archs, acc, {"epochz": 3})


def test_inference_support_options(sss, tiny):
    archs, acc = sample_pairs(sss, 50, seed=5)
    base = {**tiny, "epochs": 2}
    p_all, _ = train_predictor(sss, archs, acc, PredictorConfig(kind="fewshot", inference_support=-1, **base))
    assert len(p_all.support_strings) == 50
    p_strat, _ = train_predictor(sss, archs, acc, PredictorConfig(kind="fewshot", support_selection="stratified",
                                                                   inference_support=5, **base))
    carried = np.sort(p_strat.support_accuracy)
    assert carried[0] == acc.min() and carried[-1] == acc.max() and len(carried) == 5


def test_predicting_a_whole_space_is_fast(sss):
    tokens = np.asarray(list(sss.enumerate()), dtype=np.int64)  # 32,768 architectures
    archs, acc = sample_pairs(sss, 60, seed=6)
    cfg = PredictorConfig(kind="fewshot", encoder="mlp", epochs=1, support_size=30)
    predictor, _ = train_predictor(sss, archs, acc, cfg)
    start = time.perf_counter()
    pred = predictor.predict(tokens)
    assert time.perf_counter() - start < 10.0
    assert pred.shape == (32768,) and np.isfinite(pred).all()
    np.testing.assert_allclose(pred[:100], predictor.predict(tokens[:100]), rtol=1e-6)


def test_antisymmetric_attention_variant_trains(tss, tiny):
    archs, acc = sample_pairs(tss, 200, seed=7)
    cfg = PredictorConfig(kind="fewshot", relation="antisymmetric", support_weighting="attention",
                          loss="ranking+mse", **tiny)
    predictor, _ = train_predictor(tss, archs[:100], acc[:100], cfg)
    assert kendall_tau(predictor.predict(archs[100:]), acc[100:]) > 0.6


def test_same_seed_same_predictor(sss, tiny):
    archs, acc = sample_pairs(sss, 40, seed=8)
    cfg = PredictorConfig(kind="fewshot", **{**tiny, "epochs": 3})
    a, _ = train_predictor(sss, archs, acc, cfg)
    b, _ = train_predictor(sss, archs, acc, cfg)
    np.testing.assert_array_equal(a.predict(archs), b.predict(archs))


@pytest.mark.parametrize("kind", ["supervised", "fewshot"])
def test_predictions_stay_in_0_100(kind, tiny):
    """Whatever the networks and calibration output, predict() returns percentages in [0, 100]."""
    space = get_space("nats_tss", C=4, N=1)
    archs, acc = sample_pairs(space, 30, seed=2)
    predictor, _ = train_predictor(space, archs, acc, PredictorConfig(kind=kind, **dict(tiny, epochs=1)))
    predictor.calibration = (1e-9, float(predictor.norm.forward(np.array([101.77]))[0]))  # raw output above 100
    assert np.allclose(predictor.norm.inverse(predictor.predict_normalised(archs[:5])), 101.77)
    assert (predictor.predict(archs[:5]) == 100.0).all()
    predictor.calibration = (1e-9, float(predictor.norm.forward(np.array([-3.0]))[0]))  # and below 0
    assert (predictor.predict(archs[:5]) == 0.0).all()


@pytest.mark.parametrize("encoder", ["mlp", "rnn", "transformer", "gcn"])
@pytest.mark.parametrize("name", ["darts", "mobilenet"])
def test_every_encoder_on_the_darts_and_mobilenet_spaces(name, encoder, tiny):
    """The predictors read any space through its encoding: 24 decisions of 1-10 choices (DARTS,
    with its own decision graph for the GCN) or 17 of 24 (MobileNet). The synthetic target has
    hundreds of weights here, so the bar is "learns", not the NATS spaces' tau > 0.6."""
    space = get_space(name)
    archs, acc = sample_pairs(space, 500, seed=1)
    cfg = PredictorConfig(kind="fewshot", encoder=encoder, loss="ranking+mse", mse_weight=0.5, **tiny)
    predictor, _ = train_predictor(space, archs[:300], acc[:300], cfg)
    pred = predictor.predict(archs[300:])
    assert pred.shape == (200,) and np.isfinite(pred).all()
    assert kendall_tau(pred, acc[300:]) > 0.25
