"""Shared fixtures: the reference-data folder and a throw-away copy of the Kedro project."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test TEST_WORKERS=N` runs N pytest workers: one torch thread per process, the `kedro` and
    # script subprocesses too (they inherit it), or the workers' threads fight over the cores
    os.environ["OMP_NUM_THREADS"] = "1"

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()


def pytest_collection_modifyitems(config, items):
    """Under pytest-xdist (``make test TEST_WORKERS=N``: one test at a time per worker), the
    slow end-to-end tests first: the workers share them out early and fill the end with the short
    ones, instead of one worker running a long test alone at the end."""
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker collects; the same order in every one
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _one_intra_op_thread():
    """Tests use tiny tensors: one torch thread is faster on 2 cores and immune to busy neighbours."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tss():
    """The official NATS-TSS space (C=16, N=5)."""
    from wpnas.spaces import get_space

    return get_space("nats_tss")


@pytest.fixture
def sss():
    """The official NATS-SSS space (channels 8..64)."""
    from wpnas.spaces import get_space

    return get_space("nats_sss")


@pytest.fixture(scope="session")
def mlflow_store_template(tmp_path_factory) -> Path:
    """An empty SQLite MLflow store, created once per test process: MLflow builds its tables in a new
    store (about 3 s); each project copies this one instead, the same file a first run would create."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture()
def kedro_project(tmp_path, monkeypatch, mlflow_store_template):
    """A copy of the project's pyproject + conf in a temp dir, with its own SQLite MLflow store."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
    if (REPO / ".telemetry").is_file():  # the project's telemetry consent travels with it
        shutil.copy(REPO / ".telemetry", project / ".telemetry")
    shutil.copytree(REPO / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    (project / "src").mkdir()  # the package itself is installed; Kedro only checks the folder
    for layer in ("01_raw", "02_intermediate", "03_primary", "04_feature", "05_model_input",
                  "06_models", "07_model_output", "08_reporting"):
        (project / "data" / layer).mkdir(parents=True)
    shutil.copy(mlflow_store_template, project / "mlflow.db")
    uri = f"sqlite:///{project / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(project)
    return project


def versions(path: Path) -> list[str]:
    """The saved versions of a versioned catalog file, oldest first (``<path>/<version>/<name>``)."""
    path = Path(path)
    if not path.is_dir():
        return []
    return sorted(v.name for v in path.iterdir() if (v / path.name).is_file())


def latest(path: Path) -> Path:
    """The newest version of a versioned catalog file, e.g.
    ``latest(project / "data/06_models/warmed_supernet.pt")`` ->
    ``.../warmed_supernet.pt/2026-11-28T10.00.00.000Z/warmed_supernet.pt``."""
    found = versions(path)
    if not found:
        raise FileNotFoundError(f"{path}: no saved version (expected {path}/<version>/{Path(path).name})")
    return Path(path) / found[-1] / Path(path).name


def run_kedro(project: Path, pipeline: str, params: dict | None = None, env: str | None = None,
              load_versions: dict[str, str] | None = None):
    """Run one pipeline through a real KedroSession; return the MLflow run it logged.

    ``load_versions`` is ``kedro run --load-versions``: {catalog entry: version to load}."""
    import mlflow
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    nested: dict = {}
    for key, value in (params or {}).items():  # "a.b": 1 -> {"a": {"b": 1}}, as `kedro run --params` does
        *parents, leaf = key.split(".")
        target = nested
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env=env, runtime_params=nested) as session:
        session.run(pipeline_names=[pipeline], load_versions=load_versions or {})
    while mlflow.active_run() is not None:
        mlflow.end_run()
    client = mlflow.tracking.MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("wpnas")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0]


def die_after_save(monkeypatch, when=lambda state: True, error: type[BaseException] = KeyboardInterrupt) -> list:
    """Simulate a kill right after an in-progress checkpoint: ``StageCheckpoint.save`` writes
    its file, then raises ``error`` when ``when(state)``. Returns the states saved so far;
    ``monkeypatch.undo()`` ends the simulation."""
    from wpnas.io.stage_checkpoint import StageCheckpoint

    real = StageCheckpoint.save
    saved: list = []

    def save_then_die(self, state):
        real(self, state)
        saved.append(state)
        if when(state):
            raise error("killed after a checkpoint")

    monkeypatch.setattr(StageCheckpoint, "save", save_then_die)
    return saved


# -- SuperNet test helpers (every space) ---------------------------------------------------
def randomize_bn(model, seed: int = 0, mean_spread: float = 1.0) -> None:
    """Non-trivial BN affine parameters and running statistics (fresh ones are 1/0)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(torch.rand(n, generator=gen) - 0.5)
                m.running_mean.copy_(mean_spread * (torch.rand(n, generator=gen) - 0.5))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))


def random_offsets(space, seed: int):
    """Weakly-weight-sharing offsets (L, K, K) around 1, K = the space's offset kernel."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    k = space.offset_kernel
    return 1.0 + 0.3 * torch.randn(space.num_decisions, k, k, generator=gen)


def standalone(space, supernet, arch, offsets=None):
    """The stand-alone network of ``arch`` loaded with the SuperNet's extracted weights."""
    net = space.build_network(arch, supernet.in_channels, supernet.num_classes)
    net.load_state_dict(supernet.extract(arch, offsets), strict=True)
    return net


def assert_inherited_networks_match(space, supernet, x, archs, with_offsets: bool, atol: float, rtol: float) -> None:
    """Each architecture's stand-alone network, loaded with the SuperNet's weights (and offsets),
    computes the SuperNet path's function in eval and in train mode, and the paths differ from
    each other (the comparison would pass trivially otherwise). The SuperNet's state is restored
    after each train-mode pass, which updates its running statistics; it is left in eval mode."""
    import torch

    outputs = []
    for k, arch in enumerate(archs):
        offsets = random_offsets(space, k) if with_offsets else None
        net = standalone(space, supernet, arch, offsets)
        supernet.eval(), net.eval()
        with torch.no_grad():
            expected = supernet(x, arch, offsets)
            torch.testing.assert_close(net(x), expected, atol=atol, rtol=rtol)
        state = {key: value.clone() for key, value in supernet.state_dict().items()}
        supernet.train(), net.train()
        with torch.no_grad():
            torch.testing.assert_close(net(x), supernet(x, arch, offsets), atol=atol, rtol=rtol)
        supernet.load_state_dict(state)
        outputs.append(expected)
    assert all(not torch.allclose(outputs[0], o) for o in outputs[1:])
    supernet.eval()


def write_image_tree(root, classes, per_class=6, size=(12, 10)):
    """An ImageFolder tree of random PNGs: ``classes`` maps each split folder ("train", "test")
    to its class names; ``per_class`` images of ``size`` (height, width) per class."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        for name in classes[split]:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                arr = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
                Image.fromarray(arr).save(folder / f"{i:04d}.png")
