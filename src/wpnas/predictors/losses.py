"""Training losses: a pairwise ranking loss (ReNAS-style) plus an optional regression term.

A search only needs the predictor to order architectures, so the ranking term is the
main one; the regression term (MSE in normalised target units) keeps predictions on
the accuracy scale, which the reward of the search mixes with other quantities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

__all__ = ["LossConfig", "comparison_loss", "pairwise_ranking_loss", "predictor_loss"]


def pairwise_ranking_loss(
    pred: torch.Tensor, target: torch.Tensor, kind: Literal["logistic", "hinge"] = "logistic", margin: float = 0.1
) -> torch.Tensor:
    """Mean over all pairs (i, j) with ``target_i > target_j`` of a penalty on ``pred_i - pred_j``.

    logistic: ``softplus(-(pred_i - pred_j))`` (RankNet); hinge: ``relu(margin - (pred_i - pred_j))``.
    Equal targets carry no order and are skipped. Returns 0 when no pair is ordered.
    """
    pred = pred.reshape(-1)
    target = target.reshape(-1)
    diff = pred[:, None] - pred[None, :]
    ordered = (target[:, None] > target[None, :]).to(pred.dtype)
    count = ordered.sum()
    if count == 0:
        return pred.sum() * 0.0
    if kind == "logistic":
        penalty = F.softplus(-diff)
    else:
        penalty = F.relu(margin - diff)
    return (penalty * ordered).sum() / count


def comparison_loss(offset: torch.Tensor, true_offset: torch.Tensor) -> torch.Tensor:
    """Few-shot "learning to compare": logistic loss on the sign of each (support, query)
    offset, ``softplus(-sign(true_offset) * offset)``, averaged over pairs with a true order."""
    sign = torch.sign(true_offset)
    mask = sign != 0
    if not bool(mask.any()):
        return offset.sum() * 0.0
    return F.softplus(-sign[mask] * offset[mask]).mean()


@dataclass(frozen=True)
class LossConfig:
    loss: Literal["ranking", "mse", "ranking+mse"] = "ranking"
    ranking: Literal["logistic", "hinge"] = "logistic"
    margin: float = 0.1
    ranking_weight: float = 1.0
    mse_weight: float = 1.0


def predictor_loss(
    cfg: LossConfig,
    pred: torch.Tensor,
    target: torch.Tensor,
    pair_pred: torch.Tensor | None = None,
    pair_target: torch.Tensor | None = None,
) -> torch.Tensor:
    """Combine the selected terms. ``pair_pred``/``pair_target`` (few-shot: every support x query
    estimate and its target) replace ``pred``/``target`` in the MSE term when given."""
    total = pred.new_zeros(())
    if cfg.loss in ("ranking", "ranking+mse"):
        total = total + cfg.ranking_weight * pairwise_ranking_loss(pred, target, cfg.ranking, cfg.margin)
    if cfg.loss in ("mse", "ranking+mse"):
        if pair_pred is not None and pair_target is not None:
            reg = F.mse_loss(pair_pred, pair_target.expand_as(pair_pred))
        else:
            reg = F.mse_loss(pred, target)
        total = total + cfg.mse_weight * reg
    return total
