"""p(A | alpha) (equation 1) over decisions with unequal choice counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wpnas.errors import ArchitectureError, CheckpointError
from wpnas.search.distribution import ArchDistribution, chosen_probabilities
from wpnas.spaces import get_space

from .conftest import TINY, ToySpace


def _spaces():
    return [ToySpace(), get_space("nats_tss", **TINY["nats_tss"]), get_space("nats_sss", channels=[4, 8, 16])]


@pytest.mark.parametrize("space", _spaces(), ids=lambda s: s.name)
def test_uniform_start_and_normalised(space):
    dist = ArchDistribution(space)
    probs = dist.probs()
    assert [len(p) for p in probs] == list(space.num_choices)
    for p, k in zip(probs, space.num_choices):
        np.testing.assert_allclose(p, np.full(k, 1.0 / k))
    assert dist.entropy().item() == pytest.approx(sum(math.log(k) for k in space.num_choices), rel=1e-6)
    # padded columns carry exactly zero probability
    matrix = dist.prob_matrix()
    assert bool((matrix[~dist.mask] == 0).all())
    torch.testing.assert_close(matrix.sum(1), torch.ones(space.num_decisions))


def test_log_prob_is_the_product_over_decisions_and_differentiable():
    space = ToySpace()
    dist = ArchDistribution(space)
    with torch.no_grad():
        dist.alpha.copy_(torch.randn(dist.alpha.shape, generator=torch.Generator().manual_seed(0)))
    archs = [(1, 4, 2, 0, 3), (0, 0, 0, 0, 0), (1, 2, 1, 0, 1)]
    log_p = dist.log_prob(archs)
    probs = dist.probs()
    for arch, value in zip(archs, log_p.tolist()):
        expected = sum(math.log(probs[l][a]) for l, a in enumerate(arch))
        assert value == pytest.approx(expected, rel=1e-5)
        assert dist.probability(arch) == pytest.approx(math.exp(expected), rel=1e-5)
    log_p.sum().backward()
    grad = dist.alpha.grad
    assert torch.isfinite(grad).all()
    assert bool((grad[~dist.mask] == 0).all())  # padding gets no gradient
    # tensor input gives the same values
    torch.testing.assert_close(dist.log_prob(torch.tensor(archs)), log_p.detach())


def test_entropy_gradient_is_finite_with_padding():
    dist = ArchDistribution(ToySpace())
    dist.entropy().backward()
    assert torch.isfinite(dist.alpha.grad).all()


def test_sampling_follows_probabilities_and_never_picks_padding():
    space = ToySpace()
    dist = ArchDistribution(space)
    with torch.no_grad():
        dist.alpha.copy_(torch.randn(dist.alpha.shape, generator=torch.Generator().manual_seed(1)) * 1.5)
    n = 20000
    archs = np.asarray(dist.sample(n, torch.Generator().manual_seed(2)))
    assert archs.shape == (n, space.num_decisions)
    for l, p in enumerate(dist.probs()):
        assert archs[:, l].max() < space.num_choices[l]
        freq = np.bincount(archs[:, l], minlength=len(p)) / n
        np.testing.assert_allclose(freq, p, atol=0.015)
    single = dist.sample(None, torch.Generator().manual_seed(3))
    assert isinstance(single, tuple) and space.validate(single) == single


def test_same_generator_seed_same_samples():
    dist = ArchDistribution(ToySpace())
    a = dist.sample(50, torch.Generator().manual_seed(7))
    b = dist.sample(50, torch.Generator().manual_seed(7))
    assert a == b


def test_uniform_sampler_ignores_alpha():
    space = ToySpace()
    dist = ArchDistribution(space)
    with torch.no_grad():
        dist.alpha[:, 0] = 20.0  # alpha all but certain of choice 0
    n = 12000
    archs = np.asarray(dist.sample_uniform(n, torch.Generator().manual_seed(4)))
    for l, k in enumerate(space.num_choices):
        freq = np.bincount(archs[:, l], minlength=k) / n
        np.testing.assert_allclose(freq, np.full(k, 1.0 / k), atol=0.02)
    assert set(map(tuple, np.asarray(dist.sample(200, torch.Generator().manual_seed(5))))) == {(0,) * 5}


def test_argmax_and_chosen_probabilities():
    space = ToySpace()
    dist = ArchDistribution(space)
    target = (1, 3, 2, 0, 1)
    with torch.no_grad():
        for l, a in enumerate(target):
            dist.alpha[l, a] = 2.0
    assert dist.argmax() == target
    chosen = chosen_probabilities(dist, target)
    assert chosen == pytest.approx([float(dist.probs()[l][a]) for l, a in enumerate(target)])
    assert chosen[3] == 1.0  # a single-choice decision is certain


def test_checkpoint_round_trip_and_wrong_space():
    space = ToySpace()
    dist = ArchDistribution(space)
    with torch.no_grad():
        dist.alpha.add_(torch.arange(dist.alpha.numel()).view_as(dist.alpha) * 0.1)
    stored = dist.to_checkpoint()
    again = ArchDistribution.from_checkpoint(space, stored)
    torch.testing.assert_close(again.alpha, dist.alpha)
    with pytest.raises(CheckpointError, match="another search space"):
        ArchDistribution.from_checkpoint(ToySpace((2, 5, 3)), stored)
    with pytest.raises(CheckpointError):
        ArchDistribution.from_checkpoint(space, {"alpha": stored["alpha"]})


def test_invalid_architectures_are_rejected():
    dist = ArchDistribution(ToySpace())
    with pytest.raises(ArchitectureError, match="out of range"):
        dist.log_prob([(2, 0, 0, 0, 0)])  # decision d0 has 2 choices
    with pytest.raises(ArchitectureError, match="out of range"):
        dist.log_prob(torch.tensor([[0, 0, 0, 1, 0]]))  # decision d3 has 1 choice
    with pytest.raises(ArchitectureError):
        dist.log_prob([(0, 0)])
