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
from wpnas.seeds import fixed_seed

logger = logging.getLogger(__name__)

#: why per-op graphs refuse steps with the landmark term
LANDMARK_REFUSAL = ("the landmark term runs several paths per step, and a graph replayed twice before backward "
                    "would overwrite the activations it saved")

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
    if _declined(cfg.compile, engine, refuse, what, "fast path"):
        return net
    try:
        import torch._dynamo

        torch._dynamo.reset()  # one fixed network at a time: no cache limit reached across architectures
        # a mode is Inductor's setting; other backends (e.g. cudagraphs: CUDA graphs without Inductor's
        # code generation, far less compile time per architecture) take none
        mode = cfg.compile_mode if cfg.compile_backend == "inductor" else None
        compiled = torch.compile(net, mode=mode, backend=cfg.compile_backend)
        problem = _probe(net, compiled, engine, example())
    except Exception as err:  # a compiler missing or failing: eager, said once
        lines = [line.strip() for line in str(err).splitlines() if line.strip()][:2]
        problem = f"{type(err).__name__}: {' '.join(lines)}"[:300]
    if problem is not None:
        logger.warning("%s: fast path off (%s); eager training", what, problem)
        return net
    logger.debug("%s: training forward compiled (%s, %s)", what, cfg.compile_backend, mode or "no mode")
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
        return _disagreement(losses[0], losses[1], engine, "the compiled step differs from the eager one on the "
                                                             "first batch")
    finally:
        net.load_state_dict(saved)
        for name, p in net.named_parameters():
            p.grad = grads[name]
        set_rng_state(rng)
        net.train(was_training)


def _declined(setting: str, engine: Any, refuse: str | None, what: str, path: str) -> bool:
    """Is a fast path set to ``setting`` (auto / on / off) not taken? Logs why when it was asked
    for: the caller's ``refuse`` reason, or a distributed world (DDP wraps the eager module)."""
    if setting == "off" or (setting == "auto" and not engine.on_cuda):
        return True
    if refuse is None and distributed.current().active:
        refuse = "a distributed world: DDP wraps the eager module"
    if refuse is not None:
        logger.info("%s: %s off (%s); eager training", what, path, refuse)
        return True
    return False


def _disagreement(fast: tuple[float, float], eager: tuple[float, float], engine: Any, what: str) -> str | None:
    """Why a fast step's (loss, gradient L1) is not the eager one's, or None when they agree
    (fp32: 1e-4 relative; bf16 autocast: 2e-2; the gradient sum ten times looser)."""
    (fast_loss, fast_grad), (eager_loss, eager_grad) = fast, eager
    tol = PROBE_RTOL_BF16 if engine.on_cuda and engine.cfg.amp else PROBE_RTOL
    if abs(fast_loss - eager_loss) <= tol * max(abs(eager_loss), 1e-6) and \
            abs(fast_grad - eager_grad) <= 10 * tol * max(abs(eager_grad), 1e-6):
        return None
    return f"{what}: loss {fast_loss:.6g} vs {eager_loss:.6g}, gradient L1 {fast_grad:.6g} vs {eager_grad:.6g}"


