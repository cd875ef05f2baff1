"""Several SuperNet paths in one forward pass ("paths in flight").

A small SuperNet on a GPU is launch-bound: one path's forward launches a few hundred
small kernels and the GPU waits on them. Evaluating K architectures one after another
launches K times as many. Run together, the K paths' inputs are stacked path-major along
the batch dimension (K blocks of B images) and every candidate op runs once on the blocks
of the paths that chose it, so an edge launches at most one op per distinct choice, not
one per path.

What must stay per path is what makes a path's result its own:

* **BN statistics.** A BN layer normalises each path's block with that block's statistics
  (train mode) or with the path's own recalibrated statistics (eval mode), never with the
  statistics of the stacked batch. :class:`PathGroups` holds the per-path recalibrated
  statistics of every BN layer while a group of paths is evaluated; the layers' own
  buffers are left alone. The stacked batch is rearranged to (B, G*C, H, W) so that one
  ``F.batch_norm`` call computes G*C per-channel statistics: the same kernel as a
  one-path forward, on the same elements.
* **Offsets** (weakly weight sharing): each path's kernel is scaled by its own offsets, so
  a conv shared by G paths runs as one grouped convolution over G scaled kernels.

:class:`PathGroups` is the session (one per group of paths); the layers of
:mod:`wpnas.nn.ops` consult :func:`active` and behave exactly as before when no session is
active. Gradients are not supported: paths in flight are for no-grad evaluation (BN
recalibration, validation, the search's reward pass).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["PathGroups", "active", "block_correct", "block_cross_entropies", "in_flight", "stack_blocks",
           "unstack_blocks"]

_ACTIVE: list[PathGroups] = []
#: index tensors of path subsets, per device (a few hundred at most in practice)
_INDICES: dict[tuple, torch.Tensor] = {}
_INDEX_CACHE_SIZE = 4096


def active() -> PathGroups | None:
    """The session of the paths now in flight, or None (a plain one-path forward)."""
    return _ACTIVE[-1] if _ACTIVE else None


def stack_blocks(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(G*B, C, ...) path-major -> (B, G*C, ...): G blocks side by side as channels."""
    return x.unflatten(0, (groups, -1)).transpose(0, 1).flatten(1, 2)


