"""Every benchmark script runs end to end at toy sizes (on a tiny image tree, or the CPU for the GPU run).

The figures in benchmarks/README.md come from these scripts; a script that no longer runs
(a setting renamed under it, a result key gone) would only be found by the next person who
needs a number, and the GPU run (`benchmarks/gpu_check.sh`) by a session whose few device
minutes it would waste. What is checked is that each runs and writes what it promises,
never a figure.
"""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import write_image_tree

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    """Ten classes of 8 random 16x16 images each, ImageFolder layout with train and test trees."""
    root = tmp_path_factory.mktemp("tree")
    classes = [f"class{c}" for c in range(10)]
    write_image_tree(root, {"train": classes, "test": classes}, per_class=8, size=(16, 16))
    return root


def _run(command, extra_env=None, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1", **(extra_env or {})}
    done = subprocess.run([str(part) for part in command], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0 and "Traceback" not in done.stderr, f"{command[:2]}:\n{done.stderr[-3000:]}"
    return done.stdout


def _script(name, *args):
    return _run([sys.executable, ROOT / "benchmarks" / name, *args])


TINY_DATA = ("--image-size", 8, "--train-limit", 80)


@pytest.mark.slow
def test_search_then_reward_signal(shared_data, image_tree, tmp_path):
    warmed, found = tmp_path / "warm.pt", tmp_path / "search.json"
    _script("search_tss.py", "--data", image_tree, *TINY_DATA, "--C", 4, "--N", 1, "--warmup-epochs", 1,
         "--gt-archs", 20, "--ground-truth", "benchmark", "--search-epochs", 1, "--variants", "neither",
         "--warmed", warmed, "--json", found)
    result = json.loads(found.read_text())
    cell = result["variants"]["neither"]
    assert 1 <= cell["nb201_rank"] <= 15625 and 0 < cell["nb201_test_acc"] < 100
    assert 1 <= result["reference_ground_truth_best"]["nb201_rank"] <= 15625
    assert warmed.is_file()  # reused by the next script, as in benchmarks/README.md

    out = _script("reward_signal.py", warmed, "--data", image_tree, *TINY_DATA, "--archs", 3, "--batches", 1,
               "--batch-size", 16)
    assert "inherited accuracy, BN recalibrated" in out and "NB201 rank 3" in out


@pytest.mark.slow
def test_supernet_ranking(shared_data, image_tree, tmp_path):
    report = tmp_path / "ranking.json"
    _script("supernet_ranking.py", "--data", image_tree, *TINY_DATA, "--epochs", 1, "--C", 4, "--N", 1, "--archs", 4,
         "--valid-limit", 30, "--batch-size", 16, "--no-amp", "--device", "cpu", "--json", report)
    metrics = json.loads(report.read_text())
    assert {"kendall_tau", "baseline_params_kendall_tau", "best_arch_rank"} <= set(metrics)
    assert metrics["archs"] == 4  # (Kendall tau itself may be nan: random images, equal accuracies)


@pytest.mark.slow
def test_predictor_table2(shared_data, tmp_path):
    runs = tmp_path / "runs.csv"
    out = _script("predictor_table2.py", "--spaces", "nats_tss", "--seeds", 1, "--rows", "default",
               "--override", '{"epochs": 2}', "--out", runs)
    assert "few-shot" in out
    rows = list(csv.DictReader(runs.open()))
    assert rows and all(row["space"] == "nats_tss" for row in rows)


@pytest.mark.slow
def test_host_overhead(tmp_path):
    report = tmp_path / "host.json"
    _script("host_overhead.py", "--C", 4, "--N", 1, "--steps", 2, "--warm", 1, "--json", report)
    result = json.loads(report.read_text())
    assert result["search_step"]["losses_equal"] is True
    assert {"bn_switch", "recalibration", "search_step"} <= set(result)


@pytest.mark.slow
def test_spaces_checks(tmp_path):
    """The spaces' cost checks (the search part is the end-to-end space tests' ground; the speed
    part runs in the GPU script's smoke test)."""
    report = tmp_path / "spaces.json"
    _script("spaces.py", "--parts", "checks", "--json", report)
    checks = json.loads(report.read_text())["checks"]
    assert {"nats_tss", "nats_sss", "darts", "mobilenet"} <= set(checks["cost_agreement"])
    for name, agreement in checks["cost_agreement"].items():
        assert agreement["max_abs_diff_vs_hooks"] < 1e-6, name  # analytic cost = counted by hooks


@pytest.mark.slow
def test_gpu_check_runs_every_step_and_projects(tmp_path):
    """The prepared GPU run in its CPU smoke mode: every step, then the projection reading their files."""
    out = tmp_path / "gpu-results"
    _run(["bash", ROOT / "benchmarks/gpu_check.sh"], {"OUT": str(out), "GPU_CHECK_SMOKE": "1",
                                                       "PYTHON": sys.executable}, timeout=600)
    for log in sorted(out.glob("*.log")):
        text = log.read_text()
        assert "Traceback" not in text and "error:" not in text, f"{log.name}:\n{text[-2000:]}"

    throughput = json.loads((out / "throughput.json").read_text())
    assert set(throughput["stages"]) == {"warmup", "fixed", "search", "ranking"}
    for stage, row in throughput["stages"].items():
        assert row["eager_ms"] > 0 and row["fast_ms"] > 0, stage
    graphs = json.loads((out / "throughput_fixed_cudagraphs.json").read_text())
    assert set(graphs["stages"]) == {"fixed"}

    in_flight = json.loads((out / "paths_in_flight.json").read_text())
    assert {"1", "2", "4"} <= set(map(str, in_flight["widths"]))
    spaces = json.loads((out / "spaces_speed.json").read_text())
    assert {"nats_tss", "nats_sss", "darts", "mobilenet"} <= {row["space"] for row in spaces["speed"]}
    loop = json.loads((out / "search_loop.json").read_text())
    assert [run["space"] for run in loop["runs"]] == ["nats_tss", "nats_sss"]
    for run in loop["runs"]:  # the real search, eager and with 2 paths in flight: one result
        assert run["same_genotype"] and run["alpha_max_abs_diff"] < 1e-5, run
        assert max(run["max_rel_diff"].values()) < 1e-5, run
    workers = json.loads((out / "ground_truth_workers.json").read_text())
    assert [run["workers"] for run in workers["runs"]] == [1, 2]
    assert workers["runs"][1]["same_table_as_first"] is True  # the shared map gives one process's pairs

    projection = json.loads((out / "projection.json").read_text())
    assert set(projection["stages"]) == {"warmup", "search", "ground_truth"}
    assert "fast_2_workers" in projection["stages"]["ground_truth"]["variants"]
    assert projection["total"]["best_h"] > 0 and projection["target_h"] == 1.0


@pytest.mark.slow
def test_search_seeds_table(shared_data, image_tree, tmp_path):
    report = tmp_path / "seeds.json"
    table = shared_data / "nb201" / "nb201_cifar10.csv"
    params = ",".join([
        "data.image_size=8", "data.train_limit=80", "space.options.nats_tss.C=4", "warmup.epochs=1",
        "warmup.batch_size=16", "warmup.probe_archs=0", "landmark_phase.epochs=1", "ground_truth.source=benchmark",
        "ground_truth.num_archs=24", "ground_truth.benchmark.kind=csv", f"ground_truth.benchmark.path={table}",
        "ground_truth.benchmark.metric=cifar10_valid_12ep", "predictor.valid_size=4", "predictor.model.support_size=4",
        "predictor.model.epochs=2", "search.epochs=1", "search.steps_per_epoch=2", "search.batch_size=16",
        "search.valid_batch_size=16", "search.eval_every=0", "search.evolution.population=4",
        "search.evolution.generations=1", "search.evolution.top_k=2", "search.evolution.num_crossover=2",
        "search.evolution.num_mutation=2", "search.eval_valid_limit=16", "search.selection.refine_budget=4",
        f"run.checkpoint_dir={tmp_path / 'ck'}",
        # bounded by latency (a bound every network meets: the wiring, not the machine's timings)
        "search.max_latency_ms=10000", "latency.warmup=0", "latency.repeats=1", "latency.calibration_archs=2",
        f"latency.table_path={tmp_path / 'latency_table.json'}",
    ])
    _script("search_seeds.py", "--env", "base", "--data", image_tree, "--seeds", 0, "--params", params,
            "--json", report, "--build-latency-table")
    result = json.loads(report.read_text())
    row = result["rows"][0]
    for key in ("found", "search_choice", "best_ground_truth", "spos_landmark"):
        assert 1 <= row[key]["rank"] <= 15625, key
    # the selection scores like the ground truth (the 12-epoch column): never below its best pair
    assert row["selection"]["score"] >= row["best_ground_truth"]["score"]
    assert row["selection"]["new_evaluations"] <= 10 + 10 + 4
    assert set(row["seconds"]) >= {"warmup", "ground_truth", "landmark_phase", "predictor", "search", "selection"}
    assert result["summary"]["seeds"] == [0] and row["wall_ratio"] >= 1
    bounded = row["latency"]
    assert bounded["bound_ms"] == 10000 and bounded["found_within_bound"] and bounded["found_measured_ms"] > 0
    assert bounded["ground_truth_within_bound"] == 24
    assert bounded["best_ground_truth_within_bound"]["arch"] == row["best_ground_truth"]["arch"]
    assert result["summary"]["found_within_bound"] == 1


@pytest.mark.slow
def test_ground_truth_signal_scores_one_sample_per_recipe(shared_data, image_tree, tmp_path):
    report = tmp_path / "signal.json"
    params = ",".join(["data.image_size=8", "data.train_limit=80", "space.options.nats_tss.C=4", "warmup.epochs=1",
                       "warmup.batch_size=16", "warmup.probe_archs=0", "ground_truth.batch_size=16",
                       "ground_truth.valid_limit=32", f"run.checkpoint_dir={tmp_path / 'ck'}"])
    _script("ground_truth_signal.py", "--env", "base", "--data", image_tree, "--epochs", 0, 1, "--archs", 6,
            "--params", params, "--json", report)
    rows = json.loads(report.read_text())["rows"]
    assert [r["epochs"] for r in rows] == [0, 1] and all(r["archs"] == 6 for r in rows)
    for row in rows:
        assert -1 <= row["kendall_tau"] <= 1 and -1 <= row["params_kendall_tau"] <= 1
        assert 1 <= row["best_rank"] <= 15625 and row["seconds"] > 0
    # the same sample for every recipe: the free proxies agree
    assert rows[0]["params_kendall_tau"] == rows[1]["params_kendall_tau"]


def test_fault_battery_runs_its_cases_and_counts_them(tmp_path):
    out = tmp_path / "faults.md"
    printed = _script("faults.py", "--only", "pairs-out-of-range", "empty-class-folder", "--markdown", out)
    assert "tried 2, handled 2, lost 0, silently wrong 0" in printed
    assert out.read_text().count("| handled |") == 2


@pytest.mark.slow
def test_latency_table(tmp_path):
    out = tmp_path / "latency.json"
    _script("latency_table.py", "--spaces", "nats_tss", "--archs", 6, "--repeats", 1, "--rounds", 2, "--out", out)
    line = json.loads(out.read_text())["spaces"]["nats_tss"]
    for key in ("kendall_table", "median_abs_rel_error", "kendall_flops", "kendall_remeasured", "table_build_s"):
        assert key in line, key
    assert line["rounds"] == 2 and line["archs"] == 6
