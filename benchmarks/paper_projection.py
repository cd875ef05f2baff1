"""Projected wall time of `kedro run --env paper --pipelines=search` on the card gpu_check.sh measured.

Reads what `gpu_check.sh` wrote (``throughput.json``, ``throughput_fixed_cudagraphs.json``,
``ground_truth_workers.json``) and multiplies the measured step times by the `paper`
environment's step counts (``throughput.PAPER``):

* WarmUp: 200 epochs of the WarmUp step;
* ground truth: 200 architectures x 30 epochs of the fixed-architecture step, plus each
  architecture's compile seconds on the fast path (Inductor, and the cudagraphs backend
  when measured), divided by the speed-up of ``map_workers_per_device`` workers sharing the
  card as measured by ``ground_truth_workers.py`` (eager fine-tunes: the gain of sharing a
  card whose steps are already compiled may be smaller; the row says so);
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
    """Hours per stage, eager and fast, from the JSON files in ``folder`` (absent figures: None)."""
    throughput = _load(folder, "throughput.json") or {}
    stages = throughput.get("stages", {})
    rows: dict[str, dict] = {}

    def hours(stage: str, key: str) -> float | None:
        row = stages.get(stage, {})
        return PAPER[stage] * row[key] / 1000 / 3600 if key in row else None

    rows["warmup"] = {"eager_h": hours("warmup", "eager_ms"), "fast_h": hours("warmup", "fast_ms")}
    rows["search"] = {"eager_h": hours("search", "eager_ms"), "fast_h": hours("search", "fast_ms")}
    shared = _load(folder, "ground_truth_workers.json") or {}
    speedups = {run["workers"]: run["speedup"] for run in shared.get("runs", [])}
    speedup = speedups.get(workers)
    gt = {"eager_h": hours("fixed", "eager_ms"), "fast_h": None, "workers": workers,
          "workers_speedup": speedup, "note": ""}
    if "fast_ms" in stages.get("fixed", {}):
        compile_h = ARCHS * throughput.get("fixed_fast_setup_s", 0.0) / 3600
        gt["fast_h"] = hours("fixed", "fast_ms") + compile_h
        gt["compile_h"] = compile_h
    graphs = (_load(folder, "throughput_fixed_cudagraphs.json") or {})
    fixed_graphs = graphs.get("stages", {}).get("fixed", {})
    if "fast_ms" in fixed_graphs:
        gt["fast_cudagraphs_h"] = (PAPER["fixed"] * fixed_graphs["fast_ms"] / 1000
                                   + ARCHS * graphs.get("fixed_fast_setup_s", 0.0)) / 3600
    if speedup:
        for key in ("eager_h", "fast_h", "fast_cudagraphs_h"):
            if gt.get(key) is not None:
                gt[f"{key[:-2]}_{workers}_workers_h"] = gt[key] / speedup
        gt["note"] = (f"{workers} workers: {speedup:.2f}x measured on eager fine-tunes; "
                      "applied to compiled ones too (an upper bound on their gain)")
    else:
        gt["note"] = f"no measurement of {workers} workers sharing the card: one process"
    rows["ground_truth"] = gt

    def best(row: dict) -> float | None:
        values = [v for k, v in row.items() if k.endswith("_h") and v is not None]
        return min(values) if values else None

    totals = {"eager_h": None, "best_h": None}
    if all(rows[s].get("eager_h") is not None for s in rows):
        totals["eager_h"] = sum(rows[s]["eager_h"] for s in rows)
    if all(best(rows[s]) is not None for s in rows):
        totals["best_h"] = sum(best(rows[s]) for s in rows)
    return {"device": throughput.get("device"), "stages": rows, "total": totals, "target_h": TARGET_HOURS}


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
        cells = ", ".join(f"{k[:-2]} {v:.2f}" for k, v in row.items() if k.endswith("_h") and v is not None)
        print(f"  {stage}: {cells or 'not measured'}" + (f"  ({row['note']})" if row.get("note") else ""))
    total = result["total"]
    if total["best_h"] is None:
        print("  total: incomplete (a stage was not measured)")
    else:
        verdict = "within" if total["best_h"] <= TARGET_HOURS else "over"
        print(f"  total: eager {total['eager_h']:.2f}, best fast {total['best_h']:.2f} "
              f"({verdict} the {TARGET_HOURS:g} h target)")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
