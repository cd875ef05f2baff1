"""Several SuperNet paths in one pass (wpnas.nn.paths): equal to the paths run one at a time."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

from wpnas.errors import ConfigError
from wpnas.nn.batchnorm import recalibrate_bn
from wpnas.nn.paths import PathGroups, in_flight
from wpnas.search.reward import batch_statistics
from wpnas.spaces import get_space
from wpnas.train.engine import Engine, EngineConfig
from wpnas.train.evaluation import evaluate_architecture, evaluate_many, evaluate_paths

CPU = torch.device("cpu")
#: One image of 120 in accuracy points: a near-tie may flip between two summation orders.
ONE_IMAGE = 100.0 / 120 + 1e-9


def _randomised(space, seed: int = 0) -> nn.Module:
    """A SuperNet whose BN layers have non-trivial affine parameters and running statistics."""
    torch.manual_seed(seed)
    net = space.build_supernet(3, 10)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return net


def _archs(space, n: int, seed: int = 0) -> list[tuple[int, ...]]:
    """``n`` random architectures plus ones with 'none' everywhere into a node, all 'none', and a repeat."""
    archs = space.sample_unique(np.random.default_rng(seed), n)
    archs.append(space.from_string("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"))
    archs.append(space.from_string("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"))
    archs.append(archs[0])
    return archs


def _images(n: int, seed: int) -> torch.Tensor:
    return 1.0 + 2.0 * torch.randn(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def _batches(count: int, size: int, seed: int, labels: bool = True) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed + 1)
    return [(_images(size, seed + i), torch.randint(0, 10, (size,), generator=gen)) for i in range(count)]


@pytest.fixture(scope="module")
def tss():
    return get_space("nats_tss", C=8, N=1)


@pytest.mark.parametrize("with_offsets", [False, True])
def test_paths_with_batch_statistics_equal_one_at_a_time(tss, with_offsets):
    net = _randomised(tss)
    archs = _archs(tss, 6)
    x = _images(12, 1)
    offsets = 1.0 + 0.2 * torch.randn(len(archs), tss.num_decisions, 5, 5) if with_offsets else None
    with batch_statistics(net):
        together = net.forward_paths(x.repeat(len(archs), 1, 1, 1), archs, offsets).unflatten(0, (len(archs), -1))
        alone = torch.stack([net(x, a, None if offsets is None else offsets[k]) for k, a in enumerate(archs)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    # the running statistics were neither read nor written
    fresh = _randomised(tss)
    for (name, value), (_, before) in zip(net.named_buffers(), fresh.named_buffers()):
        assert torch.equal(value, before), name


def test_each_path_reads_its_own_block(tss):
    """Per-path inputs (one block each, e.g. per-architecture calibration batches)."""
    net = _randomised(tss, seed=1)
    archs = _archs(tss, 3, seed=2)
    blocks = [_images(8, 10 + k) for k in range(len(archs))]
    with batch_statistics(net):
        together = net.forward_paths(torch.cat(blocks), archs).unflatten(0, (len(archs), -1))
        alone = torch.stack([net(b, a) for b, a in zip(blocks, archs)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("calibrate", ["shared", "per_arch", "none"])
@pytest.mark.parametrize("with_offsets", [False, True])
def test_recalibrated_evaluation_equals_one_at_a_time(tss, calibrate, with_offsets):
    archs = _archs(tss, 5, seed=3)
    engine = Engine(CPU, EngineConfig())
    valid = _batches(2, 60, seed=20)
    shared = [(x, None) for x, _ in _batches(3, 24, seed=30)]
    per_arch = [[(x, None) for x, _ in _batches(3, 24, seed=40 + 5 * k)] for k in range(len(archs))]
    offsets = [1.0 + 0.2 * torch.randn(tss.num_decisions, 5, 5) for _ in archs] if with_offsets else None

    def calib_of(k):
        return {"shared": shared, "per_arch": per_arch[k], "none": []}[calibrate]

    eager_net = _randomised(tss, seed=4)
    alone = [evaluate_architecture(eager_net, a, valid, engine, calib_of(k), None if offsets is None else offsets[k])
             for k, a in enumerate(archs)]
    net = _randomised(tss, seed=4)
    kwargs = {"calib": shared} if calibrate == "shared" else (
        {"calib_per_arch": per_arch} if calibrate == "per_arch" else {})
    together = evaluate_paths(net, archs, valid, engine, offsets=offsets, **kwargs)
    for mine, theirs in zip(together, alone):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5, abs=1e-6)
        assert abs(mine["acc"] - theirs["acc"]) <= ONE_IMAGE
    assert not net.training  # left in eval mode, as one at a time leaves it
    fresh = _randomised(tss, seed=4)  # the SuperNet's own statistics are left alone
    assert all(torch.equal(a, b) for a, b in zip(net.buffers(), fresh.buffers()))


def test_evaluate_many_groups_and_falls_back_with_one_log_line(tss, caplog):
    archs = _archs(tss, 5, seed=5)
    valid = _batches(1, 60, seed=50)
    calib = [(x, None) for x, _ in _batches(2, 24, seed=60)]
    net = _randomised(tss, seed=6)
    one = evaluate_many(net, archs, valid, Engine(CPU, EngineConfig(paths_in_flight=1)), calib)
    three = evaluate_many(_randomised(tss, seed=6), archs, valid, Engine(CPU, EngineConfig(paths_in_flight=3)), calib)
    assert len(three) == len(archs)
    for a, b in zip(one, three):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6)
    # a space without a forward of several paths: one at a time, said once
    sss = get_space("nats_sss", channels=[4, 8])
    sss_archs = sss.sample_unique(np.random.default_rng(0), 3)
    sss_net = sss.build_supernet(3, 10)
    twin = copy.deepcopy(sss_net)
    engine = Engine(CPU, EngineConfig(paths_in_flight=4))
    with caplog.at_level(logging.INFO, logger="wpnas.train.evaluation"):
        many = evaluate_many(sss_net, sss_archs, valid, engine, calib)
        evaluate_many(copy.deepcopy(twin), sss_archs, valid, engine, calib)
    said = [r for r in caplog.records if "paths_in_flight" in r.getMessage()]
    assert len(said) <= 1  # once per process (an earlier test may have said it already)
    single = evaluate_many(twin, sss_archs, valid, Engine(CPU, EngineConfig(paths_in_flight=1)), calib)
    assert [r["loss"] for r in many] == pytest.approx([r["loss"] for r in single], rel=1e-6)


class _Syncs(TorchDispatchMode):
    """Counts reads of a device value back to the host (``.item()``, ``float(t)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_recalibration_reads_nothing_back_and_averages_like_momentum_none(tss):
    net = _randomised(tss, seed=7)
    arch = _archs(tss, 1, seed=7)[0]
    batches = [x for x, _ in _batches(3, 16, seed=70)]
    reference = _randomised(tss, seed=7)
    touched = []
    for m in reference.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.register_forward_pre_hook(lambda mod, _: touched.append(mod) or None)
    with torch.no_grad():  # PyTorch's own momentum=None cumulative average, layers reset first
        reference.train()
        reference(batches[0], arch)
        for m in set(touched):
            m.reset_running_stats()
            m.momentum = None
        for x in batches:
            reference(x, arch)
    with _Syncs() as syncs:
        recalibrate_bn(net, lambda x: net(x, arch), batches)
    assert syncs.count == 0
    for (name, mine), (_, theirs) in zip(net.named_buffers(), reference.named_buffers()):
        torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-7, msg=name)


