"""Name -> search-space class registry (``get_space("nats_tss", C=16, N=5)``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wpnas.config import Registry
from wpnas.errors import ConfigError
from wpnas.spaces.base import SearchSpace

SPACES = Registry("search space")

#: ``@register_space(name)`` on a :class:`SearchSpace` subclass registers it under ``name``.
register_space = SPACES.register
available_spaces = SPACES.names


def get_space(name: str, options: Mapping[str, Any] | None = None, **kwargs: Any) -> SearchSpace:
    """A configured space; unknown names and options fail with the valid ones listed."""
    merged = {**(options or {}), **kwargs}
    return SPACES.get(name)(**merged)


@dataclass(frozen=True)
class SpaceConfig:
    """``space:`` in the parameters: which space, and options per space name.

    Options are keyed by space so that switching spaces is one setting
    (``--params space.name=nats_sss``) and each space keeps its own options::

        space: {name: nats_tss, options: {nats_tss: {C: 16, N: 5}, nats_sss: {}}}
    """

    name: str = "nats_tss"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(k for k in self.options if k not in SPACES)
        if unknown:
            raise ConfigError(
                f"space.options: {unknown} are not search spaces; options are keyed by space name, "
                f"one of {available_spaces()} (e.g. options: {{nats_tss: {{C: 16, N: 5}}}})"
            )
        for key, value in self.options.items():
            if value is not None and not isinstance(value, Mapping):
                raise ConfigError(f"space.options.{key}: expected a mapping of options, got {value!r}")

    def build(self) -> SearchSpace:
        return get_space(self.name, self.options.get(self.name) or {})
