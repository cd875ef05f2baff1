"""What a run prints: known harmless library warnings filtered out.

Logging levels live in ``conf/logging.yml`` (Kedro reads it, or ``$KEDRO_LOGGING_CONFIG``).
A logging config cannot filter Python warnings, so the few known, harmless ones are filtered
here, each by its category and message, when the project settings are imported:

- as warnings (``warnings.filterwarnings``), and
- as log records of the ``py.warnings`` logger, where Kedro sends warnings
  (``logging.captureWarnings``). MLflow's type-hint warning needs this second way: MLflow
  raises it inside ``warnings.catch_warnings()`` with its own "once" filter, which overrides
  any ``filterwarnings`` of ours.
"""

from __future__ import annotations

import logging
import re
import warnings

#: (category, message regex) of warnings that say nothing a wpnas user can act on.
KNOWN_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    # OmegaConf 2.4 deprecates register_new_resolver, which Kedro and kedro-mlflow call.
    (UserWarning, r"register_new_resolver\(\) is deprecated"),
    # MLflow 3, when kedro-mlflow's PythonModel is defined; the text carries raw ANSI colour codes.
    (UserWarning, r"(\x1b\[[0-9;]*m)?Add type hints to the `predict` method"),
)


class KnownWarningsFilter(logging.Filter):
    """Drops ``py.warnings`` records of :data:`KNOWN_WARNINGS` ("<file>:<line>: <Category>: <message>")."""

    def __init__(self) -> None:
        super().__init__()
        self._patterns = [re.compile(rf"\b{category.__name__}: {message}") for category, message in KNOWN_WARNINGS]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not any(p.search(text) for p in self._patterns)


def quiet_known_warnings() -> None:
    """Hide :data:`KNOWN_WARNINGS`; every other warning still shows. Idempotent."""
    for category, message in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    py_warnings = logging.getLogger("py.warnings")
    if not any(isinstance(f, KnownWarningsFilter) for f in py_warnings.filters):
        py_warnings.addFilter(KnownWarningsFilter())