def test_paths_in_flight_read_nothing_back_per_batch(tss):
    net = _randomised(tss, seed=8)
    archs = _archs(tss, 3, seed=8)
    engine = Engine(CPU, EngineConfig())
    counts = []
    for batches in (1, 4):
        with _Syncs() as syncs:
            evaluate_paths(net, archs, _batches(batches, 20, seed=80), engine, [(_images(16, 81), None)] * batches)
        counts.append(syncs.count)
    assert counts[0] == counts[1]  # only the final read of the results, whatever the number of batches


def test_bad_settings_and_calls_are_named(tss):
    with pytest.raises(ConfigError, match=r"engine.paths_in_flight: 0; expected an integer >= 1"):
        EngineConfig(paths_in_flight=0)
    with pytest.raises(ConfigError, match=r"engine.paths_in_flight: 'many'"):
        EngineConfig(paths_in_flight="many")
    assert Engine(CPU, EngineConfig()).paths_in_flight == 1  # auto: one at a time on the CPU
    net = _randomised(tss)
    archs = _archs(tss, 2)
    with pytest.raises(ConfigError, match=r"a batch of 12 is not 5 equal path blocks"):
        net.forward_paths(_images(12, 0), archs)
    with pytest.raises(ConfigError, match=r"per-path offsets must have shape \(5, 6, 5, 5\)"):
        net.forward_paths(_images(10, 0), archs, torch.ones(6, 5, 5))
    with pytest.raises(ConfigError, match="a session of 2 paths got 5 architectures"):
        net.forward_paths(_images(10, 0), archs, groups=PathGroups(2))
    net.train()  # training BN statistics is not what paths in flight are for
    with torch.no_grad(), pytest.raises(RuntimeError, match="do not train BN statistics"):
        net.forward_paths(_images(10, 0), archs)
    with pytest.raises(RuntimeError, match="need several paths in flight"):
        net.cells[0].edges[0]["nor_conv_3x3"].conv(_images(2, 0)[:, :1].repeat(1, 8, 1, 1), None,
                                                   torch.ones(2, 5, 5))
    with in_flight(PathGroups(1)):
        pass


@pytest.mark.parametrize("with_offsets", [False, True])
def test_darts_paths_equal_one_at_a_time(with_offsets):
    """DARTS: a node's (input, op) pairs are shared across paths whichever slot chose them."""
    space = get_space("darts", C=4, layers=3)
    archs = space.sample_unique(np.random.default_rng(9), 5)
    archs.append(archs[1])
    offsets = (1.0 + 0.2 * torch.randn(len(archs), space.num_decisions, space.offset_kernel, space.offset_kernel,
                                       generator=torch.Generator().manual_seed(3))) if with_offsets else None
    x = _images(8, 11)
    net = _randomised(space, seed=9)
    with batch_statistics(net):
        together = net.forward_paths(x.repeat(len(archs), 1, 1, 1), archs, offsets).unflatten(0, (len(archs), -1))
        alone = torch.stack([net(x, a, None if offsets is None else offsets[k]) for k, a in enumerate(archs)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)
    engine = Engine(CPU, EngineConfig())
    valid = _batches(1, 60, seed=90)
    calib = [(x, None) for x, _ in _batches(2, 16, seed=91)]
    per_arch = None if offsets is None else list(offsets)
    grouped = evaluate_paths(net, archs, valid, engine, calib, per_arch)
    single = [evaluate_architecture(_randomised(space, seed=9), a, valid, engine, calib,
                                    None if offsets is None else offsets[k]) for k, a in enumerate(archs)]
    for mine, theirs in zip(grouped, single):
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5, abs=1e-6)
        assert abs(mine["acc"] - theirs["acc"]) <= 100.0 / 60 + 1e-9  # one image at most
