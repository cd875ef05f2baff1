"""What a run prints: catalog chatter at DEBUG, known library warnings hidden, user errors in one line."""

import json
import logging
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from wpnas.cli import find_user_error
from wpnas.errors import CheckpointError, ConfigError
from wpnas.pipelines.logs import quiet_known_warnings

REPO = Path(__file__).resolve().parents[2]


def test_logging_config_quiets_the_catalog_logger():
    from kedro.io import DataCatalog

    config = yaml.safe_load((REPO / "conf" / "logging.yml").read_text())
    # the logger that says "Loading data from ..." / "Saving data to ..." in this Kedro version
    name = DataCatalog()._logger.name
    assert config["loggers"][name]["level"] == "WARNING"
    assert config["loggers"]["kedro"]["level"] == "INFO"


def test_known_warnings_are_hidden_and_others_kept(caplog):
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        quiet_known_warnings()
        warnings.warn("register_new_resolver() is deprecated and will be removed", UserWarning)
        warnings.warn("something a user should see", UserWarning)
    assert [str(w.message) for w in shown] == ["something a user should see"]
    # MLflow raises its warning under its own "once" filter, so it is also dropped where Kedro
    # logs warnings (logging.captureWarnings: logger py.warnings, "<file>:<line>: <Category>: <text>")
    caplog.set_level(logging.WARNING, logger="py.warnings")
    log = logging.getLogger("py.warnings")
    log.warning("%s", "/x/mlflow/pyfunc/utils/data_validation.py:187: UserWarning: \x1b[33mAdd type hints to "
                      "the `predict` method to enable data validation\x1b[0m")
    log.warning("%s", "/x/y.py:3: UserWarning: something a user should see")
    assert [r.getMessage() for r in caplog.records] == ["/x/y.py:3: UserWarning: something a user should see"]


def test_user_error_is_found_behind_a_wrapper():
    from kedro.io.core import DatasetError

    try:
        try:
            raise CheckpointError("checkpoint was written for nats_sss")
        except CheckpointError as err:
            raise DatasetError("failed while loading data") from err
    except DatasetError as wrapped:
        assert isinstance(find_user_error(wrapped), CheckpointError)
    assert find_user_error(RuntimeError("a bug")) is None
    assert isinstance(find_user_error(ConfigError("x")), ConfigError)


@pytest.mark.parametrize("content", [b"", b'{"arch": "|nor_conv_3x3~0|+|'])
def test_an_empty_or_truncated_artifact_is_one_line_naming_its_file(tmp_path, content):
    # Before: a Kedro traceback ending in "Expecting value: line 1 column 1"
    from kedro.io import DataCatalog
    from kedro.io.core import DatasetError

    from wpnas.cli import unreadable_artifact

    path = tmp_path / "final_genotype.json"
    (path / "2026-01-01T00.00.00.000Z").mkdir(parents=True)
    (path / "2026-01-01T00.00.00.000Z" / "final_genotype.json").write_bytes(content)
    config = {"final_genotype": {"type": "wpnas.pipelines.datasets.VersionedArtifactDataset", "versioned": True,
                                 "dataset": {"type": "json.JSONDataset", "filepath": str(path)}}}
    with pytest.raises(DatasetError) as info:
        DataCatalog.from_config(config).load("final_genotype")
    line = unreadable_artifact(info.value)
    assert line is not None and "\n" not in line
    assert line.startswith(f"DataError: artifact '{path}/2026-01-01T00.00.00.000Z/final_genotype.json' cannot be "
                           "read (JSONDecodeError: ")
    assert "empty or truncated" in line and "--load-versions" in line
    assert unreadable_artifact(RuntimeError("a bug")) is None


@pytest.mark.slow
def test_parameter_typo_prints_one_line_and_fails(kedro_project):
    kedro = Path(sys.executable).with_name("kedro")
    env = dict(os.environ, KEDRO_DISABLE_TELEMETRY="true", COLUMNS="200")
    done = subprocess.run([str(kedro), "run", "--params", "search.epochz=3"], cwd=kedro_project, env=env,
                          capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-3000:]
    assert "ConfigError: search: unknown setting(s) ['epochz'] (did you mean 'epochs'?)" in done.stderr
    assert "Traceback" not in output and len(output.splitlines()) < 30, output
    assert "Add type hints" not in output and "register_new_resolver" not in output


