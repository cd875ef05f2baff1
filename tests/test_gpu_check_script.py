"""The prepared GPU run (`benchmarks/gpu_check.sh`) end to end on the CPU at toy sizes.

A GPU session is lent rarely and for minutes: the script it runs must not have rotted in
between (a renamed option, a JSON key the projection no longer finds). Smoke mode runs the
same steps and the same projection on the CPU; what is checked is the wiring, never speed.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_runs_every_step_and_projects(tmp_path):
    out = tmp_path / "gpu-results"
    env = {**os.environ, "OUT": str(out), "GPU_CHECK_SMOKE": "1", "PYTHON": sys.executable,
           "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", str(ROOT / "benchmarks/gpu_check.sh")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
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
