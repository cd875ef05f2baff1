"""The quality and host-time benchmark scripts run end to end at toy sizes (on a tiny image tree).

The figures in benchmarks/README.md come from these scripts; a script that no longer runs
(a setting renamed under it, a result key gone) would only be found by the next person who
needs a number. What is checked is that each runs and writes what it promises, never a
figure. The GPU run's scripts are covered by tests/test_gpu_check_script.py.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    """Ten classes of random 16x16 images, ImageFolder layout with train and test trees."""
    root = tmp_path_factory.mktemp("tree")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("test", 3)):
        for c in range(10):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


def _run(script, *args, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *map(str, args)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0 and "Traceback" not in done.stderr, f"{script}:\n{done.stderr[-3000:]}"
    return done.stdout


TINY_DATA = ("--image-size", 8, "--train-limit", 80)


@pytest.mark.slow
def test_search_then_reward_signal(shared_data, image_tree, tmp_path):
    warmed, found = tmp_path / "warm.pt", tmp_path / "search.json"
    _run("search_tss.py", "--data", image_tree, *TINY_DATA, "--C", 4, "--N", 1, "--warmup-epochs", 1,
         "--gt-archs", 20, "--ground-truth", "benchmark", "--search-epochs", 1, "--variants", "neither",
         "--warmed", warmed, "--json", found)
    result = json.loads(found.read_text())
    cell = result["variants"]["neither"]
    assert 1 <= cell["nb201_rank"] <= 15625 and 0 < cell["nb201_test_acc"] < 100
    assert 1 <= result["reference_ground_truth_best"]["nb201_rank"] <= 15625
    assert warmed.is_file()  # reused by the next script, as in benchmarks/README.md

    out = _run("reward_signal.py", warmed, "--data", image_tree, *TINY_DATA, "--archs", 3, "--batches", 1,
               "--batch-size", 16)
    assert "inherited accuracy, BN recalibrated" in out and "NB201 rank 3" in out


@pytest.mark.slow
def test_supernet_ranking(shared_data, image_tree, tmp_path):
    report = tmp_path / "ranking.json"
    _run("supernet_ranking.py", "--data", image_tree, *TINY_DATA, "--epochs", 1, "--C", 4, "--N", 1, "--archs", 4,
         "--valid-limit", 30, "--batch-size", 16, "--no-amp", "--device", "cpu", "--json", report)
    metrics = json.loads(report.read_text())
    assert {"kendall_tau", "baseline_params_kendall_tau", "best_arch_rank"} <= set(metrics)
    assert metrics["archs"] == 4  # (Kendall tau itself may be nan: random images, equal accuracies)


@pytest.mark.slow
def test_predictor_table2(shared_data, tmp_path):
    runs = tmp_path / "runs.csv"
    out = _run("predictor_table2.py", "--spaces", "nats_tss", "--seeds", 1, "--rows", "default",
               "--override", '{"epochs": 2}', "--out", runs)
    assert "few-shot" in out
    rows = list(csv.DictReader(runs.open()))
    assert rows and all(row["space"] == "nats_tss" for row in rows)


@pytest.mark.slow
def test_host_overhead(tmp_path):
    report = tmp_path / "host.json"
    _run("host_overhead.py", "--C", 4, "--N", 1, "--steps", 2, "--warm", 1, "--json", report)
    result = json.loads(report.read_text())
    assert result["search_step"]["losses_equal"] is True
    assert {"bn_switch", "recalibration", "search_step"} <= set(result)


@pytest.mark.slow
def test_spaces_checks(tmp_path):
    """The spaces' cost checks (the search part is the end-to-end space tests' ground; the speed
    part runs in the GPU script's smoke test)."""
    report = tmp_path / "spaces.json"
    _run("spaces.py", "--parts", "checks", "--json", report)
    checks = json.loads(report.read_text())["checks"]
    assert {"nats_tss", "nats_sss", "darts", "mobilenet"} <= set(checks["cost_agreement"])
    for name, agreement in checks["cost_agreement"].items():
        assert agreement["max_abs_diff_vs_hooks"] < 1e-6, name  # analytic cost = counted by hooks
