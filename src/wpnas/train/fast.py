"""Fast paths of the engine: a fixed architecture's training forward, compiled.

A stand-alone network keeps one architecture for thousands of steps (ground-truth
fine-tunes, training from scratch), so its training forward and backward can be compiled
once: ``torch.compile`` with ``mode="reduce-overhead"`` fuses the kernels and replays them
as CUDA graphs, which removes the per-kernel launch cost that bounds small networks on a
large GPU (measured launch-bound on an H200: the step time barely moves from batch 64 to
1,024).

``engine.compile`` decides: ``auto`` compiles on CUDA only (the CPU stays eager, so it never
gets slower), ``on`` everywhere, ``off`` never. Before it is used, the compiled network is
probed on one real batch: its loss must equal the eager network's (within the autocast's
precision) and its backward must run. Anything that fails (no compiler, an op the compiler
does not support, a different result) leaves the eager network in place with one log line
saying why: never a silent wrong result. The probe leaves the network exactly as it found it
(parameters, BN statistics, gradients, random state).

Not compiled: networks that draw random numbers in their training forward (drop-path: a
compiled kernel draws other numbers than eager code, so results would differ), and
networks trained under torch.distributed (DDP owns the forward).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from wpnas import distributed
from wpnas.config import rng_state, set_rng_state

logger = logging.getLogger(__name__)

#: relative tolerance of the probe's loss comparison (fp32; bf16 autocast gets 2e-2)
PROBE_RTOL = 1e-4
PROBE_RTOL_BF16 = 2e-2


def fast_fixed_network(
    net: nn.Module, engine: Any, example: Callable[[], tuple[torch.Tensor, torch.Tensor]], what: str,
    refuse: str | None = None,
) -> nn.Module:
    """``net`` compiled for training when the engine's settings ask for it and the probe passes,
    else ``net`` itself. ``example()`` gives one batch (x, y) of the training shape, drawn
    without touching the training batches' generator; ``refuse`` is the caller's reason not to
    compile (e.g. drop-path), logged if a fast path was asked for."""
    cfg = engine.cfg
    if cfg.compile == "off" or (cfg.compile == "auto" and not engine.on_cuda):
        return net
    if refuse is None and distributed.current().active:
        refuse = "a distributed world: DDP wraps the eager network"
    if refuse is not None:
        logger.info("%s: fast path off (%s); eager training", what, refuse)
        return net
    try:
        import torch._dynamo

        torch._dynamo.reset()  # one fixed network at a time: no cache limit reached across architectures
        compiled = torch.compile(net, mode=cfg.compile_mode, backend=cfg.compile_backend)
        problem = _probe(net, compiled, engine, example())
    except Exception as err:  # a compiler missing or failing: eager, said once
        lines = [line.strip() for line in str(err).splitlines() if line.strip()][:2]
        problem = f"{type(err).__name__}: {' '.join(lines)}"[:300]
    if problem is not None:
        logger.warning("%s: fast path off (%s); eager training", what, problem)
        return net
    logger.debug("%s: training forward compiled (%s, %s)", what, cfg.compile_backend, cfg.compile_mode)
    return compiled


def _probe(net: nn.Module, compiled: nn.Module, engine: Any, example: tuple[torch.Tensor, torch.Tensor]) -> str | None:
    """Run the compiled and the eager training forward + backward on ``example`` from the same state;
    return why they disagree (None when they agree). Leaves ``net`` and the RNG as they were."""
    x, y = example
    saved = copy.deepcopy(net.state_dict())
    grads = {n: None if p.grad is None else p.grad.clone() for n, p in net.named_parameters()}
    rng = rng_state()
    was_training = net.training
    try:
        net.train()
        losses = []
        for forward in (compiled, net):
            net.load_state_dict(saved)
            net.zero_grad(set_to_none=True)
            set_rng_state(rng)
            with engine.autocast():
                out = forward(x)
                logits = out[0] if isinstance(out, tuple) else out
                loss = F.cross_entropy(logits.float(), y)
            loss.backward()
            grad = sum(float(p.grad.float().abs().sum()) for p in net.parameters() if p.grad is not None)
            losses.append((float(loss.detach()), grad))
        (fast_loss, fast_grad), (eager_loss, eager_grad) = losses
        tol = PROBE_RTOL_BF16 if engine.on_cuda and engine.cfg.amp else PROBE_RTOL
        if not (abs(fast_loss - eager_loss) <= tol * max(abs(eager_loss), 1e-6)
                and abs(fast_grad - eager_grad) <= 10 * tol * max(abs(eager_grad), 1e-6)):
            return (f"the compiled step differs from the eager one on the first batch: loss {fast_loss:.6g} vs "
                    f"{eager_loss:.6g}, gradient L1 {fast_grad:.6g} vs {eager_grad:.6g}")
        return None
    finally:
        net.load_state_dict(saved)
        for name, p in net.named_parameters():
            p.grad = grads[name]
        set_rng_state(rng)
        net.train(was_training)


def first_batch(splits: Any, batch_size: int, engine: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The first training images in stored order, normalised, as one batch of the training shape
    (the probe's example: no generator of the training batches is touched)."""
    from wpnas.data.batching import DeviceBatches

    return DeviceBatches.from_splits(splits, "train", engine.device, batch_size, train=False, shuffle=False,
                                     channels_last=engine.channels_last).take(1)[0]
