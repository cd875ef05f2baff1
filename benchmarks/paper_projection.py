"""Projected wall time of `kedro run --env paper --pipelines=search` on the card gpu_check.sh measured.

Reads what `gpu_check.sh` wrote (``throughput.json``, ``throughput_fixed_cudagraphs.json``,
``ground_truth_workers.json``) and multiplies the measured step times by the `paper`
environment's step counts (``throughput.PAPER``):

* WarmUp: 200 epochs of the WarmUp step;
* ground truth: 200 architectures x 30 epochs of the fixed-architecture step, plus each
  architecture's compile seconds on the fast path (Inductor, and the cudagraphs backend
  when measured), divided by the speed-up of ``map_workers_per_device`` workers sharing the
  card as measured by ``ground_truth_workers.py`` (eager fine-tunes: the gain of sharing a
  card whose steps are already compiled may be smaller; the row says so; the pace of the
  busiest worker, start-up left out);
* search: 300 epochs of the WPNAS search-step proxy.

The predictor (seconds) and the evaluations every few epochs are left out. Eager and fast
columns come from the same run; the target is the issue's one hour.

    python benchmarks/paper_projection.py gpu-results            # after gpu_check.sh
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import PAPER  # noqa: E402

TARGET_HOURS = 1.0
ARCHS = 200  # the paper environment's ground_truth.num_archs


def _load(folder: Path, name: str) -> dict | None:
    path = folder / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def project(folder: Path, workers: int = 8) -> dict:
    """Hours per stage and variant (eager, fast, ...) from the JSON files in ``folder``; a stage
    whose figures are absent has no variants."""
    throughput = _load(folder, "throughput.json") or {}
    stages = throughput.get("stages", {})

    def hours(stage: str, ms: float) -> float:
        return PAPER[stage] * ms / 1000 / 3600

    def measured(stage: str) -> dict[str, float]:
        row = stages.get(stage, {})
        return {name: hours(stage, row[f"{name}_ms"]) for name in ("eager", "fast") if f"{name}_ms" in row}

    rows = {"warmup": {"variants": measured("warmup")}, "search": {"variants": measured("search")}}
    fixed = measured("fixed")
    compile_s = throughput.get("fixed_fast_setup_s", 0.0)
    if "fast" in fixed:  # each of the 200 architectures compiles anew
        fixed["fast"] += ARCHS * compile_s / 3600
    graphs = _load(folder, "throughput_fixed_cudagraphs.json") or {}
    graphed = graphs.get("stages", {}).get("fixed", {})
    if "fast_ms" in graphed:
        fixed["fast_cudagraphs"] = hours("fixed", graphed["fast_ms"]) + ARCHS * graphs.get("fixed_fast_setup_s", 0.0) / 3600
    shared = _load(folder, "ground_truth_workers.json") or {}
    # the busiest worker's pace (start-up left out: seconds against an hours-long stage); the
    # wall-clock ratio of the short benchmark where an older file has only that
    speedup = {run["workers"]: run.get("steady_speedup", run["speedup"]) for run in shared.get("runs", [])}.get(workers)
    gt = {"variants": dict(fixed), "compile_s_per_arch": compile_s, "workers": workers, "workers_speedup": speedup}
    if speedup:
        gt["variants"].update({f"{name}_{workers}_workers": value / speedup for name, value in fixed.items()})
        gt["note"] = (f"{workers} workers: {speedup:.2f}x measured on eager fine-tunes, applied to compiled ones "
                      "too (an upper bound on their gain)")
    else:
        gt["note"] = f"{workers} workers sharing the card not measured"
    rows["ground_truth"] = gt
    complete = all(row["variants"] for row in rows.values())
    total = {
        "eager_h": sum(row["variants"].get("eager", float("nan")) for row in rows.values()) if complete else None,
        "best_h": sum(min(row["variants"].values()) for row in rows.values()) if complete else None,
    }
    return {"device": throughput.get("device"), "stages": rows, "total": total, "target_h": TARGET_HOURS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="where gpu_check.sh wrote its JSON files")
    parser.add_argument("--workers", type=int, default=8, help="map_workers_per_device of the ground truth")
    parser.add_argument("--json", help="also write the projection here")
    args = parser.parse_args()
    folder = Path(args.folder)
    if not folder.is_dir():
        parser.error(f"folder: {folder} does not exist; run benchmarks/gpu_check.sh first")
    result = project(folder, args.workers)
    print(f"projected `paper` search pipeline on {result['device'] or 'an unknown device'} (hours):")
    for stage, row in result["stages"].items():
        cells = ", ".join(f"{name} {value:.2f}" for name, value in row["variants"].items())
        print(f"  {stage}: {cells or 'not measured'}" + (f"  ({row['note']})" if row.get("note") else ""))
    total = result["total"]
    if total["best_h"] is None:
        print("  total: incomplete (a stage was not measured)")
    else:
        verdict = "within" if total["best_h"] <= TARGET_HOURS else "over"
        print(f"  total: eager {total['eager_h']:.2f}, fastest measured variants {total['best_h']:.2f} "
              f"({verdict} the {TARGET_HOURS:g} h target)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
