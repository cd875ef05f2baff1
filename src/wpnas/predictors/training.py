"""Train a predictor from (architecture, accuracy) pairs.

Inputs are checked before any training (lengths, parsing in the space, duplicates,
finite accuracies, enough pairs for a support set plus queries), so a bad ground-truth
file fails in a second with the offending pair named.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from wpnas.config import from_dict, resolve_device
from wpnas.errors import DataError, TrainingError
from wpnas.predictors.encoders import to_batch
from wpnas.predictors.losses import comparison_loss, predictor_loss
from wpnas.predictors.models import Predictor, PredictorConfig, RelationNet, TargetNorm, build_net
from wpnas.spaces.base import SearchSpace
from wpnas.seeds import stream_seed

from wpnas.io.pairs import check_pairs

__all__ = ["check_pairs", "train_predictor"]


def _optimizer(cfg: PredictorConfig, params) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True)


def _train_one(cfg: PredictorConfig, space: SearchSpace, tokens: np.ndarray, y: np.ndarray, seed: int,
               device: torch.device) -> tuple[nn.Module, list[float]]:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build_net(cfg, space).to(device)
    opt = _optimizer(cfg, net.parameters())
    n = len(tokens)
    batch = to_batch(space.encode_tokens(tokens), device)
    target = torch.as_tensor(y, dtype=torch.float32, device=device)
    fewshot = isinstance(net, RelationNet)
    loss_cfg = cfg.loss_config
    if fewshot:
        n_query_pool = n - cfg.support_size
        query_size = min(cfg.batch_size, n_query_pool)
        steps_per_epoch = max(1, math.ceil(n_query_pool / query_size))
    else:
        steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total_steps = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps) if cfg.cosine else None
    history: list[float] = []
    net.train()
    for _ in range(cfg.epochs):
        epoch_loss = 0.0
        if not fewshot:
            order = torch.as_tensor(rng.permutation(n), device=device)
        for step in range(steps_per_epoch):
            if fewshot:
                perm = rng.permutation(n)
                s_idx = torch.as_tensor(perm[: cfg.support_size], device=device)
                q_idx = torch.as_tensor(perm[cfg.support_size: cfg.support_size + query_size], device=device)
                pred, pair = net(batch.select(q_idx), batch.select(s_idx), target[s_idx])
                q_t = target[q_idx]
                loss = predictor_loss(loss_cfg, pred, q_t, pair, q_t[:, None])
                if cfg.compare_weight > 0:
                    y_s = target[s_idx][None, :]
                    loss = loss + cfg.compare_weight * comparison_loss(pair - y_s, q_t[:, None] - y_s)
            else:
                idx = order[step * cfg.batch_size: (step + 1) * cfg.batch_size]
                if len(idx) < 2:
                    continue
                pred = net(batch.select(idx))
                loss = predictor_loss(loss_cfg, pred, target[idx])
            if not torch.isfinite(loss):
                raise TrainingError(f"predictor training diverged (loss {loss.item()}); lower predictor.lr ({cfg.lr})")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(net.parameters(), cfg.grad_clip)
            opt.step()
            if sched is not None:
                sched.step()
            epoch_loss += float(loss.detach())
        history.append(epoch_loss / steps_per_epoch)
    net.eval()
    return net, history


def _select_support(cfg: PredictorConfig, y: np.ndarray, count: int, seed: int) -> np.ndarray:
    n = len(y)
    if count >= n:
        return np.arange(n)
    if cfg.support_selection == "stratified":
        # one pair per accuracy quantile: the carried support spans the whole range
        order = np.argsort(y, kind="stable")
        picks = np.round(np.linspace(0, n - 1, count)).astype(int)
        return np.sort(order[picks])
    return np.sort(np.random.default_rng(stream_seed(seed, "predictor.support")).choice(n, size=count, replace=False))


def _fit_calibration(score: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Least-squares ``target ~ a * score + b`` with ``a > 0`` (keeps the order)."""
    var = float(np.var(score))
    if var <= 1e-12:
        return 1.0, float(np.mean(target) - np.mean(score))
    a = float(np.mean((score - score.mean()) * (target - target.mean())) / var)
    a = max(a, 1e-6)
    return a, float(np.mean(target) - a * np.mean(score))


def _carried(cfg: PredictorConfig, n: int) -> int:
    if cfg.inference_support == -1:
        return n
    return cfg.inference_support or cfg.support_size


def train_predictor(
    space: SearchSpace,
    archs: Sequence[Any],
    accuracies: Sequence[float] | np.ndarray,
    cfg: PredictorConfig | Mapping[str, Any] | None = None,
) -> tuple[Predictor, dict[str, Any]]:
    """Train a predictor on (arch, accuracy) pairs; accuracies in percent (predictions come back
    in the same units). Returns the predictor and a history dict (per-member epoch losses,
    seconds)."""
    cfg = from_dict(PredictorConfig, cfg, where="predictor")
    tokens, acc = check_pairs(space, archs, accuracies, min_pairs=cfg.min_train_pairs)
    carried = _carried(cfg, len(tokens))
    if cfg.kind == "fewshot" and carried > len(tokens):
        raise DataError(f"predictor.inference_support={carried} exceeds the {len(tokens)} training pairs")
    if np.all(acc == acc[0]):
        raise DataError(f"all {len(acc)} training accuracies equal {acc[0]}; nothing to learn an order from")
    device = resolve_device(cfg.device)
    norm = TargetNorm.fit(cfg.target_norm, acc)
    y = norm.forward(acc)
    start = time.perf_counter()
    nets, losses = [], []
    for member in range(cfg.ensemble):
        net, hist = _train_one(cfg, space, tokens, y, cfg.seed + member, device)
        nets.append(net)
        losses.append(hist)
    support_tokens = support_acc = None
    if cfg.kind == "fewshot":
        idx = _select_support(cfg, acc, carried, cfg.seed)
        support_tokens, support_acc = tokens[idx], acc[idx]
    predictor = Predictor(space, cfg, nets, norm, support_tokens, support_acc)
    if cfg.calibrate:
        predictor.calibration = _fit_calibration(predictor.predict_normalised(tokens), y)
    history = {
        "loss": losses,
        "seconds": time.perf_counter() - start,
        "n_train": len(tokens),
        "calibration": predictor.calibration,
    }
    return predictor, history
