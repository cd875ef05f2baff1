"""The latency table against whole-network measurements (issue 24), per space.

For each space: build the table (:func:`wpnas.latency.build_table`: its build time), draw
``--archs`` random architectures, and time each one's whole evaluation network
(:func:`wpnas.latency.measure_architecture`, the median of ``--repeats`` calls). Reports, per
space: Kendall tau and Spearman of the table's sum against the measured latency, the median
absolute relative error, FLOPs' Kendall tau against the same measured latency, and the
table-build seconds.

    OMP_NUM_THREADS=1 python benchmarks/latency_table.py                      # the four spaces, CPU
    python benchmarks/latency_table.py --spaces nats_tss --archs 20 --repeats 5   # a quick look
    python benchmarks/latency_table.py --device cuda --batch-size 64             # on a GPU

Each architecture is timed twice (two passes over the sample): the Kendall tau between the
two passes is how well the measurement ranks itself on this machine, the ceiling for the
table's. ``--rounds R`` makes each of the two measurements R interleaved passes over all
architectures (the statistic of the R kept per architecture), so that a slow drift of the
machine's speed does not rank early architectures against late ones.

``--space-set default`` uses the embedded default's sizes (digits 16x16, NATS-TSS C=8 N=1,
SSS channels 8..32) for the NATS spaces and the search skeletons at 32x32 for DARTS and
MobileNet; ``--space-set paper`` uses NATS-TSS C=16 N=5 and SSS 8..64 at 32x32 and DARTS's
evaluation network (20 cells, 36 channels).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau, spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import emit  # noqa: E402

from wpnas.latency import LatencyConfig, LatencyTable, build_table, device_name, measure_architecture  # noqa: E402
from wpnas.spaces import get_space  # noqa: E402

#: name -> (options, input shape, evaluation network options)
SETS = {
    "default": {
        "nats_tss": ({"C": 8, "N": 1}, (1, 16, 16), None),
        "nats_sss": ({"channels": [8, 16, 24, 32]}, (1, 16, 16), None),
        "darts": ({}, (3, 32, 32), None),
        "mobilenet": ({}, (3, 32, 32), None),
    },
    "paper": {
        "nats_tss": ({"C": 16, "N": 5}, (3, 32, 32), None),
        "nats_sss": ({"channels": [8, 16, 24, 32, 40, 48, 56, 64]}, (3, 32, 32), None),
        "darts": ({}, (3, 32, 32), {"C": 36, "layers": 20, "auxiliary": False}),
        "mobilenet": ({}, (3, 32, 32), None),
    },
}


def whole_networks(space, archs, cfg: LatencyConfig, shape, network, rounds: int) -> np.ndarray:
    """Each architecture's whole evaluation network timed (:func:`wpnas.latency.measure_architecture`),
    in ``rounds`` passes over all of them, and the ``cfg.statistic`` of the passes kept: a machine whose
    speed drifts over minutes (a shared VM) then moves every architecture alike within a pass, instead
    of ranking the early ones against the late ones."""
    passes = np.asarray([[measure_architecture(space, arch, cfg, shape, 10, network) for arch in archs]
                         for _ in range(rounds)])
    return passes.min(axis=0) if cfg.statistic == "min" else np.median(passes, axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", nargs="+", default=["nats_tss", "nats_sss", "mobilenet", "darts"])
    parser.add_argument("--space-set", choices=sorted(SETS), default="default")
    parser.add_argument("--archs", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per unit and per whole network")
    parser.add_argument("--statistic", choices=["median", "min"], default="median")
    parser.add_argument("--rounds", type=int, default=1,
                        help="passes over all architectures per whole-network measurement (statistic of the passes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the report (JSON) here as it grows")
    args = parser.parse_args()
    cfg = LatencyConfig(device=args.device, threads=args.threads, batch_size=args.batch_size, repeats=args.repeats,
                        statistic=args.statistic)
    report: dict = {"command": " ".join(sys.argv), "device": device_name(__import__("torch").device(args.device)),
                    "threads": args.threads, "cpus": os.cpu_count(), "load_1min": os.getloadavg()[0], "spaces": {}}
    for name in args.spaces:
        options, shape, network = SETS[args.space_set][name]
        space = get_space(name, options)
        started = time.perf_counter()
        data = build_table(space, cfg, shape, 10, network, seed=args.seed)
        build_s = time.perf_counter() - started
        table = LatencyTable(data, space)
        rng = np.random.default_rng(args.seed + 1)
        archs = space.sample_unique(rng, min(args.archs, space.size))
        table_ms, flops, lookup_s = [], [], 0.0
        for arch in archs:
            t = time.perf_counter()
            table_ms.append(table.latency(arch))
            lookup_s += time.perf_counter() - t
            flops.append(space.evaluation_cost(arch, shape, 10, network).flops_m)
        measured_ms = whole_networks(space, archs, cfg, shape, network, args.rounds)
        # the same architectures timed again, later: how well the measurement ranks itself (the noise ceiling)
        again = whole_networks(space, archs, cfg, shape, network, args.rounds)
        table_ms = np.asarray(table_ms)
        rel = np.abs(table_ms - measured_ms) / measured_ms
        line = {
            "space": name, "options": options, "input_shape": shape, "network": network, "archs": len(archs),
            "rounds": args.rounds,
            "table_build_s": round(build_s, 2), "table_units": len(data["entries"]), "cover_archs": data["cover_archs"],
            "cover_window": data["settings"]["cover_window"], "glue_ms": round(data["glue_ms"], 4),
            "kendall_table": round(float(kendalltau(table_ms, measured_ms)[0]), 4),
            "spearman_table": round(float(spearmanr(table_ms, measured_ms)[0]), 4),
            "median_abs_rel_error": round(float(np.median(rel)), 4),
            "p90_abs_rel_error": round(float(np.quantile(rel, 0.9)), 4),
            "kendall_flops": round(float(kendalltau(flops, measured_ms)[0]), 4),
            "kendall_remeasured": round(float(kendalltau(again, measured_ms)[0]), 4),
            "median_abs_rel_error_remeasured": round(float(np.median(np.abs(again - measured_ms) / measured_ms)), 4),
            "measured_ms_range": [round(float(measured_ms.min()), 4), round(float(measured_ms.max()), 4)],
            "lookup_ms_per_arch": round(1000 * lookup_s / len(archs), 2),
            "load_1min_after": os.getloadavg()[0],
        }
        report["spaces"][name] = line
        emit(line, report, args.out)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