def unstack_blocks(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Inverse of :func:`stack_blocks`: (B, G*C, ...) -> (G*B, C, ...)."""
    return x.unflatten(1, (groups, -1)).transpose(0, 1).flatten(0, 1)


def block_cross_entropies(logits: torch.Tensor, y: torch.Tensor, paths: int) -> torch.Tensor:
    """(paths,) mean cross-entropies (nats) of the path blocks of ``logits``, every block scored on ``y``."""
    per_image = F.cross_entropy(logits.float(), y.repeat(paths), reduction="none")
    return per_image.view(paths, -1).mean(1)


def block_correct(logits: torch.Tensor, y: torch.Tensor, paths: int) -> torch.Tensor:
    """(paths,) how many images of ``y`` each path block of ``logits`` classifies correctly (exact counts)."""
    return (logits.argmax(1) == y.repeat(paths)).view(paths, -1).sum(1).double()


class PathGroups:
    """One group of ``num_paths`` paths evaluated together.

    ``calibrating`` (BN recalibration): BN layers in train mode normalise each path's block
    with its batch statistics and fold them into per-path running averages kept here
    (equal weight per batch, as ``momentum=None``); in eval mode they normalise with those
    averages. A BN layer that was never recalibrated in this session uses its own running
    statistics (the same for every path). The session assumes the weights do not change
    while it lives. In train mode with ``track_running_stats`` off
    (the search's reward pass) each block is normalised with its own batch statistics.
    """

    def __init__(self, num_paths: int) -> None:
        if num_paths < 1:
            raise ValueError(f"paths in flight: {num_paths} paths; expected at least 1")
        self.num_paths = int(num_paths)
        self.calibrating = False
        self._rows: list[int] = list(range(self.num_paths))
        # keyed by (BN layer, paths served): everything below is made once per session
        self._params: dict[tuple, tuple[torch.Tensor | None, torch.Tensor | None]] = {}  # affine, repeated
        self._running: dict[tuple, list] = {}  # [running mean (G*C), running variance (G*C), batches]
        self._affines: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}  # eval (scale, shift)
        self._recalibrated: set[nn.Module] = set()

    # -- which paths the running op serves ------------------------------------------------
    @contextlib.contextmanager
    def serving(self, rows: Sequence[int]) -> Iterator[None]:
        """While an op runs on the blocks of ``rows`` only (the paths that chose it)."""
        saved = self._rows
        self._rows = list(rows)
        try:
            yield
        finally:
            self._rows = saved

    def index(self, rows: Sequence[int], device: torch.device) -> torch.Tensor:
        """``rows`` as an index tensor on ``device`` (made once per process and subset: no
        host-to-device copy per op call or per search step)."""
        key = (tuple(rows), device)
        if key not in _INDICES:
            if len(_INDICES) >= _INDEX_CACHE_SIZE:
                _INDICES.clear()
            _INDICES[key] = torch.tensor(list(rows), dtype=torch.long).to(device, non_blocking=True)
        return _INDICES[key]

    # -- BN ---------------------------------------------------------------------------
    def batch_norm(self, bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
        """``bn`` applied to each path's block of ``x`` as if that path ran alone.

        Train mode: the blocks side by side as channels (:func:`stack_blocks`), one
        ``F.batch_norm`` over G*C channels (per-block statistics from the same kernel as a
        one-path forward), and back. Recalibration keeps G*C running statistics per layer
        and subset of paths, averaged over the batches exactly as ``momentum=None`` does
        (the k-th batch with momentum 1/k). Eval mode with recalibrated statistics: one
        fused ``x * scale + shift`` over the (G, B, C, H, W) view, scale and shift made once
        per layer and subset of paths.
        """
        groups = len(self._rows)
        if x.shape[1] != bn.num_features:
            raise RuntimeError(
                f"paths in flight: {type(bn).__name__}({bn.num_features}) got {x.shape[1]} channels; "
                "channel slicing is not supported with several paths in flight"
            )
        if x.shape[0] % groups:
            raise RuntimeError(f"paths in flight: a batch of {x.shape[0]} is not {groups} equal path blocks")
        key = (bn, tuple(self._rows))
        if bn.training:
            if bn.track_running_stats and not self.calibrating:
                raise RuntimeError("paths in flight evaluate without gradients; they do not train BN statistics")
            if key not in self._params:
                self._params[key] = (None if bn.weight is None else bn.weight.repeat(groups),
                                     None if bn.bias is None else bn.bias.repeat(groups))
            weight, bias = self._params[key]
            stacked = stack_blocks(x, groups)
            if not bn.track_running_stats:  # batch statistics; running buffers neither read nor written
                return unstack_blocks(F.batch_norm(stacked, None, None, weight, bias, True, 0.0, bn.eps), groups)
            running = self._running.get(key)
            if running is None:
                running = self._running[key] = [
                    torch.zeros(stacked.shape[1], device=x.device, dtype=torch.float32),
                    torch.ones(stacked.shape[1], device=x.device, dtype=torch.float32),
                    0,
                ]
                self._recalibrated.add(bn)
            running[2] += 1
            self._affines.pop(key, None)
            out = F.batch_norm(stacked, running[0], running[1], weight, bias, True, 1.0 / running[2], bn.eps)
            return unstack_blocks(out, groups)
        if bn not in self._recalibrated:  # not recalibrated here: the layer's own statistics, for every path
            return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
        scale, shift = self._affine(key, x)
        out = torch.addcmul(shift, x.unflatten(0, (groups, -1)), scale)
        return out.flatten(0, 1).to(x.dtype)

    def _affine(self, key: tuple, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scale, shift) of an eval-mode BN layer for the paths served, shaped (G, 1, C, 1, 1)."""
        if key not in self._affines:
            bn, rows = key
            if key not in self._running:
                raise RuntimeError(f"paths in flight: paths {list(rows)} ran a BN layer they were not recalibrated on")
            mean, var, _ = self._running[key]
            scale = torch.rsqrt(var + bn.eps)
            if bn.weight is not None:
                scale = scale * bn.weight.float().repeat(len(rows))
            shift = -mean * scale
            if bn.bias is not None:
                shift = shift + bn.bias.float().repeat(len(rows))
            shape = (len(rows), 1, bn.num_features) + (1,) * (x.dim() - 2)
            self._affines[key] = (scale.view(shape), shift.view(shape))
        return self._affines[key]

    # -- convolution with per-path offsets --------------------------------------------------
    def conv2d(self, conv: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor, offsets: torch.Tensor,
               crop: slice | tuple) -> torch.Tensor:
        """``conv`` with ``weight`` scaled by each path's offset crop: one grouped convolution.

        ``offsets`` is (G, K, K), one offset kernel per path served; ``crop`` selects the part
        of an offset kernel that scales the conv kernel.
        """
        groups = len(self._rows)
        if offsets.shape[0] != groups:
            raise RuntimeError(f"paths in flight: {offsets.shape[0]} offsets for {groups} paths")
        scaled = weight.unsqueeze(0) * offsets[(slice(None), *crop)].to(weight.dtype)[:, None, None]
        kernel = scaled.flatten(0, 1)  # (G*C_out, C_in/groups, kh, kw)
        bias = None if conv.bias is None else conv.bias[: weight.shape[0]].repeat(groups)
        out = F.conv2d(stack_blocks(x, groups), kernel, bias, conv.stride, conv.padding, conv.dilation,
                       conv.groups * groups)
        return unstack_blocks(out, groups)


@contextlib.contextmanager
def in_flight(groups: PathGroups) -> Iterator[PathGroups]:
    """Make ``groups`` the active session for the forwards inside."""
    _ACTIVE.append(groups)
    try:
        yield groups
    finally:
        _ACTIVE.pop()
