"""A SuperNet paired with its HyperNet: weakly weight sharing (paper Section 3.3).

The path of A runs with the base weights times the HyperNet's offsets for A
(equation 2), in the weight steps, the reward pass and the argmax evaluation alike.

* ``off``: plain weight sharing (offsets ``None``).
* ``trained``: starts at the identity (offsets exactly 1, so the search begins from the
  warmed SuperNet unchanged) and learns from the same training loss and the same SGD
  optimizer as the SuperNet (learning rate, schedule, weight decay, clipping).
* ``fixed``: random and frozen, initialised from the run's seed; its weights are stored
  in the checkpoint all the same.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from wpnas.config import from_dict, to_dict
from wpnas.errors import CheckpointError
from wpnas.search.hypernet import HyperNet, HyperNetConfig
from wpnas.spaces.supernet import SuperNet
from wpnas.spaces.base import Arch
from wpnas.seeds import stream_seed



class WeaklySharedSuperNet(nn.Module):
    """``forward(x, arch)`` = ``supernet(x, arch, hypernet(arch))``."""

    def __init__(self, supernet: SuperNet, hypernet: HyperNet) -> None:
        super().__init__()
        if hypernet.space.describe() != supernet.space.describe():
            raise CheckpointError(
                f"HyperNet built for {hypernet.space.describe()} cannot drive a SuperNet of {supernet.space.describe()}"
            )
        self.supernet = supernet
        self.hypernet = hypernet

    @property
    def space(self):
        return self.supernet.space

    @property
    def mode(self) -> str:
        return self.hypernet.mode

    def offsets(self, arch: Arch) -> torch.Tensor | None:
        """(L, K, K) offsets for ``arch`` (``None`` when the HyperNet is off); grads flow when trained."""
        return self.hypernet(arch)

    def forward(self, x: torch.Tensor, arch: Arch) -> torch.Tensor:
        return self.supernet(x, arch, self.offsets(arch))

    def forward_paths(self, x: torch.Tensor, archs: list[Arch]) -> torch.Tensor:
        """Several paths in flight (:meth:`SuperNet.forward_paths`), each with its own offsets."""
        offsets = [self.offsets(a) for a in archs]
        stacked = None if offsets[0] is None else torch.stack(offsets)
        return self.supernet.forward_paths(x, archs, stacked)

    def trainable_parameters(self) -> list[nn.Parameter]:
        """SuperNet weights plus, for a 'trained' HyperNet, its weights (one loss trains both)."""
        params = list(self.supernet.parameters())
        if self.hypernet.mode == "trained":
            params += list(self.hypernet.parameters())
        return [p for p in params if p.requires_grad]

    def hypernet_checkpoint(self) -> dict[str, Any]:
        return {
            "config": to_dict(self.hypernet.cfg),
            "describe": self.hypernet.describe(),
            "state_dict": {k: v.detach().cpu() for k, v in self.hypernet.state_dict().items()},
        }


def build_hypernet(space, cfg: HyperNetConfig, seed: int) -> HyperNet:
    """A HyperNet initialised from ``seed`` without disturbing the global torch RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(stream_seed(seed, "hypernet.init"))
        return HyperNet.from_config(space, cfg)


def restore_hypernet(space, data: dict[str, Any], source: str = "search checkpoint") -> HyperNet:
    """Rebuild the HyperNet stored by :meth:`WeaklySharedSuperNet.hypernet_checkpoint`."""
    if not isinstance(data, dict) or not {"config", "describe", "state_dict"} <= set(data):
        raise CheckpointError(f"{source} holds no HyperNet (missing config / describe / state_dict)")
    with torch.random.fork_rng(devices=[]):  # a fixed HyperNet draws while building; keep global RNG as is
        hypernet = HyperNet.from_config(space, from_dict(HyperNetConfig, data["config"], where=f"{source} HyperNet config"))
    if data["describe"] != hypernet.describe():
        raise CheckpointError(
            f"{source}: HyperNet was written for {data['describe']!r}, expected {hypernet.describe()!r}"
        )
    try:
        hypernet.load_state_dict(data["state_dict"], strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{source}: HyperNet weights do not fit its config: {err}") from err
    return hypernet
