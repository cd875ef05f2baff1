"""Ranking evaluation of a trained SuperNet against benchmark tables or ground-truth pairs."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn

from wpnas.config import from_dict
from wpnas.errors import ArchitectureError, ConfigError, DataError
from wpnas.io.supernet_checkpoint import restore_supernet
from wpnas.nasbench import BenchmarkConfig, BenchmarkTable, kendall_tau, spearman
from wpnas.spaces import get_space
from wpnas.spaces.base import Cost, Decision, SearchSpace
from wpnas.train.ranking import (
    TABLE_COLUMNS,
    RankingConfig,
    benchmark_position,
    check_ranking,
    rank_supernet,
    ranking_sample,
)
from wpnas.train.warmup import WarmupConfig, warmup_supernet

CPU = torch.device("cpu")
FAST = {"valid_limit": 100, "calib_batches": 1, "calib_batch_size": 64, "eval_batch_size": 100}


# -- a tiny space with a real SuperNet (2**3 = 8 architectures) -------------------------
class _TinySuperNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: int = 4, depth: int = 3) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width))
        self.layers = nn.ModuleList(
            nn.ModuleList([
                nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()),
                nn.Sequential(nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()),
            ])
            for _ in range(depth)
        )
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor, arch: Iterable[int], offsets: torch.Tensor | None = None) -> torch.Tensor:
        x = self.stem(x)
        for ops, choice in zip(self.layers, arch):
            x = ops[choice](x)
        return self.head(x.mean(dim=(2, 3)))


class TinySpace(SearchSpace):
    """Three decisions of (3x3 conv, 1x1 conv); arch strings like ``0-1-0``."""

    name = "tiny"

    def __init__(self) -> None:
        super().__init__([Decision(f"d{l}", ("conv3x3", "conv1x1")) for l in range(3)])

    def options(self) -> dict[str, Any]:
        return {}

    def to_string(self, arch: Iterable[int]) -> str:
        return "-".join(str(a) for a in self.validate(arch))

    def from_string(self, text: str):
        try:
            return self.validate(int(p) for p in text.split("-"))
        except ValueError:
            raise ArchitectureError(f"tiny: cannot parse {text!r}") from None

    def cost(self, arch, input_shape=(3, 32, 32), num_classes=10) -> Cost:
        arch = self.validate(arch)
        return Cost(flops_m=float(sum(4 - 3 * a for a in arch)), params_m=float(len(arch) - sum(arch)))

    def build_supernet(self, in_channels=3, num_classes=10):
        return _TinySuperNet(in_channels, num_classes)

    def build_network(self, arch, in_channels=3, num_classes=10):
        raise NotImplementedError("the tiny space has no stand-alone networks")


# -- fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tss_warmed(tiny_splits):
    """NATS-TSS (C=8, N=1) after one warm-up epoch on digits: (space, checkpoint)."""
    space = get_space("nats_tss", C=8, N=1)
    cfg = from_dict(WarmupConfig, {"epochs": 1, "batch_size": 64, "probe_archs": 0,
                                   "augment": {"crop_padding": 1, "flip": False}})
    return space, warmup_supernet(space, tiny_splits, cfg, CPU, seed=0)


@pytest.fixture()
def supernet(tss_warmed):
    return restore_supernet(tss_warmed[1], CPU)


def _accuracies(n: int) -> np.ndarray:
    """Distinct made-up accuracies (%) in a scrambled order."""
    return 60.0 + (np.arange(n) * 7 % 13) + 0.1 * np.arange(n)


def _write_table(path, space: SearchSpace, archs, acc: np.ndarray):
    pd.DataFrame({
        "index": np.arange(len(archs)),
        "arch": [space.to_string(a) for a in archs],
        "acc": acc,
        "acc_test": acc[::-1].copy(),
    }).to_csv(path, index=False)
    return path


# -- tests -------------------------------------------------------------------------------
def test_metrics_equal_hand_computed_ones_on_the_report_table(tss_warmed, supernet, tiny_splits, tmp_path):
    space = tss_warmed[0]
    probe = RankingConfig(num_archs=12, benchmark=BenchmarkConfig(path="unused.csv", metric="acc"))
    archs = ranking_sample(space, probe)
    truth = _accuracies(len(archs))
    path = _write_table(tmp_path / "t.csv", space, archs, truth)
    cfg = RankingConfig(num_archs=12, benchmark=BenchmarkConfig(path=str(path), metric="acc"), **FAST)
    before = {k: v.clone() for k, v in supernet.state_dict().items()}

    report = rank_supernet(supernet, space, tiny_splits, cfg, CPU, seed=0)

    t = report.table
    assert list(t.columns) == list(TABLE_COLUMNS)
    assert t["arch"].tolist() == [space.to_string(a) for a in archs]
    np.testing.assert_allclose(t["reference_acc"], truth)
    m = report.metrics
    assert m["kendall_tau"] == pytest.approx(kendall_tau(t["supernet_acc"], t["reference_acc"]))
    assert m["spearman"] == pytest.approx(spearman(t["supernet_acc"], t["reference_acc"]))
    assert m["mse"] == pytest.approx(np.mean((t["supernet_acc"] / 100 - truth / 100) ** 2))
    assert m["mse"] < 1.0  # on the fraction scale, not percent^2
    params = [space.cost(a, tiny_splits.input_shape, tiny_splits.num_classes).params_m for a in archs]
    flops = [space.cost(a, tiny_splits.input_shape, tiny_splits.num_classes).flops_m for a in archs]
    np.testing.assert_allclose(t["params_m"], params)
    assert m["params_kendall_tau"] == pytest.approx(kendall_tau(params, truth), nan_ok=True)
    assert m["flops_kendall_tau"] == pytest.approx(kendall_tau(flops, truth), nan_ok=True)
    assert m["n"] == 12 and m["column"] == "acc" and m["sample"] == "K=12 seeded sample, seed 0"
    assert m["device"] == "cpu" and m["seconds"] > 0
    best = int(np.argmax(t["supernet_acc"]))
    assert m["best_arch"] == t["arch"][best]
    assert m["best_position"]["column"] == "acc" and m["best_position"]["of"] == 12
    assert m["best_position"]["rank"] == int(np.sum(truth > truth[best])) + 1
    json.dumps(report.to_dict(), allow_nan=False)
    # BN statistics and flags are as they were
    after = supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_rank_metric_picks_the_best_architectures_column(tss_warmed, supernet, tiny_splits, tmp_path):
    space = tss_warmed[0]
    archs = ranking_sample(space, RankingConfig(num_archs=4, benchmark=BenchmarkConfig(path="x", metric="acc")))
    path = _write_table(tmp_path / "t.csv", space, archs, _accuracies(4))
    cfg = RankingConfig(num_archs=4, benchmark=BenchmarkConfig(path=str(path), metric="acc"),
                        rank_metric="acc_test", **FAST)
    m = rank_supernet(supernet, space, tiny_splits, cfg, CPU).metrics
    position = m["best_position"]
    assert position["column"] == "acc_test" and m["column"] == "acc"
    row = [space.to_string(a) for a in archs].index(m["best_arch"])
    assert position["accuracy"] == pytest.approx(_accuracies(4)[::-1][row])


def test_sample_is_fixed_and_independent_of_the_run_seed(tss_warmed, supernet, tiny_splits, tmp_path):
    space = tss_warmed[0]
    probe = RankingConfig(num_archs=5, benchmark=BenchmarkConfig(path="x", metric="acc"))
    archs = ranking_sample(space, probe)
    assert archs == ranking_sample(space, probe)
    assert archs != ranking_sample(space, RankingConfig(num_archs=5, sample_seed=1, benchmark=probe.benchmark))
    path = _write_table(tmp_path / "t.csv", space, archs, _accuracies(5))
    cfg = RankingConfig(num_archs=5, benchmark=BenchmarkConfig(path=str(path), metric="acc"), **FAST)
    a = rank_supernet(supernet, space, tiny_splits, cfg, CPU, seed=0)
    b = rank_supernet(supernet, space, tiny_splits, cfg, CPU, seed=7)
    expected = [space.to_string(x) for x in archs]
    assert a.table["arch"].tolist() == b.table["arch"].tolist() == expected


def test_whole_space_covers_every_architecture(tiny_splits, tmp_path):
    space = TinySpace()
    every = list(space.enumerate())
    path = _write_table(tmp_path / "t.csv", space, every, _accuracies(len(every)))
    cfg = RankingConfig(all_archs=True, benchmark=BenchmarkConfig(path=str(path), metric="acc"), **FAST)
    torch.manual_seed(0)
    net = space.build_supernet(tiny_splits.in_channels, tiny_splits.num_classes)
    report = rank_supernet(net, space, tiny_splits, cfg, CPU)
    assert sorted(report.table["arch"]) == sorted(space.to_string(a) for a in every)
    assert report.metrics["sample"] == "whole space" and report.metrics["n"] == 8
    assert report.metrics["params_kendall_tau"] == pytest.approx(
        kendall_tau(report.table["params_m"], report.table["reference_acc"]))
    json.dumps(report.to_dict(), allow_nan=False)


def test_evaluation_does_not_depend_on_the_order(tss_warmed, supernet, tiny_splits):
    space = tss_warmed[0]
    archs = space.sample_unique(np.random.default_rng(3), 5)
    pairs = pd.DataFrame({"arch": [space.to_string(a) for a in archs], "accuracy": _accuracies(5)})
    cfg = RankingConfig(**FAST)
    forward = rank_supernet(supernet, space, tiny_splits, cfg, CPU, reference=pairs).table.set_index("arch")
    backward = rank_supernet(supernet, space, tiny_splits, cfg, CPU, reference=pairs[::-1]).table
    backward = backward.set_index("arch")
    assert backward.index.tolist() == forward.index.tolist()[::-1]
    pd.testing.assert_frame_equal(forward, backward.loc[forward.index])


def test_ground_truth_pairs_are_the_sample(tss_warmed, supernet, tiny_splits):
    space = tss_warmed[0]
    archs = space.sample_unique(np.random.default_rng(1), 6)
    pairs = pd.DataFrame({"arch": [space.to_string(a) for a in archs], "accuracy": _accuracies(6)})
    report = rank_supernet(supernet, space, tiny_splits, RankingConfig(**FAST), CPU, reference=pairs)
    m = report.metrics
    assert m["sample"] == "ground-truth architectures" and m["column"] == "accuracy" and m["n"] == 6
    assert report.table["arch"].tolist() == pairs["arch"].tolist()
    assert m["best_position"]["of"] == 6


# -- errors --------------------------------------------------------------------------------
def test_more_archs_than_the_space_is_a_config_error(tiny_splits, tmp_path):
    space = TinySpace()
    path = _write_table(tmp_path / "t.csv", space, list(space.enumerate()), _accuracies(8))
    cfg = RankingConfig(num_archs=9, benchmark=BenchmarkConfig(path=str(path), metric="acc"))
    with pytest.raises(ConfigError, match=r"ranking\.num_archs: 9 .* only 8"):
        check_ranking(space, cfg)
    with pytest.raises(ConfigError, match="9"):
        rank_supernet(space.build_supernet(1, 10), space, tiny_splits, cfg, CPU)
    check_ranking(space, RankingConfig(num_archs=8, benchmark=cfg.benchmark))


def test_a_sampled_arch_missing_from_the_table_is_named(tss_warmed, supernet, tiny_splits, tmp_path):
    space = tss_warmed[0]
    archs = ranking_sample(space, RankingConfig(num_archs=6, benchmark=BenchmarkConfig(path="x", metric="acc")))
    kept = archs[:3] + archs[4:]
    path = _write_table(tmp_path / "t.csv", space, kept, _accuracies(5))
    cfg = RankingConfig(num_archs=6, benchmark=BenchmarkConfig(path=str(path), metric="acc"), **FAST)
    with pytest.raises(DataError, match=re.escape(space.to_string(archs[3]))):
        rank_supernet(supernet, space, tiny_splits, cfg, CPU)


def test_benchmark_position():
    space = TinySpace()
    every = list(space.enumerate())
    acc = _accuracies(len(every))
    table = BenchmarkTable(space, [space.to_string(a) for a in every[:-1]], {"acc": acc[:-1]})
    best = every[int(np.argmax(acc[:-1]))]
    assert benchmark_position(table, "acc", best) == {"accuracy": float(acc[:-1].max()), "rank": 1, "of": 7,
                                                      "column": "acc"}
    worst = space.to_string(every[int(np.argmin(acc[:-1]))])
    assert benchmark_position(table, "acc", worst)["rank"] == 7
    with pytest.raises(DataError, match=re.escape(space.to_string(every[-1]))):
        benchmark_position(table, "acc", every[-1])
    with pytest.raises(ConfigError, match="nope"):
        benchmark_position(table, "nope", best)


@pytest.mark.parametrize("settings,name", [
    ({"num_archs": 1}, "num_archs"),
    ({"sample_seed": -1}, "sample_seed"),
    ({"calib_batch_size": 0}, "calib_batch_size"),
    ({"valid_limit": 0}, "valid_limit"),
    ({"all_archs": "yes"}, "all_archs"),
    ({"rank_metric": "acc"}, "rank_metric"),
])
def test_bad_settings_name_the_field(settings, name):
    with pytest.raises(ConfigError, match=rf"ranking\.{name}"):
        RankingConfig(**settings)


def test_config_from_dict_and_no_reference(tss_warmed, supernet, tiny_splits):
    cfg = from_dict(RankingConfig, {"num_archs": 30, "benchmark": {"path": "t.csv", "metric": "acc"}})
    assert cfg.benchmark == BenchmarkConfig(path="t.csv", metric="acc") and cfg.position_metric == "acc"
    with pytest.raises(ConfigError, match="reference"):
        rank_supernet(supernet, tss_warmed[0], tiny_splits, RankingConfig(**FAST), CPU)


@pytest.mark.shared_data
def test_ranks_against_the_nb201_table(shared_data, tss_warmed, supernet, tiny_splits):
    path = shared_data / "nb201" / "nb201_cifar10.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    space = tss_warmed[0]
    cfg = RankingConfig(num_archs=30, benchmark=BenchmarkConfig(path=str(path), metric="cifar10_valid_200ep"),
                        rank_metric="cifar10_test_200ep", **FAST)
    report = rank_supernet(supernet, space, tiny_splits, cfg, CPU)
    assert list(report.table.columns) == list(TABLE_COLUMNS) and len(report.table) == 30
    m = report.to_dict()
    assert m["column"] == "cifar10_valid_200ep" and m["n"] == 30
    assert m["best_position"]["column"] == "cifar10_test_200ep" and m["best_position"]["of"] == 15625
    assert 1 <= m["best_position"]["rank"] <= 15625
    for key in ("kendall_tau", "spearman", "mse", "params_kendall_tau", "flops_kendall_tau"):
        assert key in m
    assert report.table["reference_acc"].between(0, 100).all()


def test_paths_in_flight_give_the_one_at_a_time_ranking(tss_warmed, supernet, tiny_splits, monkeypatch):
    from wpnas.spaces.nats_tss_supernet import TSSSuperNet
    from wpnas.train.engine import EngineConfig

    groups = []
    together = TSSSuperNet.forward_paths
    monkeypatch.setattr(TSSSuperNet, "forward_paths",
                        lambda self, x, archs, *a, **k: groups.append(len(archs)) or together(self, x, archs, *a, **k))
    space = tss_warmed[0]
    archs = space.sample_unique(np.random.default_rng(4), 7)
    pairs = pd.DataFrame({"arch": [space.to_string(a) for a in archs], "accuracy": _accuracies(7)})
    cfg = RankingConfig(**FAST)
    one = rank_supernet(supernet, space, tiny_splits, cfg, CPU, reference=pairs,
                        engine_cfg=EngineConfig(paths_in_flight=1))
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    grouped = rank_supernet(supernet, space, tiny_splits, cfg, CPU, reference=pairs,
                            engine_cfg=EngineConfig(paths_in_flight=3))
    assert set(groups) == {3, 1}  # 7 architectures as 3 + 3 + 1
    assert grouped.table["arch"].tolist() == one.table["arch"].tolist()
    # one image of the 100 valid images at most (a near-tie may flip between summation orders)
    np.testing.assert_allclose(grouped.table["supernet_acc"], one.table["supernet_acc"], atol=1.0 + 1e-9)
    assert all(torch.equal(v, before[k]) for k, v in supernet.state_dict().items())  # statistics restored
