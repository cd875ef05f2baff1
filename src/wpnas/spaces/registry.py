"""Name -> search-space class registry (``get_space("nats_tss", C=16, N=5)``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wpnas.errors import ConfigError
from wpnas.spaces.base import SearchSpace

_SPACES: dict[str, Callable[..., SearchSpace]] = {}


def register_space(name: str) -> Callable[[type[SearchSpace]], type[SearchSpace]]:
    def wrap(cls: type[SearchSpace]) -> type[SearchSpace]:
        if name in _SPACES and _SPACES[name] is not cls:
            raise ValueError(f"search space {name!r} registered twice")
        cls.name = name
        _SPACES[name] = cls
        return cls

    return wrap


def available_spaces() -> list[str]:
    return sorted(_SPACES)


def get_space(name: str, options: Mapping[str, Any] | None = None, **kwargs: Any) -> SearchSpace:
    """A configured space; unknown names and options fail with the valid ones listed."""
    if name not in _SPACES:
        raise ConfigError(f"unknown search space {name!r}; expected one of {available_spaces()}")
    merged = {**(options or {}), **kwargs}
    return _SPACES[name](**merged)


@dataclass(frozen=True)
class SpaceConfig:
    """``space:`` in the parameters: a registry name and that space's options."""

    name: str = "nats_tss"
    options: dict[str, Any] = field(default_factory=dict)

    def build(self) -> SearchSpace:
        return get_space(self.name, self.options)
