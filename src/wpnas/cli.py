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

import re
import sys
from pathlib import Path
from typing import Any

import click
from kedro.framework.cli.project import run as kedro_run

from wpnas.errors import ConfigError, WpnasError


def find_user_error(error: BaseException) -> WpnasError | None:
    """The WpnasError behind ``error`` (itself, or a cause/context such as a DatasetError's), if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, WpnasError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def check_run_targets(pipelines: Any, env: str | None, conf_source: str | None = None,
                      project: Path | None = None) -> None:
    """Refuse an unknown pipeline or environment in one line, with the nearest names, before
    Kedro starts a session (which would print a long traceback first)."""
    from wpnas.config import did_you_mean
    from wpnas.pipelines.registry import all_pipelines

    names = [pipelines] if isinstance(pipelines, str) else list(pipelines or [])
    known = sorted(all_pipelines())
    unknown = [n for n in names if n and n not in known]
    if unknown:
        raise ConfigError(f"--pipelines: unknown pipeline(s) {unknown}{did_you_mean(unknown, known)}; "
                          f"expected some of {known}")
    if env and not conf_source:
        conf = (project or Path.cwd()) / "conf"
        if conf.is_dir() and not (conf / env).is_dir():
            envs = sorted(p.name for p in conf.iterdir() if p.is_dir() and p.name != "base")
            raise ConfigError(f"--env: no environment {env!r} (no folder conf/{env}){did_you_mean([env], envs)}; "
                              f"expected one of {envs}")


def unreadable_artifact(error: BaseException) -> str | None:
    """One line for an artifact that could not be read (an empty or truncated JSON or CSV, a
    file cut short by an older non-atomic write), or None when ``error`` is something else."""
    from kedro.io.core import DatasetError

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        cause = error.__cause__ or error.__context__
        if isinstance(error, DatasetError) and str(error).startswith("Failed while loading data from") and (
                isinstance(cause, (ValueError, EOFError, UnicodeDecodeError)) and not isinstance(cause, WpnasError)):
            where = re.search(r"filepath=(?:\w*Path\()?'?([^,')]+)", str(error))
            path = Path(where.group(1)) if where else None
            versions = sorted(path.glob(f"*/{path.name}")) if path is not None and path.is_dir() else []
            newest = versions[-1] if versions else path
            return (f"DataError: artifact {str(newest)!r} cannot be read ({type(cause).__name__}: "
                    f"{str(cause).splitlines()[0] if str(cause) else 'empty'}): it is empty or truncated. Delete that "
                    "version folder to fall back to the one before, or load another with --load-versions")
        error = cause
    return None


def _run(*args: Any, **kwargs: Any) -> Any:
    try:
        check_run_targets(kwargs.get("pipelines") or kwargs.get("pipeline"), kwargs.get("env"),
                          kwargs.get("conf_source"))
        return kedro_run.callback(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - only user errors are shortened, the rest re-raised
        user_error = find_user_error(error)
        if user_error is not None:
            click.echo(f"{type(user_error).__name__}: {user_error}", err=True)
            sys.exit(1)
        unreadable = unreadable_artifact(error)
        if unreadable is None:
            raise
        click.echo(unreadable, err=True)
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


@cli.command()
@click.option("--keep", type=int, default=3, show_default=True, help="Newest versions kept per artifact.")
@click.option("--env", "-e", default=None, help="Kedro environment whose catalog is read (default: base + local).")
@click.option("--apply", "apply_", is_flag=True, help="Delete them; without it the versions are only listed.")
def prune(keep: int, env: str | None, apply_: bool) -> None:
    """List (or with --apply delete) the versions of the catalog's artifacts beyond the newest --keep."""
    from pathlib import Path

    from wpnas.io.versions import remove_versions, stale_versions
    from wpnas.pipelines.run_guard import LOCK_FILE, RunLock

    lock = None
    try:
        stale = stale_versions(catalog_files(env), keep)
        if apply_:
            # refused while a live run holds the folder; a dead run's lock is taken over (with a warning)
            lock = RunLock.acquire(Path(LOCK_FILE), "prune")
    except WpnasError as error:
        click.echo(f"{type(error).__name__}: {error}", err=True)
        sys.exit(1)
    total = sum(item.size_bytes for item in stale)
    for item in stale:
        click.echo(f"{item.path}  {item.size_bytes / 2**20:.1f} MiB")
    verb = "removed" if apply_ else "would be removed (run again with --apply to delete)"
    if lock is not None:
        try:
            remove_versions(stale)
        finally:
            lock.release()
    click.echo(f"{len(stale)} old version(s), {total / 2**20:.1f} MiB, {verb}; the newest {keep} of each artifact kept")


def catalog_files(env: str | None = None) -> list[Any]:
    """The local file paths of the project's catalog entries (in the current folder's project)."""
    from pathlib import Path

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from wpnas.pipelines.preflight import dataset_filepath

    project = Path.cwd()
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env=env) as session:
        catalog = session.load_context().catalog
        paths = [dataset_filepath(catalog.get(name)) for name in catalog.keys()]
    return [project / p if not p.is_absolute() else p for p in paths if p is not None]