@pytest.mark.slow
def test_prune_lists_then_removes_old_versions_and_waits_for_a_run(kedro_project):
    kedro = Path(sys.executable).with_name("kedro")
    env = dict(os.environ, KEDRO_DISABLE_TELEMETRY="true", COLUMNS="200")
    artifact = kedro_project / "data" / "06_models" / "warmed_supernet.pt"
    old, new = "2026-11-28T10.00.00.000Z", "2026-11-28T11.00.00.000Z"
    for version in (old, new):
        (artifact / version).mkdir(parents=True)
        (artifact / version / "warmed_supernet.pt").write_bytes(b"x" * 2048)

    def prune(*args):
        return subprocess.run([str(kedro), "prune", "--keep", "1", *args], cwd=kedro_project, env=env,
                              capture_output=True, text=True, timeout=300)

    listed = prune()
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert f"warmed_supernet.pt/{old}" in listed.stdout and "would be removed" in listed.stdout
    assert (artifact / old).is_dir()  # only listed
    lock = kedro_project / "data" / ".wpnas-run.lock"

    def hold(pid):
        lock.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "pid_start": None,
                                    "started": "2026-01-02T03:04:05+00:00", "pipeline": "search"}))

    hold(os.getpid())  # a live run
    busy = prune("--apply")
    assert busy.returncode == 1 and "RunConflictError: another wpnas run holds this project folder" in busy.stderr
    assert (artifact / old).is_dir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    hold(dead.pid)  # a run killed with SIGKILL left its lock (before: prune refused until it was deleted by hand)
    done = prune("--apply")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 old version(s)" in done.stdout and "removed" in done.stdout
    assert sorted(p.name for p in artifact.iterdir()) == [new]
    assert not lock.exists()  # taken over, then released


@pytest.mark.slow
def test_direct_kedro_call_leaves_pyproject_unchanged(kedro_project):
    """kedro-telemetry is off by the project's own `.telemetry`, not by an environment variable:
    a direct `kedro` call must not add [tool.kedro_telemetry] to pyproject.toml (nor try to send)."""
    kedro = Path(sys.executable).with_name("kedro")
    env = {k: v for k, v in os.environ.items() if k not in ("KEDRO_DISABLE_TELEMETRY", "DO_NOT_TRACK")}
    before = (kedro_project / "pyproject.toml").read_bytes()
    done = subprocess.run([str(kedro), "registry", "list"], cwd=kedro_project, env=env,
                          capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert (kedro_project / "pyproject.toml").read_bytes() == before
    assert "anonymous usage data" not in output and "Failed to send" not in output


def test_a_mistyped_pipeline_or_environment_is_one_line_with_the_nearest_name(tmp_path):
    from wpnas.cli import check_run_targets

    (tmp_path / "conf" / "base").mkdir(parents=True)
    (tmp_path / "conf" / "smoke").mkdir()
    with pytest.raises(ConfigError, match=r"--pipelines: unknown pipeline\(s\) \['serach'\] \(did you mean 'search'\?\)"):
        check_run_targets(["serach"], None, project=tmp_path)
    with pytest.raises(ConfigError, match=r"--env: no environment 'smok' \(no folder conf/smok\) \(did you mean 'smoke'\?\)"):
        check_run_targets([], "smok", project=tmp_path)
    check_run_targets(["search", "reporting"], "smoke", project=tmp_path)  # known names pass
    check_run_targets([], "elsewhere", conf_source="/some/conf", project=tmp_path)  # another conf source: Kedro checks


@pytest.mark.slow
def test_a_mistyped_pipeline_prints_no_traceback(kedro_project):
    kedro = Path(sys.executable).with_name("kedro")
    env = dict(os.environ, COLUMNS="200")
    done = subprocess.run([str(kedro), "run", "--pipelines=serach"], cwd=kedro_project, env=env,
                          capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 1 and "(did you mean 'search'?)" in done.stderr, output[-3000:]
    assert "Traceback" not in output and len(output.splitlines()) < 10, output
