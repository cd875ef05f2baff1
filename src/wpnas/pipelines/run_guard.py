"""Run guard: one run per project folder, outputs checked before training, honest MLflow status.

- **Lock.** ``kedro run`` takes ``data/.wpnas-run.lock`` (created with ``O_EXCL``) before the
  first node and removes it at the end. A second run in the same folder refuses with a
  message naming the holder (pid, host, start time, pipeline, MLflow run). A lock whose
  process is dead (same host) is taken over with a warning. Commands that only read the
  project (``kedro viz``, ``kedro catalog``) run no pipeline and take no lock.
- **Outputs.** Before the first node, every output file of the pipeline must have a
  writable folder and its disk room for the expected size (:func:`expected_output_bytes`).
- **Status.** SIGTERM is turned into :class:`RunTerminated` (a ``KeyboardInterrupt``) while
  the run lasts. A run interrupted by Ctrl-C or SIGTERM ends KILLED, a run that fails
  ends FAILED, each with a ``wpnas.end_reason`` tag. Each run records ``wpnas.pid``,
  ``wpnas.host`` and ``wpnas.pid_start``; a RUNNING run of the experiment whose process is
  gone (SIGKILL, out of memory, power loss) is marked KILLED at the next start.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

from wpnas import tracking
from wpnas.errors import RunConflictError
from wpnas.io.atomic import atomic_write

logger = logging.getLogger(__name__)

LOCK_FILE = Path("data") / ".wpnas-run.lock"
TAG_PID = "wpnas.pid"
TAG_HOST = "wpnas.host"
TAG_PID_START = "wpnas.pid_start"
TAG_END_REASON = "wpnas.end_reason"

#: Signals turned into exceptions while a run lasts (SIGINT already raises KeyboardInterrupt).
GUARDED_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class RunTerminated(KeyboardInterrupt):
    """The run received SIGTERM (or SIGHUP): unwinds like Ctrl-C, so ``except Exception`` cannot swallow it."""


# --------------------------------------------------------------------------- processes


def hostname() -> str:
    return socket.gethostname()


def process_start(pid: int) -> str | None:
    """An identity token of process ``pid`` (its start time in clock ticks, Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def process_alive(pid: int, start: str | None = None) -> bool:
    """Whether ``pid`` runs on this host (and, when ``start`` is known, is the same process)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat[stat.rindex(")") + 2] in "ZX":  # zombie: dead, not yet reaped
            return False
    current = process_start(pid)
    return not (start and current and start != current)


# --------------------------------------------------------------------------- lock file


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def read_lock(path: Path) -> dict[str, Any] | None:
    """The lock's JSON content; None when absent, empty or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def describe_holder(info: dict[str, Any]) -> str:
    run = info.get("mlflow_run_id") or "not started yet"
    return (
        f"pid {info.get('pid')} on host {info.get('host')!r}, started {info.get('started')}, "
        f"pipeline {info.get('pipeline')!r}, MLflow run {run} (command: {info.get('command')!r})"
    )


def _holder_alive(info: dict[str, Any]) -> bool | None:
    """True / False for a holder on this host; None when it runs on another host (cannot tell)."""
    if info.get("host") != hostname():
        return None
    try:
        pid = int(info.get("pid"))
    except (TypeError, ValueError):
        return False
    if pid == os.getpid():
        # This process: a lock left by an earlier in-process session that did not end cleanly.
        return _GUARD is not None and _GUARD.lock is not None and _GUARD.lock.info.get("pid_start") == info.get(
            "pid_start"
        )
    return process_alive(pid, info.get("pid_start"))


@dataclass
class RunLock:
    """The project folder's lock file, held by this process."""

    path: Path
    info: dict[str, Any]

    @classmethod
    def acquire(cls, path: Path, pipeline: str, wait_s: float = 2.0) -> RunLock:
        """Create ``path`` atomically; refuse if a live run holds it; take over a dead run's lock."""
        path.parent.mkdir(parents=True, exist_ok=True)
        info = {
            "pid": os.getpid(),
            "host": hostname(),
            "pid_start": process_start(os.getpid()),
            "started": _now(),
            "pipeline": pipeline,
            "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
            "mlflow_run_id": None,
        }
        payload = json.dumps(info, indent=1).encode()
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(payload)
                return cls(path, info)
            other = read_lock(path)
            if other is None and time.monotonic() < deadline:
                time.sleep(0.1)  # being written by its creator, or removed right now
                continue
            alive = None if other is None else _holder_alive(other)
            if other is not None and alive is not False:
                where = "" if alive else " (on another host: this one cannot tell whether it still runs)"
                raise RunConflictError(
                    f"another wpnas run holds this project folder{where}: {describe_holder(other)}. Runs in one "
                    f"folder would mix each other's artifacts; wait for it to end or use another project folder. "
                    f"If that run is gone, delete {str(path)!r}"
                )
            if _take_over(path, other, payload):
                logger.warning(
                    "took over the lock %s of a run that is gone (%s); its outputs may be incomplete",
                    path, describe_holder(other) if other else "unreadable lock file",
                )
                return cls(path, info)

    def update(self, **fields: Any) -> None:
        """Rewrite the lock with more about this run (e.g. its MLflow run id), atomically."""
        self.info.update(fields)
        with atomic_write(self.path, "w", what="lock file") as handle:
            handle.write(json.dumps(self.info, indent=1))

    def release(self) -> None:
        """Remove the lock if it is still ours."""
        current = read_lock(self.path)
        if current is not None and current.get("pid") == self.info["pid"] and current.get(
            "pid_start"
        ) == self.info["pid_start"] and current.get("started") == self.info["started"]:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def _take_over(path: Path, stale: dict[str, Any] | None, payload: bytes) -> bool:
    """Replace a dead run's lock by ours, under a short-lived mutex so two newcomers cannot both win."""
    mutex = path.with_name(path.name + ".takeover")
    try:
        fd = os.open(mutex, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        with contextlib.suppress(OSError):
            if time.time() - mutex.stat().st_mtime > 30:  # left by a process killed mid-takeover
                mutex.unlink()
        time.sleep(0.1)
        return False
    os.close(fd)
    try:
        if read_lock(path) != stale:
            return False  # changed meanwhile: look again
        with atomic_write(path, what="lock file") as handle:
            handle.write(payload)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            mutex.unlink()


# --------------------------------------------------------------------------- the guarded run


@dataclass
class RunGuard:
    """Everything one run holds: the lock, signal handlers and its MLflow run id."""

    lock: RunLock | None = None
    run_id: str | None = None
    tracking_uri: str | None = None
    signal_name: str | None = None
    previous_handlers: dict[int, Any] = field(default_factory=dict)
    run_frame: Any = None
    closing: bool = False

    def install_signal_handlers(self, run_frame: Any = None) -> None:
        """Turn the guarded signals into exceptions; ``run_frame`` is the frame running the pipeline."""
        if threading.current_thread() is not threading.main_thread():
            return
        self.run_frame = run_frame
        for signum in GUARDED_SIGNALS:
            with contextlib.suppress(ValueError, OSError):
                self.previous_handlers[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.closing:
            return
        name = signal.Signals(signum).name
        if self.signal_name is None:
            self.signal_name = name
            logger.warning("received %s: stopping the run (MLflow run %s will end KILLED)", name, self.run_id)
            if self.run_frame is not None:
                threading.Thread(target=self._insist, args=(signum,), name="wpnas-interrupt", daemon=True).start()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise RunTerminated(f"received {name}")

    def _insist(self, signum: int, every_s: float = 1.0) -> None:
        """Raise again while the pipeline still runs: an exception raised by a signal handler is lost
        when the signal lands in a finaliser or weakref callback ("Exception ignored in ...")."""
        import _thread

        main = threading.main_thread().ident
        while True:
            time.sleep(every_s)
            if self.closing or not _frame_on_stack(self.run_frame, sys._current_frames().get(main)):
                return
            with contextlib.suppress(ValueError, RuntimeError):
                _thread.interrupt_main(signum)

    def restore_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self.previous_handlers.items():
            with contextlib.suppress(ValueError, OSError, TypeError):
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self.previous_handlers.clear()

    def end(self, status: str | None, reason: str | None) -> None:
        """Close the run: MLflow status (None: leave it to kedro-mlflow), reason tag, lock, handlers."""
        global _GUARD
        self.closing = True
        try:
            if self.run_id is not None and (status is not None or reason is not None):
                _end_mlflow_run(self.run_id, self.tracking_uri, status, reason)
        except Exception as err:  # noqa: BLE001 - never hide the run's own outcome
            logger.warning("could not record the end of MLflow run %s: %s", self.run_id, err)
        finally:
            self.restore_signal_handlers()
            if self.lock is not None:
                self.lock.release()
            if _GUARD is self:
                _GUARD = None


def _frame_on_stack(target: Any, frame: Any) -> bool:
    while frame is not None:
        if frame is target:
            return True
        frame = frame.f_back
    return False


def _pipeline_frame() -> Any:
    """The frame of the caller of the ``before_pipeline_run`` hooks (Kedro's ``session.run``)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename.replace(os.sep, "/")
        if "/pluggy/" not in name and not name.endswith("/run_guard.py"):
            return frame
        frame = frame.f_back
    return None


def _end_mlflow_run(run_id: str, uri: str | None, status: str | None, reason: str | None) -> None:
    import mlflow

    if status is not None:
        # Close the whole fluent stack, as kedro-mlflow does on an error: nested runs a node
        # opened, and our run (which can be on it more than once).
        while mlflow.active_run() is not None:
            mlflow.end_run(status)
    client = mlflow.tracking.MlflowClient(tracking_uri=uri)
    if status is not None:
        # Also when mlflow's own exit handler already closed it FINISHED.
        client.set_terminated(run_id, status)
    if reason is not None:
        client.set_tag(run_id, TAG_END_REASON, reason[:4000])


_GUARD: RunGuard | None = None
_ATEXIT_REGISTERED = False


def _at_exit() -> None:
    """The process ends while a run is open: an interrupt (KILLED) or a failure outside the nodes (FAILED)."""
    guard = _GUARD
    if guard is None:
        return
    if guard.signal_name is not None:
        guard.end("KILLED", f"interrupted by {guard.signal_name}")
    else:
        guard.end("FAILED", "the process exited before the pipeline finished (see the log)")


def _register_at_exit() -> None:
    # mlflow registers its handler (which ends an open run FINISHED) when imported, before this
    # one, so this one runs first; _end_mlflow_run also overrides a FINISHED status either way.
    global _ATEXIT_REGISTERED
    if not _ATEXIT_REGISTERED:
        atexit.register(_at_exit)
        _ATEXIT_REGISTERED = True


def mark_dead_runs(client: Any, experiment_id: str, own_run_id: str | None) -> list[str]:
    """Mark KILLED the RUNNING runs of ``experiment_id`` whose process (on this host) is gone."""
    host = hostname()
    marked = []
    runs = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=1000)
    for run in runs:
        tags = run.data.tags
        if run.info.run_id == own_run_id or tags.get(TAG_HOST) != host or TAG_PID not in tags:
            continue
        try:
            pid = int(tags[TAG_PID])
        except ValueError:
            continue
        if pid == os.getpid() or process_alive(pid, tags.get(TAG_PID_START)):
            continue
        client.set_terminated(run.info.run_id, "KILLED")
        client.set_tag(
            run.info.run_id,
            TAG_END_REASON,
            f"process {pid} on {host} ended without closing the run (SIGKILL, out of memory or a crash); "
            f"marked KILLED at {_now()} by the next run {own_run_id}",
        )
        logger.warning("MLflow run %s was left RUNNING by process %d, which is gone: marked KILLED",
                       run.info.run_id, pid)
        marked.append(run.info.run_id)
    return marked


def _pipeline_label(run_params: dict[str, Any]) -> str:
    names = run_params.get("pipeline_names") or [run_params.get("pipeline_name") or "__default__"]
    if isinstance(names, str):
        names = [names]
    return "+".join(n or "__default__" for n in names)


class RunLockHooks:
    """First thing of a run: take the folder's lock and check the outputs can be written."""

    def __init__(self) -> None:
        self._project_path: Path | None = None
        self._params: dict[str, Any] = {}

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        self._project_path = Path(context.project_path)
        self._params = dict(context.params)
        if _GUARD is not None:
            # An earlier session of this process was interrupted (e.g. Ctrl-C in a notebook).
            _GUARD.end("KILLED" if _GUARD.signal_name else "FAILED",
                       f"interrupted by {_GUARD.signal_name}" if _GUARD.signal_name
                       else "the session ended before the pipeline finished")

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        global _GUARD
        from wpnas import distributed

        if distributed.launched_by_torchrun() and int(os.environ.get("RANK", "0")) != 0:
            return  # under torchrun rank 0 holds the folder's lock and checks the outputs; other ranks save nothing
        project = self._project_path or Path(run_params.get("project_path") or ".")
        guard = RunGuard()
        guard.lock = RunLock.acquire(project / LOCK_FILE, _pipeline_label(run_params))
        _GUARD = guard
        _register_at_exit()
        guard.install_signal_handlers(_pipeline_frame())
        try:
            from wpnas.pipelines.preflight import check_pipeline_outputs

            check_pipeline_outputs(pipeline, catalog, self._params)
        except BaseException:
            guard.end(None, None)
            raise


class RunStatusHooks:
    """After kedro-mlflow opened the run: tag it with this process, mark dead runs; end it honestly."""

    @hook_impl(trylast=True)
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        guard = _GUARD
        if guard is None or not tracking.is_tracking():
            return
        import mlflow

        run = mlflow.active_run()
        guard.run_id = run.info.run_id
        guard.tracking_uri = mlflow.get_tracking_uri()
        pid_start = (guard.lock.info.get("pid_start") if guard.lock else None) or process_start(os.getpid())
        tracking.set_tags({TAG_PID: str(os.getpid()), TAG_HOST: hostname(), TAG_PID_START: pid_start or ""})
        try:
            mark_dead_runs(mlflow.tracking.MlflowClient(), run.info.experiment_id, guard.run_id)
        except Exception as err:  # noqa: BLE001 - a bookkeeping failure must not stop the run
            logger.warning("could not check for MLflow runs left RUNNING by dead processes: %s", err)
        if guard.lock is not None:
            guard.lock.update(mlflow_run_id=guard.run_id)
        try:
            from wpnas.pipelines.preflight import check_artifact_store

            check_artifact_store(mlflow.get_artifact_uri(), pipeline, catalog)
        except BaseException as err:
            # Kedro calls no error hook for a failing before_pipeline_run: close the run here
            guard.end("FAILED", f"{type(err).__name__}: {err}")
            raise

    @hook_impl(trylast=True)
    def after_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if _GUARD is not None:
            _GUARD.end(None, None)  # kedro-mlflow ended the run FINISHED

    @hook_impl(trylast=True)
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if _GUARD is not None:
            _GUARD.end("FAILED", f"{type(error).__name__}: {error}")
