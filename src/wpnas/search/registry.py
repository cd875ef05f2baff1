"""Name -> search-method class registry (``get_method("wpnas")``), like ``get_space``.

Method modules register themselves with ``@register_method(name)``; importing
:mod:`wpnas.search` registers the built-in ones (``wpnas``, ``spos_evolution``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wpnas.errors import ConfigError

_METHODS: dict[str, type] = {}


def register_method(name: str) -> Callable[[Any], Any]:
    def wrap(cls: type) -> type:
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"search method {name!r} registered twice")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return wrap


def available_methods() -> list[str]:
    return sorted(_METHODS)


def check_method_name(name: str) -> str:
    if name not in _METHODS:
        raise ConfigError(f"search.method: unknown search method {name!r}; expected one of {available_methods()}")
    return name


def get_method(name: str) -> type:
    return _METHODS[check_method_name(name)]
