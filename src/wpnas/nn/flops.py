"""FLOPs and parameters of a model measured with forward hooks (NATS-Bench convention).

The convention is that of NATS-Bench's ``get_model_infos``: multiply-accumulates of every
Conv2d (plus one per output element when it has a bias) and every Linear (plus its bias),
per image; pooling, BN, activations and additions count zero. Parameters are all
``model.parameters()``. Units are millions (1e6). Shapes are read from the tensors that
actually flow, so sliced (dynamic) layers are counted at the width they ran.

``wpnas.spaces.nats_skeleton.plan_cost`` computes the same numbers analytically; this
counter is the independent check of it (and works for any model).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from wpnas.errors import ConfigError
from wpnas.cost import Cost


def _conv_hook(totals: list[float]) -> Callable[..., None]:
    def hook(module: nn.Conv2d, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        kh, kw = module.kernel_size
        c_in = inputs[0].shape[1]
        n, c_out, h, w = output.shape
        positions = n * h * w
        totals[0] += kh * kw * (c_in // module.groups) * c_out * positions
        if module.bias is not None:
            totals[0] += c_out * positions
        totals[1] = max(totals[1], n)

    return hook


def _linear_hook(totals: list[float]) -> Callable[..., None]:
    def hook(module: nn.Linear, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        rows = output.numel() // output.shape[-1]
        totals[0] += inputs[0].shape[-1] * output.shape[-1] * rows
        if module.bias is not None:
            totals[0] += output.shape[-1] * rows
        totals[1] = max(totals[1], output.shape[0])

    return hook


def count_call_flops(module: nn.Module, call: Callable[[], object]) -> float:
    """FLOPs per image (not millions) of the ``Conv2d`` and ``Linear`` layers inside ``module`` while
    ``call()`` runs (NATS-Bench convention, as above), without gradients; the batch is read from the
    layers' outputs."""
    totals = [0.0, 0.0]  # FLOPs over the batch, batch size
    handles = []
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            handles.append(sub.register_forward_hook(_conv_hook(totals)))
        elif isinstance(sub, nn.Linear):
            handles.append(sub.register_forward_hook(_linear_hook(totals)))
    try:
        with torch.no_grad():
            call()
    finally:
        for h in handles:
            h.remove()
    return totals[0] / max(totals[1], 1.0)


def count_flops_params(
    model: nn.Module,
    input_shape: Sequence[int],
    forward_fn: Callable[[torch.Tensor], object] | None = None,
    exclude_prefixes: Sequence[str] = (),
) -> Cost:
    """FLOPs (per image) and parameters of ``model``, in millions.

    ``input_shape`` is (C, H, W) of one image. ``forward_fn(x)`` runs the model (default
    ``model(x)``); pass e.g. ``lambda x: supernet(x, arch)`` to count one SuperNet path
    (its parameter count is then the whole SuperNet's, not the path's).
    ``exclude_prefixes``: parameters whose names start with one of these are not counted
    (e.g. ``"auxiliary"``: a training-only head).
    """
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ConfigError(f"count_flops_params: input_shape must be (C, H, W) positive, got {tuple(input_shape)!r}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    was_training = {m: m.training for m in model.modules()}
    try:
        model.eval()
        x = torch.rand((1, *shape), device=device, dtype=dtype)
        flops = count_call_flops(model, lambda: (forward_fn or model)(x))
    finally:
        for m, flag in was_training.items():
            m.training = flag
    prefixes = tuple(exclude_prefixes)
    params = sum(p.numel() for name, p in model.named_parameters() if not (prefixes and name.startswith(prefixes)))
    return Cost(flops_m=flops / 1e6, params_m=params / 1e6)
