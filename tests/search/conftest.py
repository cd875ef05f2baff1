"""Tiny spaces, digits data and warmed SuperNets that run the real search code in seconds."""

from __future__ import annotations

import dataclasses

from collections.abc import Iterable, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from wpnas.config import from_dict
from wpnas.data.sources import DataConfig, build_image_splits
from wpnas.errors import ArchitectureError
from wpnas.spaces import get_space
from wpnas.search import SearchConfig, WPNASConfig
from wpnas.spaces.base import Cost, Decision, SearchSpace
from wpnas.train.warmup import WarmupConfig, warmup_supernet

#: Tiny options per space (8x8 digits): NATS C=4, N=1 cells or widths 4, 8; DARTS 3 cells of 4 channels; MobileNet x0.25.
TINY = {"nats_tss": {"C": 4, "N": 1}, "nats_sss": {"channels": [4, 8]}, "darts": {"C": 4, "layers": 3},
        "mobilenet": {"width_mult": 0.25}}


class ToySpace(SearchSpace):
    """A space with unequal choice counts (like DARTS op / parent-pair decisions); no networks.

    FLOPs are the sum of the choice indices, so the cheapest architecture is all zeros.
    """

    name = "toy"

    def __init__(self, sizes: Sequence[int] = (2, 5, 3, 1, 4)) -> None:
        self.sizes = tuple(int(k) for k in sizes)
        super().__init__([Decision(f"d{l}", tuple(f"c{l}{k}" for k in range(n))) for l, n in enumerate(self.sizes)])

    def options(self) -> dict[str, Any]:
        return {"sizes": list(self.sizes)}

    def to_string(self, arch: Iterable[int]) -> str:
        return "-".join(str(a) for a in self.validate(arch))

    def from_string(self, text: str):
        try:
            return self.validate(int(p) for p in text.split("-"))
        except ValueError:
            raise ArchitectureError(f"toy: cannot parse {text!r}") from None

    def cost(self, arch, input_shape=(3, 32, 32), num_classes=10) -> Cost:
        arch = self.validate(arch)
        return Cost(flops_m=float(sum(arch)), params_m=float(len(arch)))

    def build_supernet(self, in_channels=3, num_classes=10):
        raise NotImplementedError("the toy space has no networks")

    def build_network(self, arch, in_channels=3, num_classes=10):
        raise NotImplementedError("the toy space has no networks")



@pytest.fixture(scope="session")
def digits():
    """The embedded digits at their native 8x8 (719 train / 719 valid images)."""
    return build_image_splits(DataConfig(source="digits", image_size=8))


_WARMED: dict[str, tuple[SearchSpace, dict]] = {}


def warmed(name: str, splits) -> tuple[SearchSpace, dict]:
    """(space, warmed checkpoint) of a tiny space after 1 warm-up epoch, built once per session."""
    key = (name, splits.fingerprint()["fingerprint"])  # callers may bring other splits
    if key not in _WARMED:
        space = get_space(name, **TINY[name])
        cfg = from_dict(WarmupConfig, {"epochs": 1, "batch_size": 64, "probe_archs": 0,
                                       "augment": {"crop_padding": 1, "flip": False}})
        checkpoint = warmup_supernet(space, splits, cfg, torch.device("cpu"), seed=0)
        _WARMED[key] = (space, checkpoint)
    return _WARMED[key]


#: Keys of ``search.wpnas`` (the rest are the runner's ``search`` keys).
WPNAS_KEYS = {f.name for f in dataclasses.fields(WPNASConfig)}


def search_cfg(**overrides: Any) -> SearchConfig:
    """A few steps of the real loop; keys override (nested dicts replace whole sections).

    WPNAS keys (``reward``, ``hypernet``, ``alpha_lr``, ...) may be given flat: they go to
    ``search.wpnas``."""
    cfg: dict[str, Any] = {
        "epochs": 2,
        "steps_per_epoch": 4,
        "batch_size": 32,
        "valid_batch_size": 64,
        "eval_every": 1,
        "eval_valid_limit": 100,
        "eval_batch_size": 100,
        "calib_batches": 1,
        "augment": {"crop_padding": 1, "flip": False},
        "log_every": 3600.0,
    }
    wpnas: dict[str, Any] = {"alpha_lr": 0.05}
    for key, value in overrides.items():
        (wpnas if key in WPNAS_KEYS else cfg)[key] = value
    cfg["wpnas"] = {**wpnas, **cfg.get("wpnas", {})}
    return from_dict(SearchConfig, cfg, where="search")


@pytest.fixture()
def kit(digits):
    return SimpleNamespace(digits=digits, warmed=lambda name: warmed(name, digits), cfg=search_cfg, ToySpace=ToySpace)


@pytest.fixture(params=sorted(TINY))
def space_name(request) -> str:
    return request.param
