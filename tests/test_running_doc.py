"""docs/running.md: every smoke command of its table runs with a real `kedro` process and
finishes within the limit the table states."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

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
