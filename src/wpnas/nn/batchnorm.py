"""Re-estimating BN running statistics for one architecture (BN recalibration).

The running statistics stored in a SuperNet mix every path that was trained; an
architecture evaluated with inherited weights needs the statistics of its own path.
:func:`recalibrate_bn` resets the BN layers the path actually uses (found by a hook on
their first call), averages batch statistics over a few training batches (cumulative
average, equal weight per batch: what ``momentum=None`` does, but with momentum 1/k on the
k-th batch set from the host, so no BN layer reads its batch counter back from the device,
one host sync per layer and batch on a GPU), and leaves every other setting as it found it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn as nn

from wpnas.errors import DataError


def recalibrate_bn(
    model: nn.Module,
    forward_fn: Callable[[torch.Tensor], Any] | None,
    batches: Iterable[torch.Tensor | tuple | list],
) -> int:
    """Re-estimate running statistics of the BN layers that ``forward_fn`` runs.

    ``forward_fn(x)`` runs the architecture (e.g. ``lambda x: supernet(x, arch)``;
    ``None`` means ``model(x)``); it receives each batch as given, or its first element
    when a batch is an (inputs, targets) pair, so move data to the device inside it.
    Runs under ``no_grad`` in train mode; the train/eval flags and BN momenta are
    restored afterwards, and BN layers off the path are untouched. Returns the number
    of BN layers recalibrated; raises ``DataError`` when ``batches`` is empty.
    """
    run = forward_fn or model
    touched: dict[nn.modules.batchnorm._BatchNorm, float | None] = {}
    count = 0

    def reset_on_first_call(module: nn.modules.batchnorm._BatchNorm, _inputs: Any) -> None:
        if module not in touched:
            touched[module] = module.momentum
            module.reset_running_stats()
            module.momentum = 1.0 / (count + 1)

    handles = [
        m.register_forward_pre_hook(reset_on_first_call)
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    try:
        with TrainMode(model)(), torch.no_grad():
            for batch in batches:
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                for module in touched:  # the (count+1)-th batch: what momentum=None gives, without its host sync
                    module.momentum = 1.0 / (count + 1)
                run(x)
                count += 1
    finally:
        for h in handles:
            h.remove()
        for module, momentum in touched.items():
            module.momentum = momentum
    if count == 0:
        raise DataError("recalibrate_bn: got no batches; BN statistics need at least one training batch")
    return len(touched)


class TrainMode:
    """Every module of ``model`` in train mode inside ``with mode():``, each flag restored after.

    The module list is taken here, once, so a model whose module tree no longer changes can
    keep one and pay no traversal per use. The flags are written straight into the modules'
    attributes, as ``nn.Module.train`` writes them, without ``model.train()``'s recursion
    and ``nn.Module.__setattr__`` per module: on the paper's NATS-TSS SuperNet (864
    modules) that was 3.6 ms of host time per switch and restore. A model with a module
    that overrides ``train`` or attribute setting (a TorchScript module, say) goes through
    ``model.train()`` instead, so its own code runs.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.modules = tuple(model.modules())
        self.direct = all(_plain_flags(m) for m in self.modules)

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        flags = [m.training for m in self.modules]
        try:
            if self.direct:
                for m in self.modules:
                    m.__dict__["training"] = True
            else:
                self.model.train()
            yield
        finally:
            for m, flag in zip(self.modules, flags):
                if self.direct:
                    m.__dict__["training"] = flag
                else:
                    m.training = flag


def _plain_flags(module: nn.Module) -> bool:
    """Is ``module.training`` a plain attribute that ``nn.Module.train`` alone sets?"""
    kind = type(module)
    return (kind.train is nn.Module.train and kind.__setattr__ is nn.Module.__setattr__
            and "training" in module.__dict__)
