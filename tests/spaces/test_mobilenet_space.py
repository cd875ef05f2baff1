"""MobileNet space: strings, options, skeleton, exact cost, SuperNet paths vs inherited networks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from tests.conftest import assert_inherited_networks_match, random_offsets, randomize_bn, standalone
from wpnas.errors import ArchitectureError, CheckpointError, ConfigError, DataError
from wpnas.nn.batchnorm import recalibrate_bn
from wpnas.nn.flops import count_flops_params
from wpnas.search.hypernet import HyperNet
from wpnas.spaces import SpaceConfig, get_space
from wpnas.spaces.mobilenet import MobileNetSpace
from wpnas.spaces.mobilenet_network import NUM_BLOCKS, make_divisible, se_channels
from wpnas.spaces.mobilenet_supernet import MobileNetSuperNet
from wpnas.spaces.supernet import SuperNet

ATOL = RTOL = 1e-5
NUM_CLASSES = 5
MBV2 = ":".join(["k3_e1_relu"] + ["k3_e6_relu"] * 16)




@pytest.fixture(scope="module")
def space() -> MobileNetSpace:
    return get_space("mobilenet", width_mult=0.25)


@pytest.fixture(scope="module")
def supernet(space) -> MobileNetSuperNet:
    torch.manual_seed(0)
    net = space.build_supernet(3, NUM_CLASSES)
    randomize_bn(net, mean_spread=0.2)
    return net


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _archs(space, n: int = 3, seed: int = 0) -> list[tuple[int, ...]]:
    rng = np.random.default_rng(seed)
    return [(0,) * NUM_BLOCKS, (space.max_choices - 1,) * NUM_BLOCKS, *space.sample(rng, n)]






# -- decisions and strings -------------------------------------------------------------------
def test_seventeen_blocks_of_twenty_four_readable_choices(space):
    assert space.num_decisions == NUM_BLOCKS == 17
    assert space.num_choices == (24,) * 17 and space.size == 24**17
    names = space.decisions[0].choices
    assert len(set(names)) == 24
    assert names[0] == "k3_e1_relu" and names[1] == "k3_e1_relu_se" and names[-1] == "k5_e6_hswish_se"
    assert {"k3_e6_relu", "k5_e3_hswish_se"} <= set(names)
    assert space.offset_kernel == 5
    assert get_space("mobilenet", kernels=[3, 5, 7]).offset_kernel == 7
    assert get_space("mobilenet", kernels=[3]).offset_kernel == 3


def test_strings_round_trip(space):
    rng = np.random.default_rng(3)
    for arch in [*_archs(space), *space.sample(rng, 20)]:
        text = space.to_string(arch)
        assert len(text.split(":")) == 17
        assert space.from_string(text) == arch and space.parse(text) == arch
    assert space.to_string(space.from_string(MBV2)) == MBV2


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (":".join(["k3_e6_relu"] * 16), "has 16 blocks, expected 17"),
        (":".join(["k3_e6_relu"] * 18), "has 18 blocks"),
        ("k3_e6_relu," * 16 + "k3_e6_relu", "has 1 blocks"),
        (":".join(["k3_e6_relu"] * 3 + ["k7_e6_relu"] + ["k3_e6_relu"] * 13), r"block 3 is 'k7_e6_relu'.*outside the 24.*kernel 7 is not one of \[3, 5\]"),
        (":".join(["k3_e4_relu"] + ["k3_e6_relu"] * 16), r"block 0 .*expansion 4 is not one of \[1, 3, 6\]"),
        (":".join(["k3_e6_relu"] * 16 + ["k5_e6_gelu_se"]), r"block 16 .*activation 'gelu' is not one of"),
        (":".join(["k3_e6_relu"] * 5 + ["k9_e2_swish"] + ["k3_e6_relu"] * 11), r"block 5 .*kernel 9.*expansion 2.*activation 'swish'"),
        (":".join(["k3_e6_relu"] * 2 + ["conv3x3"] + ["k3_e6_relu"] * 14), r"block 2 is 'conv3x3', not a choice name"),
        (":".join(["k3_e6_relu"] * 2 + ["k03_e6_relu"] + ["k3_e6_relu"] * 14), r"block 2 .*canonical name is 'k3_e6_relu'"),
    ],
)
def test_bad_strings_name_the_block_and_the_bad_part(space, text, fragment):
    with pytest.raises(ArchitectureError, match=fragment):
        space.from_string(text)


def test_choice_outside_a_restricted_space():
    plain = get_space("mobilenet", se=[False], activations=["relu"], expansions=[3, 6])
    assert plain.num_choices == (4,) * 17
    with pytest.raises(ArchitectureError, match=r"block 0 .*outside the 4.*squeeze-excite on is not allowed"):
        plain.from_string(":".join(["k3_e6_relu_se"] + ["k3_e6_relu"] * 16))
    with pytest.raises(ArchitectureError, match="activation 'hswish'"):
        plain.from_string(":".join(["k3_e6_hswish"] * 17))
    with pytest.raises(ArchitectureError, match="expected 17 choice names"):
        plain.from_string(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("arch", [(0,) * 16, (0,) * 16 + (24,), [None] * 17])
def test_bad_archs_are_rejected_before_building(space, arch):
    for call in (space.build_network, space.cost, space.to_string):
        with pytest.raises(ArchitectureError):
            call(arch)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"kernels": [3, 4]}, "odd"),
        ({"kernels": [5, 3]}, "increasing"),
        ({"expansions": [0, 6]}, "expansions"),
        ({"activations": ["relu", "gelu"]}, "activations"),
        ({"se": [True, True]}, "se"),
        ({"width_mult": 0}, "width_mult"),
        ({"layout": "mnist"}, "layout"),
        ({"depth": 3}, r"unknown setting.*\['activations', 'expansions', 'kernels', 'layout', 'se', 'width_mult'\]"),
    ],
)
def test_bad_options(options, fragment):
    with pytest.raises(ConfigError, match=fragment):
        get_space("mobilenet", **options)


def test_space_config_builds_the_configured_space():
    built = SpaceConfig(name="mobilenet", options={"mobilenet": {"width_mult": 0.25}}).build()
    assert isinstance(built, MobileNetSpace) and built.options()["width_mult"] == 0.25
    assert get_space("mobilenet", {"width_mult": 0.25}).options() == built.options()
    assert built.options() == {
        "layout": "cifar", "width_mult": 0.25, "kernels": [3, 5], "expansions": [1, 3, 6],
        "activations": ["relu", "hswish"], "se": [False, True],
    }


# -- skeleton ---------------------------------------------------------------------------------
def test_skeleton_widths_and_strides():
    assert [make_divisible(v) for v in (8, 4, 12, 60, 80)] == [8, 8, 16, 64, 80]
    assert se_channels(96) == 24 and se_channels(16) == 8 and se_channels(960) == 240
    cifar = get_space("mobilenet").skeleton
    assert cifar.stem_stride == 1 and cifar.total_stride == 8
    assert [b.stride for b in cifar.blocks] == [1, 1, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1]
    assert [b.c_out for b in cifar.blocks] == [16, 24, 24] + [32] * 3 + [64] * 4 + [96] * 3 + [160] * 3 + [320]
    imagenet = get_space("mobilenet", layout="imagenet").skeleton
    assert imagenet.stem_stride == 2 and imagenet.total_stride == 32
    assert [b.stride for b in imagenet.blocks] == [1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 2, 1, 1, 1]
    small = get_space("mobilenet", width_mult=0.25).skeleton
    assert small.c_stem == 8 and small.c_last == 1280
    assert [b.c_out for b in small.blocks] == [8, 8, 8] + [8] * 3 + [16] * 4 + [24] * 3 + [40] * 3 + [80]
    assert get_space("mobilenet", width_mult=1.4).skeleton.c_last == 1792


def test_network_structure(space):
    arch = space.from_string(":".join(["k3_e1_relu", "k5_e6_hswish_se"] + ["k3_e3_relu"] * 15))
    net = space.build_network(arch, in_channels=1, num_classes=7)
    first, second, third = net.blocks[0], net.blocks[1], net.blocks[2]
    assert first.expand is None and first.se is None  # expansion 1: depthwise on the input
    assert first.depthwise.conv.weight.shape == (8, 1, 3, 3) and first.project.conv.weight.shape == (8, 8, 1, 1)
    assert first.residual and second.residual is True and not net.blocks[3].residual  # block 3 has stride 2
    assert second.expand.conv.weight.shape == (48, 8, 1, 1) and second.depthwise.conv.weight.shape == (48, 1, 5, 5)
    assert second.se.reduce.weight.shape == (16, 48, 1, 1) and second.se.expand.bias.shape == (48,)
    assert third.depthwise.conv.weight.shape == (24, 1, 3, 3)
    assert net.stem.conv.weight.shape == (8, 1, 3, 3) and net.classifier.weight.shape == (7, 1280)
    out = net(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 7)


# -- cost -------------------------------------------------------------------------------------
def test_mobilenet_v2_is_an_architecture_of_the_space():
    """MobileNetV2-1.0, 224x224, 1000 classes (ReLU instead of ReLU6: same cost)."""
    imagenet = get_space("mobilenet", layout="imagenet")
    arch = imagenet.from_string(MBV2)
    cost = imagenet.cost(arch, (3, 224, 224), 1000)
    assert cost.flops_m == pytest.approx(300.775272, abs=1e-9)
    assert cost.params_m == pytest.approx(3.504872, abs=1e-9)  # 3,504,872 as published
    assert 290 <= cost.flops_m <= 310 and 3.4 <= cost.params_m <= 3.6
    net = imagenet.build_network(arch, 3, 1000)
    assert count_flops_params(net, (3, 224, 224)) == cost


@pytest.mark.parametrize(
    ("options", "shape", "num_classes"),
    [({"width_mult": 0.25}, (3, 32, 32), 10), ({"width_mult": 0.35, "layout": "imagenet"}, (1, 64, 96), 3)],
)
def test_analytic_cost_equals_the_hook_counter(options, shape, num_classes):
    space = get_space("mobilenet", **options)
    rng = np.random.default_rng(7)
    for arch in [*_archs(space, 0), *space.sample(rng, 4)]:
        net = space.build_network(arch, shape[0], num_classes)
        assert space.cost(arch, shape, num_classes) == count_flops_params(net, shape), space.to_string(arch)


def test_torch_flop_counter_counts_two_per_mac_without_biases(space):
    """FlopCounterMode: 2 FLOPs per multiply-accumulate, biases (squeeze-excite convs, the
    classifier) not counted: ours = its total / 2 + the bias additions."""
    rng = np.random.default_rng(11)
    for arch in [(space.max_choices - 1,) * 17, *space.sample(rng, 2)]:
        net = space.build_network(arch, 3, NUM_CLASSES).eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            net(torch.randn(1, 3, 32, 32))
        biases = sum(m.bias.numel() for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None)
        macs = space.cost(arch, (3, 32, 32), NUM_CLASSES).flops_m * 1e6
        assert counter.get_total_flops() / 2 + biases == pytest.approx(macs, abs=0.5)


def test_input_sizes_must_fit_the_layout(space, supernet):
    arch = (0,) * 17
    with pytest.raises(ConfigError, match="multiples of 8"):
        space.cost(arch, (3, 36, 36))
    with pytest.raises(ConfigError, match="multiples of 32"):
        get_space("mobilenet", layout="imagenet").cost(arch, (3, 200, 200), 1000)
    with pytest.raises(ConfigError, match="num_classes"):
        space.cost(arch, (3, 32, 32), 0)
    with pytest.raises(DataError, match=r"\(36, 36\)"):
        space.build_network(arch)(torch.randn(1, 3, 36, 36))
    with pytest.raises(DataError, match="4 channels"):
        supernet(torch.randn(1, 4, 32, 32), arch)
    with pytest.raises(ConfigError, match="in_channels"):
        space.build_network(arch, in_channels=0)
    with pytest.raises(ConfigError, match="num_classes"):
        space.build_supernet(3, num_classes=2.5)  # type: ignore[arg-type]


# -- SuperNet ---------------------------------------------------------------------------------
def test_supernet_contract(space, supernet):
    assert isinstance(supernet, SuperNet) and MobileNetSuperNet.dynamic_shapes is True
    assert supernet.blocks[0].depthwise.conv.weight.shape == (48, 1, 5, 5)  # 8 channels x 6, largest kernel
    supernet.check_compatible(space.build_supernet(3, NUM_CLASSES).describe())
    sss = get_space("nats_sss", channels=[2, 4]).build_supernet(3, NUM_CLASSES)
    with pytest.raises(CheckpointError, match="space: checkpoint has 'nats_sss', expected 'mobilenet'"):
        supernet.check_compatible(sss.describe())
    with pytest.raises(CheckpointError, match="width_mult"):
        supernet.check_compatible(get_space("mobilenet", width_mult=0.5).build_supernet(3, NUM_CLASSES).describe())


@pytest.mark.parametrize("with_offsets", [False, True])
def test_inherited_network_matches_the_path_in_eval_and_train_mode(space, supernet, x, with_offsets):
    assert_inherited_networks_match(space, supernet, x, _archs(space), with_offsets, ATOL, RTOL)


def test_every_choice_of_every_block_runs(space, supernet, x):
    supernet.eval()
    with torch.no_grad():
        for choice in range(space.max_choices):
            arch = (choice,) * 17
            net = supernet.inherit(arch).eval()
            torch.testing.assert_close(net(x), supernet(x, arch), atol=ATOL, rtol=RTOL)


def test_only_the_path_receives_gradients(space, supernet, x):
    arch = space.from_string(":".join(["k3_e1_relu"] * 8 + ["k5_e3_hswish_se"] * 9))
    state = {k: v.clone() for k, v in supernet.state_dict().items()}
    supernet.train()
    supernet.zero_grad(set_to_none=True)
    supernet(x, arch).sum().backward()
    shapes = dict(space.build_network(arch, 3, NUM_CLASSES).named_parameters())
    grads = dict(supernet.named_parameters())
    assert grads["blocks.0.expand.conv.weight"].grad is None and grads["blocks.0.se.reduce.weight"].grad is None
    for name, p in grads.items():
        if p.grad is None:
            assert name not in shapes, name
            continue
        if name.endswith("depthwise.conv.weight"):  # the centre 3x3 of a k3 path
            k = shapes[name].shape[-1]
            s = (p.shape[-1] - k) // 2
            inside = p.grad[: shapes[name].shape[0], :, s : s + k, s : s + k]
        else:
            inside = p.grad[tuple(slice(0, n) for n in shapes[name].shape)]
        assert float(p.grad.abs().sum()) == pytest.approx(float(inside.abs().sum())), name
    supernet.zero_grad(set_to_none=True)
    supernet.load_state_dict(state)
    supernet.eval()


def test_offsets_scale_the_depthwise_kernels_by_their_centre_crop(space, supernet, x):
    arch = space.from_string(":".join(["k3_e3_relu", "k5_e6_hswish_se"] * 8 + ["k3_e1_relu_se"]))
    supernet.eval()
    ones = torch.ones(17, 5, 5)
    torch.testing.assert_close(supernet(x, arch, ones), supernet(x, arch), atol=1e-6, rtol=0)
    offsets = random_offsets(space, 5).requires_grad_(True)
    out = supernet(x, arch, offsets)
    assert not torch.allclose(out, supernet(x, arch), atol=1e-4)
    out.square().mean().backward()
    grad = offsets.grad.abs()
    for l in range(17):
        if l % 2 == 0:  # 3x3 kernels: only the centre 3x3 of the offset is used
            assert float(grad[l, 1:4, 1:4].min()) > 0
            assert float(grad[l].sum()) == pytest.approx(float(grad[l, 1:4, 1:4].sum()))
        else:
            assert float(grad[l].min()) > 0
    state = supernet.extract(arch, offsets.detach())
    shared = supernet.blocks[0].depthwise.conv.weight.detach()
    expected = shared[:24, :, 1:4, 1:4] * offsets.detach()[0, 1:4, 1:4]
    torch.testing.assert_close(state["blocks.0.depthwise.conv.weight"], expected)
    with pytest.raises(ConfigError, match=r"\(17, 5, 5\)"):
        supernet(x, arch, torch.ones(17, 3, 3))


def test_bn_recalibration_on_a_path_equals_the_stand_alone_network(space, x):
    torch.manual_seed(2)
    supernet = space.build_supernet(3, NUM_CLASSES)
    randomize_bn(supernet, seed=3, mean_spread=0.2)
    arch = space.from_string(":".join(["k5_e1_hswish_se", "k3_e3_relu", "k5_e6_relu_se"] * 5 + ["k3_e6_hswish"] * 2))
    batches = [torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    alone = supernet.inherit(arch)  # inherited before recalibration, recalibrated on its own
    touched = recalibrate_bn(supernet, lambda b: supernet(b, arch), batches)
    assert touched == recalibrate_bn(alone, None, batches) == 2 + sum(
        2 if block.expand is not None else 1 for block in alone.blocks
    ) + 17  # stem, last, expansion (when e > 1), depthwise and projection BNs
    inherited = supernet.inherit(arch)
    for (name, a), b in zip(alone.state_dict().items(), inherited.state_dict().values()):
        if "running" in name:
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5, msg=name)
    supernet.eval(), inherited.eval(), alone.eval()
    with torch.no_grad():
        expected = supernet(x, arch)
        torch.testing.assert_close(inherited(x), expected, atol=ATOL, rtol=RTOL)
        torch.testing.assert_close(alone(x), expected, atol=ATOL, rtol=RTOL)


def test_hypernet_offsets_fit_the_supernet(space, supernet, x):
    hyper = HyperNet(space, embed_dim=8, hidden=8, mode="fixed")
    arch = _archs(space)[2]
    offsets = hyper(arch)
    assert offsets.shape == (17, 5, 5)
    supernet.eval()
    with torch.no_grad():
        net = standalone(space, supernet, arch, offsets.detach()).eval()
        torch.testing.assert_close(net(x), supernet(x, arch, offsets.detach()), atol=ATOL, rtol=RTOL)


# -- evaluation network -----------------------------------------------------------------------
def test_evaluation_options(space):
    assert space.check_evaluation_options({}) == {} and space.check_evaluation_options(None) == {}
    normalised = space.check_evaluation_options({"dropout": 0.2})
    assert normalised == {"width_mult": 0.25, "layout": "cifar", "dropout": 0.2}
    assert space.check_evaluation_options(normalised) == normalised  # idempotent
    with pytest.raises(ConfigError, match=r"unknown setting.*\['C'\].*\['dropout', 'layout', 'width_mult'\]"):
        space.check_evaluation_options({"C": 36})
    with pytest.raises(ConfigError, match="dropout"):
        space.check_evaluation_options({"dropout": 1.0})
    with pytest.raises(ConfigError, match="layout"):
        space.check_evaluation_options({"layout": "mnist"})
    with pytest.raises(ConfigError, match="width_mult"):
        space.check_evaluation_options({"width_mult": -1})
    arch = _archs(space)[2]
    plain = space.build_evaluation_network(arch, 3, NUM_CLASSES, {})
    assert plain.dropout.p == 0.0 and plain.stem.conv.weight.shape[0] == 8
    assert space.evaluation_cost(arch, (3, 32, 32), NUM_CLASSES, {}) == space.cost(arch, (3, 32, 32), NUM_CLASSES)
    options = {"width_mult": 0.5, "dropout": 0.2}
    net = space.build_evaluation_network(arch, 3, NUM_CLASSES, options)
    assert net.dropout.p == 0.2 and net.stem.conv.weight.shape[0] == 16
    assert space.evaluation_cost(arch, (3, 32, 32), NUM_CLASSES, options) == count_flops_params(net, (3, 32, 32))
    transfer = space.build_evaluation_network(arch, 3, 1000, {"layout": "imagenet", "width_mult": 1.0, "dropout": 0.2})
    assert transfer.skeleton.total_stride == 32 and transfer.stem.conv.weight.shape[0] == 32
