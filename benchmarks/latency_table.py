"""The latency table against whole-network measurements (issue 24), per space.

For each space: build the table (:func:`wpnas.latency.build_table`: its build time), draw
``--archs`` random architectures, and time each one's whole evaluation network
(:func:`wpnas.latency.measure_architectures`, the ``--statistic`` of ``--repeats`` calls). Reports, per
space: Kendall tau and Spearman of the table's sum against the measured latency, the median
absolute relative error, FLOPs' Kendall tau against the same measured latency, and the
table-build seconds; the same for the table before its calibration (the units' sum plus one glue
constant); and per architecture the table's, the units' and the measured milliseconds (in ``--out``).

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

from wpnas.latency import LatencyConfig, LatencyTable, build_table, device_name, measure_architectures  # noqa: E402
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
                        help="passes over all units and architectures per measurement (the table's units and calibration "
                             "included; latency.rounds: the statistic of the passes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the report (JSON) here as it grows")
    args = parser.parse_args()
    cfg = LatencyConfig(device=args.device, threads=args.threads, batch_size=args.batch_size, repeats=args.repeats,
                        statistic=args.statistic, rounds=args.rounds)
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
        table_ms, units_ms, flops, lookup_s = [], [], [], 0.0
        for arch in archs:
            t = time.perf_counter()
            table_ms.append(table.latency(arch))
            lookup_s += time.perf_counter() - t
            units_ms.append(sum(data["entries"][u.key]["ms"] for u in table.units(arch)))
            flops.append(space.evaluation_cost(arch, shape, 10, network).flops_m)
        # the table before calibration: the units' sum plus one glue constant (measured minus units, median)
        glue_only = float(np.median([r["measured_ms"] - r["units_ms"] for r in data["calibration"]]))
        plain_ms = np.asarray(units_ms) + glue_only
        measured_ms = np.asarray(measure_architectures(space, archs, cfg, shape, 10, network))
        # the same architectures timed again, later: how well the measurement ranks itself (the noise ceiling)
        again = np.asarray(measure_architectures(space, archs, cfg, shape, 10, network))
        table_ms = np.asarray(table_ms)
        rel = np.abs(table_ms - measured_ms) / measured_ms
        plain_rel = np.abs(plain_ms - measured_ms) / measured_ms
        line = {
            "space": name, "options": options, "input_shape": shape, "network": network, "archs": len(archs),
            "rounds": args.rounds,
            "table_build_s": round(build_s, 2), "table_units": len(data["entries"]), "cover_archs": data["cover_archs"],
            "cover_window": data["settings"]["cover_window"], "calibration_archs": len(data["calibration"]),
            "calibration": {k: round(data[k], 5) for k in ("glue_ms", "unit_scale", "ms_per_mflop",
                                                            "calibration_median_abs_rel_error")},
            "kendall_table": round(float(kendalltau(table_ms, measured_ms)[0]), 4),
            "spearman_table": round(float(spearmanr(table_ms, measured_ms)[0]), 4),
            "median_abs_rel_error": round(float(np.median(rel)), 4),
            "p90_abs_rel_error": round(float(np.quantile(rel, 0.9)), 4),
            "median_signed_rel_error": round(float(np.median((table_ms - measured_ms) / measured_ms)), 4),
            "kendall_uncalibrated": round(float(kendalltau(plain_ms, measured_ms)[0]), 4),
            "median_abs_rel_error_uncalibrated": round(float(np.median(plain_rel)), 4),
            "kendall_flops": round(float(kendalltau(flops, measured_ms)[0]), 4),
            "kendall_remeasured": round(float(kendalltau(again, measured_ms)[0]), 4),
            "median_abs_rel_error_remeasured": round(float(np.median(np.abs(again - measured_ms) / measured_ms)), 4),
            "measured_ms_range": [round(float(measured_ms.min()), 4), round(float(measured_ms.max()), 4)],
            "lookup_ms_per_arch": round(1000 * lookup_s / len(archs), 2),
            "load_1min_after": os.getloadavg()[0],
            # per architecture: where each error comes from
            "archs_detail": [{"arch": space.to_string(a), "table_ms": round(float(t), 5), "units_ms": round(float(u), 5),
                              "mflops": round(float(f), 4), "measured_ms": round(float(m), 5),
                              "remeasured_ms": round(float(r), 5)}
                             for a, t, u, f, m, r in zip(archs, table_ms, units_ms, flops, measured_ms, again)],
        }
        report["spaces"][name] = line
        emit({k: v for k, v in line.items() if k != "archs_detail"}, report, args.out)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
