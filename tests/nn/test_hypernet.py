"""The bi-LSTM HyperNet of weakly weight sharing."""

from __future__ import annotations

import pytest
import torch

from wpnas.errors import ArchitectureError, ConfigError
from wpnas.config import from_dict
from wpnas.search.hypernet import HyperNet, HyperNetConfig
from wpnas.spaces.supernet import OFFSET_KERNEL
from wpnas.spaces import get_space


def _two_archs_sharing_a_choice(space):
    """Two architectures equal on decision 0 (a conv / width choice) and different elsewhere."""
    if space.name == "nats_tss":
        return (3, 3, 2, 3, 3, 3), (3, 2, 3, 1, 2, 4), 0
    return (1, 0, 2, 1, 0), (1, 2, 0, 2, 2), 0


def test_identity_at_start_equals_plain_weight_sharing(small, helpers):
    space, supernet, x = small
    hyper = HyperNet(space, embed_dim=8, hidden=8, mode="trained")
    supernet.eval()
    for arch in helpers.archs_of(space, n=2):
        offsets = hyper(arch)
        assert offsets.shape == (space.num_decisions, OFFSET_KERNEL, OFFSET_KERNEL)
        assert bool((offsets == 1).all())
        with torch.no_grad():
            torch.testing.assert_close(supernet(x, arch, offsets), supernet(x, arch), atol=1e-6, rtol=0)


def test_training_moves_offsets_apart_for_archs_sharing_an_op(small):
    space, supernet, x = small
    torch.manual_seed(0)
    hyper = HyperNet(space, embed_dim=8, hidden=8, mode="trained")
    a, b, shared = _two_archs_sharing_a_choice(space)
    assert a[shared] == b[shared]
    optimizer = torch.optim.SGD(hyper.parameters(), lr=0.5)
    supernet.train()
    loss = sum(torch.nn.functional.cross_entropy(supernet(x, arch, hyper(arch)), torch.arange(6) % 5) for arch in (a, b))
    loss.backward()
    assert hyper.proj.weight.grad is not None and float(hyper.proj.weight.grad.abs().sum()) > 0
    optimizer.step()
    # one step moves the (zero) projection; it reads bi-LSTM states that see the whole arch
    oa, ob = hyper(a), hyper(b)
    assert not torch.allclose(oa[shared], ob[shared], atol=1e-6)
    assert not torch.allclose(oa, torch.ones_like(oa))
    supernet.eval()
    with torch.no_grad():
        assert not torch.allclose(supernet(x, a, oa.detach()), supernet(x, a), atol=1e-5)
        # the effective weights of the shared decision differ between the two archs
        wa = supernet.extract(a, oa.detach())
        wb = supernet.extract(b, ob.detach())
        key = "cells.0.edges.0.conv.weight" if space.name == "nats_tss" else "stem.conv.weight"
        assert wa[key].shape == wb[key].shape and not torch.allclose(wa[key], wb[key])


def test_fixed_mode_is_random_frozen_and_architecture_dependent(small):
    space, _, _ = small
    torch.manual_seed(3)
    hyper = HyperNet(space, embed_dim=8, hidden=8, mode="fixed", fixed_scale=0.05)
    assert all(not p.requires_grad for p in hyper.parameters())
    gen = torch.Generator().manual_seed(0)
    archs = torch.stack([torch.randint(0, k, (64,), generator=gen) for k in space.num_choices], dim=1)
    offsets = hyper(archs)
    assert offsets.shape == (64, space.num_decisions, OFFSET_KERNEL, OFFSET_KERNEL)
    assert float((offsets - 1).std()) == pytest.approx(0.05, rel=0.3)
    a, b, shared = _two_archs_sharing_a_choice(space)
    assert not torch.allclose(hyper(a)[shared], hyper(b)[shared])


def test_off_mode_returns_none_and_has_no_weights(small):
    space, _, _ = small
    hyper = HyperNet.from_config(space, HyperNetConfig(mode="off"))
    assert hyper(tuple(0 for _ in space.num_choices)) is None
    assert list(hyper.parameters()) == []


def test_batches_and_single_archs_agree(small, helpers):
    space, _, _ = small
    torch.manual_seed(1)
    hyper = HyperNet(space, embed_dim=4, hidden=6, mode="fixed")
    archs = helpers.archs_of(space, n=3)
    batch = hyper(torch.tensor(archs))
    listed = hyper(archs)
    for i, arch in enumerate(archs):
        torch.testing.assert_close(batch[i], hyper(arch))
        torch.testing.assert_close(listed[i], hyper(torch.tensor(arch)))


def test_same_choice_index_in_different_decisions_has_different_embeddings():
    space = get_space("nats_sss", channels=[4, 8])
    hyper = HyperNet(space, embed_dim=4, hidden=4, mode="trained")
    tokens, _ = hyper.tokens((0, 0, 0, 0, 0))
    assert (tokens + hyper.start).tolist() == [[0, 2, 4, 6, 8]]
    assert hyper.embed.num_embeddings == 10


def test_bad_input_and_config():
    space = get_space("nats_tss", C=4, N=1)
    hyper = HyperNet(space, embed_dim=4, hidden=4)
    with pytest.raises(ArchitectureError, match="out of range"):
        hyper(torch.tensor([[0, 0, 0, 0, 0, 5]]))
    with pytest.raises(ArchitectureError, match="6 decisions"):
        hyper(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ArchitectureError, match="integer"):
        hyper(torch.zeros(6))
    with pytest.raises(ArchitectureError):
        hyper((0, 0, 0))
    with pytest.raises(ConfigError, match="mode"):
        HyperNet(space, mode="sometimes")
    with pytest.raises(ConfigError, match="unknown setting"):
        HyperNet.from_config(space, from_dict(HyperNetConfig, {"mode": "trained", "layers": 2}))
    with pytest.raises(ConfigError, match="fixed_scale"):
        HyperNetConfig(fixed_scale=0.0)
    assert hyper.describe()["hypernet"]["mode"] == "trained"
