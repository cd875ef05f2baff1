"""How much ranking signal the ground truth carries, at the budget a user runs it.

The final selection and the predictor can only be as good as the ground truth they are
given. For one seed, this script warms the SuperNet as ``kedro run --env ENV`` would, then
scores the same seeded sample of architectures (the ground-truth stage's own sample) with
each ground-truth recipe named by ``--epochs`` (fine-tune epochs from the warmed weights; 0
is the inherited-weight accuracy after BN recalibration), and reports for each its Kendall
tau against a benchmark table's column and its wall time, beside the parameter count's and
the FLOPs' Kendall tau on the same sample (free proxies a ground truth has to beat).

    python benchmarks/ground_truth_signal.py --env cifar10 --seed 0 --epochs 0 1 3 --archs 40 \\
        --params "space.name=nats_sss,data.train_limit=4000,warmup.epochs=10" --json /tmp/gt_signal.json

Several seeds at once: one process per seed with ``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
import time
from typing import Any

from _common import cifar10_tree, emit
from search_seeds import parameters, ranking_table

from wpnas.nasbench import BenchmarkTable, kendall_tau
from wpnas.pipelines.data_processing.nodes import prepare_image_splits
from wpnas.pipelines.ground_truth.nodes import acquire_ground_truth
from wpnas.pipelines.params import space_config
from wpnas.pipelines.warmup.nodes import warmup_supernet


def run(params: dict[str, Any], epochs: list[int], archs: int, table: BenchmarkTable, metric: str,
        report: dict[str, Any], json_path: str | None) -> None:
    run_params, space = params["run"], params["space"]
    started = time.monotonic()
    splits, _ = prepare_image_splits(params["data"])
    warmed, _ = warmup_supernet(splits, run_params, space, params["warmup"])
    report["warmup_seconds"] = round(time.monotonic() - started, 1)
    _, search_space = space_config(space)
    for count in epochs:
        truth_params = copy.deepcopy(params["ground_truth"])
        truth_params.update(source="finetune", num_archs=archs, epochs=count, checkpoint_every=0)
        began = time.monotonic()
        pairs, _ = acquire_ground_truth(warmed, splits, run_params, space, truth_params)
        seconds = time.monotonic() - began
        truth = [float(table.lookup(a, metric)) for a in pairs["arch"]]
        row = {
            "recipe": "inherited (BN recalibrated)" if count == 0 else f"fine-tune {count} epoch(s)",
            "epochs": count, "archs": len(pairs), "kendall_tau": float(kendall_tau(pairs["accuracy"], truth)),
            "params_kendall_tau": float(kendall_tau(pairs["params_m"], truth)),
            "flops_kendall_tau": float(kendall_tau(pairs["flops_m"], truth)),
            "best_rank": int(table.rank(str(pairs.loc[pairs["accuracy"].idxmax(), "arch"]), metric)),
            "seconds": round(seconds, 1), "space": search_space.name, "seed": int(run_params["seed"]),
        }
        report["rows"].append(row)
        emit(row, report, json_path)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="cifar10")
    p.add_argument("--params", default="", help="Kedro-style overrides: 'key=value,key=value'")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, nargs="+", default=[0, 1])
    p.add_argument("--archs", type=int, default=40)
    p.add_argument("--data", help="CIFAR-10 image folder or .tar.gz (default: the shared tarball; 'none' keeps "
                                  "the environment's data section)")
    p.add_argument("--table")
    p.add_argument("--metric")
    p.add_argument("--json")
    args = p.parse_args(argv)
    if any(e < 0 for e in args.epochs) or args.archs < 2:
        raise SystemExit(f"--epochs {args.epochs} must be >= 0 and --archs {args.archs} >= 2")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    data_root = None if args.data == "none" else str(cifar10_tree(args.data))
    params = parameters(args.env, args.params, args.seed, data_root)
    table, metric = ranking_table(params["space"], args.table, args.metric)
    report: dict[str, Any] = {"env": args.env, "params": args.params, "metric": metric, "rows": []}
    run(params, args.epochs, args.archs, table, metric, report, args.json)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
