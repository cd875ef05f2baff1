"""Project CLI (Kedro glue): ``kedro run`` that reports bad input in one line.

Kedro loads ``<package>.cli`` and lets its ``cli`` group override the built-in commands
(``kedro run``, and ``python -m wpnas`` through ``find_run_command``). ``run`` here is
Kedro's own run command with the same options; the one difference is that an error a user
can fix (:class:`wpnas.errors.WpnasError`: a parameter typo, a bad value, a missing path, a
checkpoint from another space) is printed as ``ConfigError: <message>`` on stderr with exit
status 1, instead of a few hundred lines of traceback through Kedro, pluggy and click. Every
other exception (a bug, a diverged training) keeps its full traceback.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

from wpnas.errors import WpnasError


def find_user_error(error: BaseException) -> WpnasError | None:
    """The WpnasError behind ``error`` (itself, or a cause/context such as a DatasetError's), if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, WpnasError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _run(*args: Any, **kwargs: Any) -> Any:
    try:
        return kedro_run.callback(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - only user errors are shortened, the rest re-raised
        user_error = find_user_error(error)
        if user_error is None:
            raise
        click.echo(f"{type(user_error).__name__}: {user_error}", err=True)
        sys.exit(1)


run = click.Command(
    name="run",
    callback=_run,
    params=list(kedro_run.params),
    help=kedro_run.help,
    short_help=kedro_run.short_help,
    context_settings=kedro_run.context_settings,
)


@click.group(name="wpnas")
def cli() -> None:
    """Project commands of wpnas."""


cli.add_command(run)
