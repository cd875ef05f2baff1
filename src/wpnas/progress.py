"""Progress for long loops: a bar in a terminal, periodic log lines when redirected.

Redirected output (CI, ``nohup``, Kedro log files) gets one line every ``log_every``
seconds with position, elapsed time, ETA and the latest metrics, instead of a bar
that would spam carriage returns.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

logger = logging.getLogger("wpnas.progress")


def _fmt_seconds(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _fmt_metrics(metrics: Mapping[str, Any]) -> str:
    parts = []
    for k, v in metrics.items():
        parts.append(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}")
    return " ".join(parts)


class Progress:
    """Iterate with progress; ``update_metrics`` attaches loss/accuracy to the display.

    ``initial`` units count as done already (a resumed stage shows its true position,
    ``3/4``, and its ETA from the units done in this run).

    Redirected output gets a line every ``log_every`` seconds and, with ``log_final``, one when
    the loop completes (callers that log their own summary switch that off)."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "it",
        log_every: float = 30.0,
        interactive: bool | None = None,
        enabled: bool = True,
        log_final: bool = True,
        initial: int = 0,
    ) -> None:
        self.total = int(total)
        self.initial = int(initial)  # units already done before this run (a resumed stage)
        self.desc = desc
        self.unit = unit
        self.log_every = log_every
        self.enabled = enabled
        self.log_final = log_final
        self.interactive = sys.stderr.isatty() if interactive is None else interactive
        self.count = self.initial
        self._part = 0.0  # the fraction of the current unit done (within), reset by advance
        self._inside = ""
        self.metrics: dict[str, Any] = {}
        self._start = time.monotonic()
        self._last_log = self._start
        self._bar = None
        if self.enabled and self.interactive:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, initial=self.initial, desc=desc, unit=unit, leave=False,
                             dynamic_ncols=True)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def eta(self) -> float:
        done = self.count + self._part - self.initial
        if done <= 0:
            return float("nan")
        return self.elapsed / done * max(0.0, self.total - self.count - self._part)

    def line(self) -> str:
        eta = self.eta()
        eta_text = _fmt_seconds(eta) if eta == eta else "?"
        inside = f" ({self._inside})" if self._inside else ""
        text = (
            f"{self.desc}: {self.count}/{self.total} {self.unit}{inside} "
            f"elapsed {_fmt_seconds(self.elapsed)} eta {eta_text}"
        )
        if self.metrics:
            text += " | " + _fmt_metrics(self.metrics)
        return text

    def update_metrics(self, **metrics: Any) -> None:
        self.metrics.update(metrics)
        if self._bar is not None:
            self._bar.set_postfix({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in metrics.items()})

    def within(self, done: int, total: int | None, what: str = "batch") -> None:
        """Progress inside the current unit (batch ``done`` of ``total`` of an epoch): a long
        unit still gets its line every ``log_every`` seconds, with the ETA from the fraction
        done, and the bar shows the position. ``total`` None (unknown length) shows the count."""
        self._part = min(done / total, 1.0) if total else 0.0
        self._inside = f"{what} {done}/{total}" if total else f"{what} {done}"
        if not self.enabled:
            return
        now = time.monotonic()
        if self._bar is not None:
            if now - self._last_log >= 1.0:  # the bar's postfix, at most once a second
                self._last_log = now
                self._bar.set_postfix_str(self._inside, refresh=True)
            return
        if now - self._last_log >= self.log_every:
            self._last_log = now
            logger.info(self.line())

    def advance(self, n: int = 1) -> None:
        self.count += n
        self._part, self._inside = 0.0, ""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        final = self.count >= self.total and self.log_final
        if now - self._last_log >= self.log_every or final:
            self._last_log = now
            logger.info(self.line())

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def track(items: Iterable[T], total: int, desc: str, unit: str = "it", **kwargs: Any) -> Iterator[T]:
    """Wrap an iterable with :class:`Progress`."""
    with Progress(total, desc, unit=unit, **kwargs) as progress:
        for item in items:
            yield item
            progress.advance()
