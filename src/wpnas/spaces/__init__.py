"""Search spaces: the "L decisions x K choices" protocol and its implementations."""

from wpnas.spaces.base import ArchEncoding, Arch, Cost, Decision, SearchSpace
from wpnas.spaces.registry import SpaceConfig, available_spaces, get_space, register_space

# Importing the modules registers the spaces.
from wpnas.spaces import darts, mobilenet, nats_sss, nats_tss  # noqa: E402,F401  isort: skip

__all__ = [
    "Arch",
    "ArchEncoding",
    "Cost",
    "Decision",
    "SearchSpace",
    "SpaceConfig",
    "available_spaces",
    "get_space",
    "register_space",
]
