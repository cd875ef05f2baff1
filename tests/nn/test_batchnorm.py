"""BN recalibration: path statistics re-estimated, equal to a recalibrated stand-alone network."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from wpnas.errors import DataError
from wpnas.nn.batchnorm import recalibrate_bn


def _batches(in_channels: int, n: int = 3, seed: int = 5) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [2.0 + 3.0 * torch.randn(4, in_channels, 8, 8, generator=gen) for _ in range(n)]


def test_recalibrated_path_equals_recalibrated_standalone(small, helpers):
    space, supernet, x = small
    for arch in helpers.archs_of(space, n=3)[1:]:
        net = supernet.inherit(arch).eval()
        supernet.eval()
        with torch.no_grad():
            before = supernet(x, arch)
        batches = _batches(supernet.in_channels)
        touched = recalibrate_bn(supernet, lambda b: supernet(b, arch), batches)
        assert touched == sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
        assert recalibrate_bn(net, None, [(b, torch.zeros(len(b))) for b in batches]) == touched
        assert not supernet.training and not net.training  # modes restored
        with torch.no_grad():
            after = supernet(x, arch)
            assert not torch.allclose(after, before, atol=1e-3)
            torch.testing.assert_close(net(x), after, atol=1e-5, rtol=1e-5)
        # the stand-alone network extracted now carries the recalibrated statistics
        fresh = supernet.inherit(arch).eval()
        with torch.no_grad():
            torch.testing.assert_close(fresh(x), after, atol=1e-5, rtol=1e-5)


def test_statistics_are_the_average_over_batches_and_momentum_is_restored():
    bn = nn.BatchNorm2d(3, momentum=0.3)
    model = nn.Sequential(bn)
    batches = _batches(3, n=4)
    model.train()
    assert recalibrate_bn(model, None, batches) == 1
    means = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    variances = torch.stack([b.transpose(0, 1).reshape(3, -1).var(dim=1) for b in batches]).mean(0)
    torch.testing.assert_close(bn.running_mean, means, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(bn.running_var, variances, atol=1e-5, rtol=1e-5)
    assert bn.momentum == 0.3 and model.training and int(bn.num_batches_tracked) == 4


def test_layers_off_the_path_are_untouched():
    from wpnas.spaces import get_space

    space = get_space("nats_tss", C=4, N=1)
    supernet = space.build_supernet(3, 5)
    arch = space.from_string("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_1x1~2|")
    off_path = supernet.cells[0].edges[0]["nor_conv_1x1"].bn
    with torch.no_grad():
        off_path.running_mean.fill_(7.0)
    recalibrate_bn(supernet, lambda b: supernet(b, arch), _batches(3, n=2))
    assert float(off_path.running_mean.min()) == 7.0
    assert int(off_path.num_batches_tracked) == 0
    on_path = supernet.cells[0].edges[0]["nor_conv_3x3"].bn
    assert int(on_path.num_batches_tracked) == 2


def test_no_batches_is_an_error():
    with pytest.raises(DataError, match="no batches"):
        recalibrate_bn(nn.Sequential(nn.BatchNorm2d(2)), None, [])


def test_train_mode_sets_and_restores_every_flag_directly_or_through_the_modules_own_code():
    from wpnas.nn.batchnorm import TrainMode

    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.BatchNorm2d(2), nn.ReLU())).eval()
    model[1][1].train()
    before = [m.training for m in model.modules()]
    mode = TrainMode(model)
    assert mode.direct
    for _ in range(2):
        with mode():
            assert all(m.training for m in model.modules())
        assert [m.training for m in model.modules()] == before

    class Logged(nn.Module):  # sets attributes through its own code: TrainMode must not bypass it
        seen: list = []

        def __setattr__(self, name, value):
            if name == "training":
                Logged.seen.append(value)
            super().__setattr__(name, value)

    odd = nn.Sequential(nn.BatchNorm2d(2), Logged()).eval()
    Logged.seen.clear()
    mode = TrainMode(odd)
    assert not mode.direct
    with mode():
        assert odd[1].training and odd[0].training
    assert Logged.seen == [True, False] and not odd[1].training and not odd[0].training
