"""The cost of a network, in the units NATS-Bench reports (a leaf module: no wpnas imports)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cost:
    """FLOPs (multiply-accumulates) and parameters of a stand-alone network, in millions."""

    flops_m: float
    params_m: float
