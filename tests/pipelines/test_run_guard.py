"""Run guard: one run per project folder, outputs checked before training, honest MLflow status."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from tests.conftest import run_kedro
from wpnas.errors import RunConflictError, StorageError
from wpnas.pipelines.run_guard import LOCK_FILE, TAG_END_REASON, TAG_HOST, TAG_PID, read_lock


def _client() -> mlflow.tracking.MlflowClient:
    return mlflow.tracking.MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield child
    child.kill()
    child.wait()


def _write_lock(project: Path, pid: int, **extra) -> Path:
    path = project / LOCK_FILE
    info = {"pid": pid, "host": socket.gethostname(), "pid_start": None, "started": "2026-01-02T03:04:05+00:00",
            "pipeline": "search", "command": "kedro run --pipelines=search", "mlflow_run_id": "0123abcd", **extra}
    path.write_text(json.dumps(info))
    return path


# ---------------------------------------------------------------------------------- the lock


@pytest.mark.slow
def test_second_run_refused_while_another_holds_the_folder(kedro_project, live_process):
    from kedro.framework.session import KedroSession

    lock = _write_lock(kedro_project, live_process.pid)
    before = lock.read_text()
    with pytest.raises(RunConflictError) as err:
        run_kedro(kedro_project, "data_processing")
    message = str(err.value)
    for part in (f"pid {live_process.pid}", socket.gethostname(), "2026-01-02T03:04:05", "'search'", "0123abcd",
                 str(lock)):
        assert part in message, part
    assert lock.read_text() == before  # the holder's lock is untouched
    assert not (kedro_project / "data/03_primary/image_splits.pt").exists()
    # Reading the project (what `kedro catalog list` / `kedro viz` do) runs no pipeline: no lock needed.
    with KedroSession.create(project_path=kedro_project) as session:
        assert "image_splits" in session.load_context().catalog.keys()
    assert lock.read_text() == before


@pytest.mark.slow
def test_dead_runs_lock_and_mlflow_run_are_recovered_and_an_error_ends_failed(kedro_project, live_process):
    """One session for three checks: a dead run's lock is taken over, its MLflow run (left RUNNING)
    is marked KILLED, and this run, whose node fails, ends FAILED with the reason and frees the lock."""
    client = _client()
    experiment_id = client.create_experiment("wpnas")
    host = socket.gethostname()
    dead_pid = _dead_pid()
    dead = client.create_run(experiment_id, tags={TAG_PID: str(dead_pid), TAG_HOST: host})
    alive = client.create_run(experiment_id, tags={TAG_PID: str(live_process.pid), TAG_HOST: host})
    elsewhere = client.create_run(experiment_id, tags={TAG_PID: str(dead_pid), TAG_HOST: host + "-other"})
    lock = _write_lock(kedro_project, dead_pid, mlflow_run_id=dead.info.run_id)
    with pytest.raises(Exception, match="image_splits"):  # warmup without image splits: its input cannot load
        run_kedro(kedro_project, "warmup")
    assert not lock.exists()
    made = {dead.info.run_id, alive.info.run_id, elsewhere.info.run_id}
    (run,) = [r for r in client.search_runs([experiment_id]) if r.info.run_id not in made]
    assert run.info.status == "FAILED" and "image_splits" in run.data.tags[TAG_END_REASON]
    assert run.data.tags[TAG_PID] == str(os.getpid()) and run.data.tags[TAG_HOST] == host
    assert client.get_run(dead.info.run_id).info.status == "KILLED"
    reason = client.get_run(dead.info.run_id).data.tags[TAG_END_REASON]
    assert f"process {dead_pid} on {host} ended without closing the run" in reason and run.info.run_id in reason
    assert client.get_run(alive.info.run_id).info.status == "RUNNING"
    assert client.get_run(elsewhere.info.run_id).info.status == "RUNNING"  # another host: cannot tell


def test_lock_is_exclusive_and_a_dead_holder_is_replaced_with_a_warning(tmp_path, live_process, monkeypatch):
    from wpnas.pipelines import run_guard

    warnings = []
    monkeypatch.setattr(run_guard.logger, "warning", lambda msg, *args: warnings.append(msg % args))
    path = tmp_path / LOCK_FILE
    path.parent.mkdir()
    _write_lock(tmp_path, _dead_pid())
    lock = run_guard.RunLock.acquire(path, "warmup")
    assert read_lock(path)["pid"] == os.getpid() and read_lock(path)["pipeline"] == "warmup"
    assert len(warnings) == 1 and "took over the lock" in warnings[0] and "'search'" in warnings[0]
    lock.update(mlflow_run_id="feedbeef")
    assert read_lock(path)["mlflow_run_id"] == "feedbeef"
    lock.release()
    assert not path.exists()
    _write_lock(tmp_path, live_process.pid)
    with pytest.raises(RunConflictError, match=f"pid {live_process.pid} on host"):
        run_guard.RunLock.acquire(path, "warmup")
    assert read_lock(path)["pid"] == live_process.pid
    _write_lock(tmp_path, live_process.pid, host="elsewhere")  # cannot tell: never taken over
    with pytest.raises(RunConflictError, match="another host"):
        run_guard.RunLock.acquire(path, "warmup")


# ---------------------------------------------------------------------------------- MLflow status


def _start_long_run(project: Path, uri: str, extra: str = "") -> subprocess.Popen:
    """`kedro run` of data processing + a warm-up far too long to finish."""
    kedro = Path(sys.executable).with_name("kedro")
    params = "data.image_size=8,data.train_limit=300,warmup.epochs=100000,warmup.batch_size=32,warmup.probe_every=1000"
    params += extra
    return subprocess.Popen([str(kedro), "run", "--pipelines=search", "--params", params], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS="1", MLFLOW_TRACKING_URI=uri))


def _wait_for_run(child: subprocess.Popen, lock: Path, timeout_s: float = 240) -> str:
    """The MLflow run id, once the child holds the lock and its run is open (recorded in the lock)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and child.poll() is None:
        info = read_lock(lock)
        if info and info.get("pid") == child.pid and info.get("mlflow_run_id"):
            return info["mlflow_run_id"]
        time.sleep(0.2)
    child.kill()
    raise AssertionError(f"no run started: {child.communicate(timeout=60)[0][-3000:]}")


