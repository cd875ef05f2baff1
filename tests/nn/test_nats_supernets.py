"""Both NATS SuperNets: inherited stand-alone networks compute the same function as the path."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import assert_inherited_networks_match, random_offsets, standalone
from wpnas.errors import ArchitectureError, CheckpointError, ConfigError, DataError
from wpnas.io.checkpoints import load_checkpoint, save_checkpoint
from wpnas.spaces.nats_sss_supernet import SSSSuperNet
from wpnas.spaces.nats_tss_supernet import TSSSuperNet
from wpnas.spaces.supernet import OFFSET_KERNEL, SuperNet
from wpnas.spaces import get_space

ATOL = 1e-5
RTOL = 1e-5  # logits reach ~100 with the randomised BN statistics






def test_build_supernet_gives_the_space_class(small):
    space, supernet, _ = small
    assert isinstance(supernet, SuperNet)
    assert isinstance(supernet, TSSSuperNet if space.name == "nats_tss" else SSSSuperNet)


@pytest.mark.parametrize("with_offsets", [False, True])
def test_inherited_network_matches_the_path_in_eval_and_train_mode(small, helpers, with_offsets):
    space, supernet, x = small
    assert_inherited_networks_match(space, supernet, x, helpers.archs_of(space), with_offsets, ATOL, RTOL)


def test_offsets_change_the_function_and_receive_gradients(small, helpers):
    space, supernet, x = small
    # every decision governs a conv kernel: all nor_conv_3x3 (TSS), any widths (SSS)
    arch = (3,) * 6 if space.name == "nats_tss" else helpers.archs_of(space)[2]
    supernet.eval()
    ones = torch.ones(space.num_decisions, OFFSET_KERNEL, OFFSET_KERNEL)
    torch.testing.assert_close(supernet(x, arch, ones), supernet(x, arch), atol=1e-6, rtol=0)
    offsets = random_offsets(space, 3).requires_grad_(True)
    out = supernet(x, arch, offsets)
    assert not torch.allclose(out, supernet(x, arch), atol=1e-4)
    out.square().mean().backward()
    grad = offsets.grad
    assert grad is not None and bool(grad[:, :3, :3].abs().sum(dim=(1, 2)).gt(0).all())
    # kernels are at most 3x3 here: the rest of the 5x5 offsets is unused
    assert float(grad[:, 3:, :].abs().sum() + grad[:, :, 3:].abs().sum()) == 0.0


def test_only_the_chosen_ops_run(small, helpers):
    space, supernet, x = small
    arch = helpers.archs_of(space)[2]
    supernet.train()
    supernet.zero_grad(set_to_none=True)
    supernet(x, arch).sum().backward()
    names = {n for n, p in supernet.named_parameters() if p.grad is not None}
    template = space.build_network(arch, supernet.in_channels, supernet.num_classes)
    if space.name == "nats_tss":
        ops = space.cell_ops(arch)
        for n in names:  # every parameter that got a gradient belongs to a chosen op
            parts = n.split(".")
            if parts[0] == "cells" and parts[2] == "edges":
                assert parts[4] == ops[int(parts[3])], n
        expected = {n for n, _ in template.named_parameters()}
        assert len(names) == len(expected)
    else:  # channel sharing: gradients only on the leading slices of the shared tensors
        shapes = dict(template.named_parameters())
        for n, p in supernet.named_parameters():
            if p.grad is None:
                assert n not in shapes, n
                continue
            inside = p.grad[tuple(slice(0, s) for s in shapes[n].shape)]
            assert float(p.grad.abs().sum()) == pytest.approx(float(inside.abs().sum()))


def test_none_edges_and_empty_nodes():
    space = get_space("nats_tss", C=4, N=1)
    supernet = space.build_supernet(3, 4)
    x = torch.randn(3, 3, 8, 8)
    empty = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    supernet.eval()
    with torch.no_grad():
        out = supernet(x, empty)
    # every cell outputs zeros, so nothing of the input survives past the first cell
    torch.testing.assert_close(out, out[:1].expand_as(out))
    disconnected = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|nor_conv_1x1~1|nor_conv_3x3~2|"  # node 2 is empty
    net = standalone(space, supernet, disconnected)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), supernet(x, disconnected), atol=ATOL, rtol=RTOL)


def test_channels_last_and_autocast(small, helpers):
    space, supernet, x = small
    supernet.eval()
    for arch in helpers.archs_of(space, n=2):
        with torch.no_grad():
            plain = supernet(x, arch)
            cl = supernet(x.contiguous(memory_format=torch.channels_last), arch)
            torch.testing.assert_close(cl, plain, atol=ATOL, rtol=RTOL)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = supernet(x, arch, random_offsets(space, 0))
        assert low.shape == plain.shape and bool(torch.isfinite(low.float()).all())
    tss = get_space("nats_tss", C=4, N=1).build_supernet(3, 4).to(memory_format=torch.channels_last)
    x_cl = torch.randn(2, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # an all-'none' node under bf16
        assert tss(x_cl, "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|skip_connect~1|avg_pool_3x3~2|").shape == (2, 4)


def test_bad_input_is_rejected_with_the_value(small):
    space, supernet, x = small
    arch = tuple(0 for _ in space.num_choices)
    with pytest.raises(DataError, match="4 channels"):
        supernet(torch.randn(2, 4, 8, 8), arch)
    with pytest.raises(DataError, match=r"\(6, 6\)"):
        supernet(torch.randn(2, 3, 6, 6), arch)
    with pytest.raises(DataError, match="image batch"):
        supernet(torch.randn(3, 8, 8), arch)
    with pytest.raises(ArchitectureError):
        supernet(x, arch[:-1])
    with pytest.raises(ArchitectureError):
        supernet(x, (99,) * space.num_decisions)
    wrong = torch.ones(space.num_decisions, 3, 3)
    with pytest.raises(ConfigError, match=r"\(%d, 3, 3\)" % space.num_decisions):
        supernet(x, arch, wrong)
    with pytest.raises(ConfigError, match="offsets"):
        supernet.extract(arch, torch.ones(space.num_decisions + 1, OFFSET_KERNEL, OFFSET_KERNEL))
    with pytest.raises(ArchitectureError):
        supernet.extract((0,))
    net = space.build_network(arch, 3, 5)
    with pytest.raises(DataError, match="1 channels"):
        net(torch.randn(2, 1, 8, 8))


def test_inherit_returns_a_loaded_standalone_network(small, helpers):
    space, supernet, x = small
    arch = helpers.archs_of(space)[3]
    net = supernet.inherit(arch)
    supernet.eval(), net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), supernet(x, arch), atol=ATOL, rtol=RTOL)


def test_checkpoint_compatibility(tmp_path):
    tss = get_space("nats_tss", C=4, N=1).build_supernet(3, 10)
    path = tmp_path / "supernet.pt"
    save_checkpoint({"describe": tss.describe(), "state": tss.state_dict()}, path)
    loaded = load_checkpoint(path)
    same = get_space("nats_tss", C=4, N=1).build_supernet(3, 10)
    same.check_compatible(loaded["describe"])
    same.load_state_dict(loaded["state"])
    for other in (
        get_space("nats_tss", C=8, N=1).build_supernet(3, 10),
        get_space("nats_tss", C=4, N=2).build_supernet(3, 10),
        get_space("nats_tss", C=4, N=1).build_supernet(1, 10),
        get_space("nats_tss", C=4, N=1).build_supernet(3, 100),
        get_space("nats_sss").build_supernet(3, 10),
    ):
        with pytest.raises(CheckpointError, match="another space or configuration"):
            other.check_compatible(loaded["describe"])