def first_batch(splits: Any, batch_size: int, engine: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The first training images in stored order, normalised, as one batch of the training shape
    (the probe's example: no generator of the training batches is touched)."""
    from wpnas.data.batching import DeviceBatches

    return DeviceBatches.from_splits(splits, "train", engine.device, batch_size, train=False, shuffle=False,
                                     channels_last=engine.channels_last).take(1)[0]


# -- per-op CUDA graphs of a SuperNet (WarmUp's random paths) ------------------------------------------
class _TensorOnly(nn.Module):
    """``op``'s original forward with its recorded non-tensor arguments, as a callable of its
    tensor arguments alone (what ``make_graphed_callables`` captures: the input and, with
    weakly weight sharing, the offset); ``op`` is a submodule so that its parameters get their
    gradients from the graphed backward."""

    def __init__(self, op: nn.Module, forward: Callable[..., torch.Tensor], pattern: tuple) -> None:
        super().__init__()
        self.op = op
        self._forward, self._pattern = forward, pattern

    def forward(self, x: torch.Tensor, *tensors: torch.Tensor) -> torch.Tensor:
        given = iter(tensors)
        args = [next(given) if kind == "tensor" else value for kind, value in self._pattern]
        return self._forward(x, *args)


def _pattern(args: tuple) -> tuple:
    """Recorded positional arguments after the input: ("value", v) or ("tensor", (shape, dtype))."""
    return tuple(("tensor", (tuple(a.shape), a.dtype)) if isinstance(a, torch.Tensor) else ("value", a)
                 for a in args)


def _matching(args: tuple, pattern: tuple, grad: bool) -> list[torch.Tensor] | None:
    """The tensor arguments of a call that matches ``pattern`` (values equal; tensors of the
    recorded shape and dtype, requiring a gradient exactly when ``grad``), else None."""
    if len(args) != len(pattern):
        return None
    tensors = []
    for arg, (kind, value) in zip(args, pattern):
        if kind == "value":
            if isinstance(arg, torch.Tensor) or arg != value:
                return None
        elif not isinstance(arg, torch.Tensor) or (tuple(arg.shape), arg.dtype) != value or arg.requires_grad != grad:
            return None
        else:
            tensors.append(arg)
    return tensors


def _signature(x: torch.Tensor) -> tuple:
    return (tuple(x.shape), x.dtype, x.device, x.stride())


def graph_candidate_ops(
    supernet: nn.Module, engine: Any, example: Callable[[], tuple[torch.Tensor, torch.Tensor]], what: str,
    graph_maker: Callable[..., nn.Module] | None = None, cover: int = 200, refuse: str | None = None,
    offsets_for: Callable[[Any], torch.Tensor | None] | None = None,
) -> Callable[[], None]:
    """Capture each of ``supernet.candidate_ops()`` as a CUDA graph (forward and backward), for
    training steps whose path changes every step (WarmUp, the search's weight steps): a chosen
    op then costs one graph replay instead of its several kernel launches. Returns
    ``restore()``, which puts the eager forwards back (call it before saving or pickling the
    SuperNet).

    ``engine.graph_ops`` decides (``auto``: CUDA only). Each op's input shape, dtype, layout and
    other arguments are recorded on paths of ``example`` that together use every op
    (``example()``: one training batch; ``cover`` random paths at most after one per choice
    index). ``offsets_for(arch)`` (weakly weight sharing: the HyperNet's offsets of a path)
    makes the offset each op receives a second graph input, of the recorded shape, requiring a
    gradient as the HyperNet's output does (a trained HyperNet gets its gradient through the
    graphed backward). An op is replayed only when a call matches what was recorded, in
    training mode with gradients on, and runs eagerly otherwise (eval, recalibration, paths in
    flight). The capture leaves weights, BN statistics and gradients as they were; a probe
    step per choice index compares the loss and gradients with the eager ones, and any failure
    or difference restores the eager forwards with one log line. ``graph_maker`` replaces
    ``torch.cuda.make_graphed_callables`` (tests); ``refuse`` is the caller's reason not to
    graph (logged if graphs were asked for).

    A graphed op must run at most once between two backward passes (a replay overwrites the
    activations the previous one saved): one path per step. Steps that run several paths
    before backward (the landmark term) must refuse."""
    nothing = lambda: None  # noqa: E731
    if _declined(engine.cfg.graph_ops, engine, refuse, what, "per-op graphs"):
        return nothing
    maker = graph_maker or _cuda_graph_maker(engine)
    if maker is None:
        logger.info("%s: per-op graphs off (CUDA graphs need a CUDA device); eager training", what)
        return nothing
    ops = dict(supernet.candidate_ops())
    if not ops:
        logger.info("%s: per-op graphs off (%s's ops change shape with the path); eager training", what,
                    type(supernet).__name__)
        return nothing
    space = supernet.space
    x, y = example()
    saved = copy.deepcopy(supernet.state_dict())
    rng = rng_state()
    was_training = supernet.training
    originals: dict[str, Callable[..., torch.Tensor]] = {}

    def restore() -> None:
        for name in originals:
            ops[name].__dict__.pop("forward", None)
        originals.clear()

    try:
        example_offsets = offsets_for(_covering_paths(space)[0]) if offsets_for is not None else None
        if example_offsets is None:  # e.g. a search whose HyperNet is off
            offsets_for = None
        offsets_grad = example_offsets is not None and example_offsets.requires_grad
        seen = _record_inputs(supernet, ops, engine, x, space, cover, offsets_for)
        missing = len(ops) - len(seen)
        graphed = {}
        with torch.autocast(device_type=engine.device.type, dtype=torch.bfloat16, cache_enabled=False,
                            enabled=engine.on_cuda and engine.cfg.amp):
            for name, (sig, pattern) in seen.items():
                op = ops[name]
                sample = torch.empty_strided(sig[0], sig[3], dtype=sig[1], device=sig[2]).normal_()
                extra = tuple(torch.ones(shape, dtype=dtype, device=sig[2]).requires_grad_(offsets_grad)
                              for kind, (shape, dtype) in ((k, v) for k, v in pattern if k == "tensor"))
                graphed[name] = maker(_TensorOnly(op, op.forward, pattern),
                                      (sample.requires_grad_(True), *extra))
        for name, (sig, pattern) in seen.items():
            originals[name] = ops[name].forward
            ops[name].forward = _dispatch(graphed[name], ops[name], sig, pattern, offsets_grad)
        problem = _probe_supernet(supernet, engine, x, y, space, saved, rng, offsets_for)  # each run from ``saved``
    except Exception as err:
        restore()
        lines = [line.strip() for line in str(err).splitlines() if line.strip()][:2]
        problem = f"{type(err).__name__}: {' '.join(lines)}"[:300]
    finally:
        supernet.load_state_dict(saved)
        supernet.zero_grad(set_to_none=True)
        set_rng_state(rng)
        supernet.train(was_training)
    if problem is not None:
        restore()
        logger.warning("%s: per-op graphs off (%s); eager training", what, problem)
        return nothing
    logger.info("%s: %d candidate ops captured as CUDA graphs%s%s", what, len(originals),
                " (offsets as graph inputs)" if offsets_for is not None else "",
                f" ({missing} never reached on the covering paths stay eager)" if missing else "")
    return restore


def _covering_paths(space: Any) -> list[tuple[int, ...]]:
    """One path per choice index (decisions with fewer choices take their last): together they
    run every choice of every decision."""
    return [tuple(min(k, n - 1) for n in space.num_choices) for k in range(space.max_choices)]


def _cuda_graph_maker(engine: Any) -> Callable[..., nn.Module] | None:
    if not engine.on_cuda:
        return None

    def make(module: nn.Module, sample_args: tuple) -> nn.Module:
        # an op that ignores its offset (skip, pooling) leaves that graph input unused
        return torch.cuda.make_graphed_callables(module, sample_args, allow_unused_input=True)

    return make


def _dispatch(graphed: nn.Module, op: nn.Module, sig: tuple, pattern: tuple,
              offsets_grad: bool) -> Callable[..., torch.Tensor]:
    """The op's forward while graphed: the graph for a positional call that matches what was
    recorded (training mode, gradients on), the eager forward for anything else."""
    eager = op.forward  # the class's forward, bound (before the instance attribute is set)

    def forward(x: torch.Tensor, *args: Any, **kw: Any) -> torch.Tensor:
        if not kw and op.training and torch.is_grad_enabled() and _signature(x) == sig:
            tensors = _matching(args, pattern, offsets_grad)
            if tensors is not None:
                return graphed(x, *tensors)
        return eager(x, *args, **kw)

    return forward


def _record_inputs(supernet: nn.Module, ops: dict[str, nn.Module], engine: Any, x: torch.Tensor, space: Any,
                   cover: int, offsets_for: Callable[[Any], torch.Tensor | None] | None = None) -> dict[str, tuple]:
    """Input signature and argument pattern of every op reached by covering paths."""
    import numpy as np

    seen: dict[str, tuple] = {}
    handles = []
    for name, op in ops.items():
        def hook(module, args, kwargs, name=name):  # ops are called positionally; a keyword call is not graphed
            if name not in seen and args and isinstance(args[0], torch.Tensor) and not kwargs:
                seen[name] = (_signature(args[0]), _pattern(tuple(args[1:])))
        handles.append(op.register_forward_pre_hook(hook, with_kwargs=True))
    rng = np.random.default_rng(fixed_seed("graphs.capture_paths"))
    paths = _covering_paths(space)
    try:
        supernet.train()
        with torch.no_grad(), engine.autocast():
            for i in range(len(paths) + cover):
                if len(seen) == len(ops):
                    break
                path = paths[i] if i < len(paths) else space.sample(rng)
                supernet(x, path, offsets_for(path) if offsets_for is not None else None)
    finally:
        for h in handles:
            h.remove()
    return seen


def _probe_supernet(supernet: nn.Module, engine: Any, x: torch.Tensor, y: torch.Tensor, space: Any,
                    saved: dict, rng: dict, offsets_for: Callable[[Any], torch.Tensor | None] | None = None
                    ) -> str | None:
    """A training forward + backward on each covering path with the graphs and without them:
    loss and gradient (of the weights and of the offsets) must agree."""
    for arch in _covering_paths(space):
        offsets = offsets_for(arch) if offsets_for is not None else None
        if offsets is not None:  # a leaf of its own: the probe's gradient stops here, not in the HyperNet
            offsets = offsets.detach().clone().requires_grad_(offsets.requires_grad)
        results = []
        for graphs_on in (True, False):
            if not graphs_on:
                forwards = {}
                for module in supernet.modules():
                    if "forward" in module.__dict__:
                        forwards[module] = module.__dict__.pop("forward")
            supernet.load_state_dict(saved)
            supernet.zero_grad(set_to_none=True)
            if offsets is not None:
                offsets.grad = None
            set_rng_state(rng)
            supernet.train()
            with engine.autocast():
                loss = F.cross_entropy(supernet(x, arch, offsets).float(), y)
            loss.backward()
            grad = sum(float(p.grad.float().abs().sum()) for p in supernet.parameters() if p.grad is not None)
            if offsets is not None and offsets.grad is not None:
                grad += float(offsets.grad.float().abs().sum())
            results.append((float(loss.detach()), grad))
            if not graphs_on:
                for module, forward in forwards.items():
                    module.forward = forward
        problem = _disagreement(results[0], results[1], engine,
                                f"the graphed step differs from the eager one on path {tuple(arch)}")
        if problem is not None:
            return problem
    return None