@pytest.mark.slow
def test_sigterm_and_ctrl_c_end_the_run_killed_and_free_the_folder(kedro_project):
    """Two runs in two project folders, side by side (one slow start-up for both)."""
    second = kedro_project.parent / "project2"
    shutil.copytree(kedro_project, second)
    cases = {signal.SIGTERM: kedro_project, signal.SIGINT: second}
    children = {signum: _start_long_run(project, f"sqlite:///{project / 'mlflow.db'}")
                for signum, project in cases.items()}
    try:
        run_ids = {signum: _wait_for_run(children[signum], project / LOCK_FILE) for signum, project in cases.items()}
        time.sleep(1.0)
        for signum, child in children.items():
            child.send_signal(signum)
        outputs = {signum: child.communicate(timeout=180)[0] for signum, child in children.items()}
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
                child.wait()
    for signum, project in cases.items():
        assert children[signum].returncode != 0
        run = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{project / 'mlflow.db'}").get_run(run_ids[signum])
        assert run.info.status == "KILLED", outputs[signum][-3000:]
        assert run.data.tags[TAG_END_REASON] == f"interrupted by {signal.Signals(signum).name}"
        assert not (project / LOCK_FILE).exists()


@pytest.mark.slow
def test_sigterm_during_a_two_process_warmup_ends_the_run_killed(kedro_project):
    """Issue 23: the elastic launcher replaced the signal handlers while its workers ran, and its
    SignalException (an Exception) ended the run FAILED."""
    uri = f"sqlite:///{kedro_project / 'mlflow.db'}"
    child = _start_long_run(kedro_project, uri, ",run.distributed.nproc_per_node=2,run.distributed.backend=gloo")
    try:
        run_id = _wait_for_run(child, kedro_project / LOCK_FILE)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not _spawned_workers(child.pid):
            time.sleep(0.5)
        assert _spawned_workers(child.pid), "the warm-up never started its workers"
        time.sleep(3.0)
        child.send_signal(signal.SIGTERM)
        output = child.communicate(timeout=180)[0]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode != 0
    run = mlflow.tracking.MlflowClient(tracking_uri=uri).get_run(run_id)
    assert run.info.status == "KILLED", output[-3000:]
    assert run.data.tags[TAG_END_REASON] == "interrupted by SIGTERM"
    assert not (kedro_project / LOCK_FILE).exists()


def _spawned_workers(pid: int) -> list[str]:
    out = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout
    return [line for line in out.splitlines() if "spawn_main" in line]


# ---------------------------------------------------------------------------------- output locations


@pytest.mark.slow
def test_unwritable_output_folder_fails_before_any_node(kedro_project):
    models = kedro_project / "data/06_models"
    models.rmdir()
    models.write_text("a file where the models folder should be")  # not writable, even for root
    with pytest.raises(StorageError, match="06_models") as err:
        run_kedro(kedro_project, "search")
    assert "warmed_supernet" in str(err.value)
    assert not (kedro_project / "data/03_primary/image_splits.pt").exists()  # nothing ran
    assert not (kedro_project / LOCK_FILE).exists()


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod")
def test_read_only_output_folder_fails_before_any_node(kedro_project):
    models = kedro_project / "data/06_models"
    models.chmod(0o555)
    try:
        with pytest.raises(StorageError, match="not writable"):
            run_kedro(kedro_project, "search")
    finally:
        models.chmod(0o755)
    assert not (kedro_project / "data/03_primary/image_splits.pt").exists()
