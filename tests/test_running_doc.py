"""docs/running.md: every smoke command of its table runs with a real `kedro` process and
finishes within the limit the table states. The DARTS and MobileNet rows are also the
end-to-end check of those spaces (steps 1-5 and the report through the same stages as NATS,
with no space-specific code in them): their artifacts are checked against the space."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import json

import pandas as pd
import pytest
import yaml

from tests.conftest import REPO, latest, write_image_tree

DOC = REPO / "docs" / "running.md"
#: The table's data path, replaced by a small generated image folder in the suite.
CIFAR_JPEG = "/data/cifar10-jpeg"


def smoke_rows() -> list[tuple[str, int]]:
    """(command, limit in seconds) of each row of the smoke table."""
    rows = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[1].startswith("`kedro run"):
            continue
        limit = re.match(r"(\d+) s", cells[-1])
        assert limit, f"row without a limit in seconds: {line}"
        rows.append((cells[1].strip("`"), int(limit.group(1))))
    return rows


def test_the_table_lists_every_space_and_the_ablation():
    commands = " ".join(command for command, _ in smoke_rows())
    for text in ("space.name=nats_sss", "space.name=darts", "space.name=mobilenet", "spos_evolution",
                 "--pipelines=ablation", CIFAR_JPEG):
        assert text in commands
    assert all(command.startswith("kedro run --env smoke") for command, _ in smoke_rows())


@pytest.mark.slow
@pytest.mark.parametrize("command,limit", smoke_rows(), ids=[c.split("--env smoke")[1].strip() or "base"
                                                              for c, _ in smoke_rows()])
def test_smoke_command_finishes_within_its_stated_time(kedro_project, command, limit):
    if CIFAR_JPEG in command:
        folder = kedro_project / "cifar10-jpeg"
        write_image_tree(folder, {"train": [f"c{i}" for i in range(10)], "test": [f"c{i}" for i in range(10)]},
                         per_class=40, size=(32, 32))
        command = command.replace(CIFAR_JPEG, str(folder))
    argv = shlex.split(command)
    argv[0] = str(Path(sys.executable).with_name("kedro"))
    started = time.monotonic()
    done = subprocess.run(argv, cwd=kedro_project, env=dict(os.environ, COLUMNS="400"), capture_output=True,
                          text=True, timeout=limit + 60)
    seconds = time.monotonic() - started
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    assert seconds <= limit, f"{command}: {seconds:.0f} s, the table says at most {limit} s"
    assert "chosen by run.device=" in output  # the start line
    if "ablation" not in command:
        assert "Summary: data/08_reporting/summary.md/" in output
        assert latest(kedro_project / "data/08_reporting/summary.md").is_file()
    params = run_parameters(kedro_project, argv)
    if params["space"]["name"] not in ("nats_tss", "nats_sss"):  # DARTS, MobileNet and any space added later
        check_space_artifacts(kedro_project, params)


def run_parameters(project: Path, argv: list[str]) -> dict:
    """The parameters the command's run got: its environment and ``--params`` over ``base``."""
    from kedro.config import OmegaConfigLoader

    from wpnas.settings import CONFIG_LOADER_ARGS

    runtime: dict = {}
    for item in (argv[argv.index("--params") + 1].split(",") if "--params" in argv else []):
        key, _, value = item.partition("=")
        *parents, leaf = key.split(".")
        node = runtime
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    env = argv[argv.index("--env") + 1]
    return OmegaConfigLoader(conf_source=str(project / "conf"), env=env, runtime_params=runtime,
                             **CONFIG_LOADER_ARGS)["parameters"]


def check_space_artifacts(project: Path, params: dict) -> None:
    """What a new space's run must leave: its genotype, pairs, trained HyperNet, evaluation network."""
    from wpnas.io.checkpoints import load_checkpoint
    from wpnas.spaces import get_space

    name = params["space"]["name"]
    space = get_space(name, params["space"]["options"][name])
    shape = (1, params["data"]["image_size"], params["data"]["image_size"])  # the embedded digits, resized
    genotype = json.loads(latest(project / "data/07_model_output/final_genotype.json").read_text())
    assert genotype["space"] == name
    arch = space.from_string(genotype["arch"])
    assert list(arch) == genotype["choices"]
    assert genotype["flops_m"] == pytest.approx(space.cost(arch, shape, 10).flops_m)

    pairs = pd.read_csv(latest(project / "data/05_model_input/arch_accuracy_pairs.csv"))
    assert len(pairs) == params["ground_truth"]["num_archs"] and all(space.from_string(a) for a in pairs["arch"])
    searched = load_checkpoint(latest(project / "data/06_models/searched_supernet.pt"))
    assert searched["supernet"]["space"] == name
    assert params["search"]["wpnas"]["hypernet"]["mode"] == "trained"  # weakly weight sharing over its convolutions
    offsets = searched["hypernet"]["state_dict"]["proj.weight"]
    assert offsets.shape[0] == space.offset_kernel ** 2 and offsets.abs().sum() > 0  # the HyperNet trained

    metrics = json.loads(latest(project / "data/08_reporting/evaluation_metrics.json").read_text())
    expected = space.evaluation_cost(arch, shape, 10, params["evaluation"]["network"])
    assert metrics["params_m"] == pytest.approx(expected.params_m) and metrics["arch"] == genotype["arch"]
    assert metrics["test_accuracy"] >= 0
    if name == "darts":  # the evaluation network is not the searched one: its cost differs
        assert expected.params_m != pytest.approx(space.cost(arch, shape, 10).params_m)
    assert genotype["arch"] in latest(project / "data/08_reporting/summary.md").read_text()
