"""Name -> search-method class registry (``get_method("wpnas")``), like ``get_space``.

Method modules register themselves with ``@register_method(name)``; importing
:mod:`wpnas.search` registers the built-in ones (the one import line a new method adds).
"""

from __future__ import annotations

from typing import Any

from wpnas.config import Registry

METHODS = Registry("search method")

register_method = METHODS.register
available_methods = METHODS.names


def check_method_name(name: str) -> str:
    return METHODS.check(name, "search.method")


def get_method(name: str) -> Any:
    """The registered :class:`~wpnas.search.methods.SearchMethod` subclass called ``name``."""
    return METHODS.get(name, "search.method")


def method_settings() -> dict[str, type]:
    """Section key under ``search`` -> settings dataclass, of every registered method."""
    return {cls.settings_key: cls.Settings for cls in METHODS.classes()}
