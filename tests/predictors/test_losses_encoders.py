import math

import numpy as np
import pytest
import torch

from wpnas.predictors.encoders import build_encoder, normalized_adjacency, to_batch
from wpnas.predictors.losses import LossConfig, comparison_loss, pairwise_ranking_loss, predictor_loss
from wpnas.spaces import get_space


def test_pairwise_ranking_loss_hand_computed():
    target = torch.tensor([1.0, 0.0])
    assert pairwise_ranking_loss(torch.tensor([2.0, 0.0]), target).item() == pytest.approx(math.log1p(math.exp(-2)))
    assert pairwise_ranking_loss(torch.tensor([2.0, 0.0]), target, "hinge", margin=1.0).item() == 0.0
    assert pairwise_ranking_loss(torch.tensor([0.0, 0.5]), target, "hinge", margin=1.0).item() == pytest.approx(1.5)
    # ties in the target carry no order
    assert pairwise_ranking_loss(torch.tensor([0.0, 3.0]), torch.tensor([1.0, 1.0])).item() == 0.0
    # three items, all three pairs ordered, perfectly separated by 10 -> tiny loss
    assert pairwise_ranking_loss(torch.tensor([20.0, 10.0, 0.0]), torch.tensor([3.0, 2.0, 1.0])).item() < 1e-4


def test_predictor_loss_terms():
    pred, target = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    rank = pairwise_ranking_loss(pred, target).item()
    assert predictor_loss(LossConfig("ranking"), pred, target).item() == pytest.approx(rank)
    assert predictor_loss(LossConfig("mse"), pred, target).item() == pytest.approx(1.0)
    both = predictor_loss(LossConfig("ranking+mse", ranking_weight=2.0, mse_weight=0.5), pred, target).item()
    assert both == pytest.approx(2 * rank + 0.5)
    # per-pair few-shot estimates replace pred in the MSE term
    pair = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert predictor_loss(LossConfig("mse"), pred, target, pair, target[:, None]).item() == pytest.approx(0.0)


def test_comparison_loss():
    offset = torch.tensor([[2.0, -2.0]])
    true = torch.tensor([[1.0, -1.0]])
    assert comparison_loss(offset, true).item() == pytest.approx(math.log1p(math.exp(-2)))
    assert comparison_loss(offset, torch.zeros(1, 2)).item() == 0.0


def test_normalized_adjacency_is_symmetric_with_self_loops():
    a = normalized_adjacency(torch.tensor(get_space("nats_tss").decision_adjacency()))
    assert torch.allclose(a, a.T) and (torch.diagonal(a) > 0).all()
    chain = normalized_adjacency(torch.tensor([[0.0, 1.0], [0.0, 0.0]]))
    assert torch.allclose(chain, torch.full((2, 2), 0.5))


@pytest.mark.parametrize("kind", ["mlp", "rnn", "transformer", "gcn"])
@pytest.mark.parametrize("name", ["nats_tss", "nats_sss"])
@pytest.mark.parametrize("ordinal", [False, True])
def test_encoders_map_a_batch_to_embeddings(kind, name, ordinal):
    space = get_space(name)
    archs = space.sample_unique(np.random.default_rng(0), 7)
    enc = build_encoder(kind, space.num_decisions, space.max_choices, embed_dim=8, hidden=12, out_dim=5,
                        layers=2, heads=2, dropout=0.0, use_ordinal=ordinal)
    out = enc(to_batch(space.encode(archs)))
    assert out.shape == (7, 5) and torch.isfinite(out).all()
    # a choice at one decision is not the same feature as that choice at another
    a, b = [0] * space.num_decisions, [0] * space.num_decisions
    a[0], b[1] = 1, 1
    e = enc(to_batch(space.encode([tuple(a), tuple(b)])))
    assert not torch.allclose(e[0], e[1])
