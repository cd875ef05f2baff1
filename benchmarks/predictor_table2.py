"""Paper Table 2 on the NAS benchmark tables: supervised vs few-shot predictors on 170 pairs.

Runs :func:`wpnas.predictors.benchmark.run_predictor_benchmark` on the NB201 table
(metric cifar10_valid_200ep) and the NATS-SSS table (cifar10_valid_90ep) and prints
mean ± std over seeds, next to the paper's few-shot Kendall tau.

    python benchmarks/predictor_table2.py --seeds 10 --jobs 2 --out /tmp/predictor_table2_runs.csv
    python benchmarks/predictor_table2.py --rows paper      # the paper's own training settings
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wpnas.config import from_dict
from wpnas.predictors.table2 import Table2Config, run_table2

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data"
TABLES = {
    "nats_tss": (DATA / "nb201" / "nb201_cifar10.csv", "cifar10_valid_200ep"),
    "nats_sss": (DATA / "nats_sss" / "nats_sss_cifar10.csv", "cifar10_valid_90ep"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", nargs="+", default=list(TABLES), choices=list(TABLES))
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (one torch thread each)")
    parser.add_argument("--rows", choices=["default", "paper", "both"], default="default")
    parser.add_argument("--encoders", nargs="+", default=["mlp", "rnn", "transformer", "gcn"])
    parser.add_argument("--override", default="{}", help='JSON settings applied to every row, e.g. \'{"epochs": 5}\'')
    parser.add_argument("--out", type=Path, help="write the per-seed results here (CSV)")
    args = parser.parse_args(argv)

    missing = [str(TABLES[s][0]) for s in args.spaces if not TABLES[s][0].is_file()]
    if missing:
        print(f"missing tables {missing}; the reference data must sit at ../shared/data", file=sys.stderr)
        return 2
    cfg = from_dict(Table2Config, {
        "tables": [{"space": {"name": s}, "benchmark": {"kind": "csv", "path": str(TABLES[s][0]),
                                                         "metric": TABLES[s][1]}} for s in args.spaces],
        "seeds": args.seeds, "rows": args.rows, "encoders": args.encoders,
        "overrides": json.loads(args.override), "n_jobs": args.jobs,
    })
    result = run_table2(cfg)
    print(result.markdown)
    print(f"total wall time {result.seconds:.0f} s ({args.seeds} seeds, {args.jobs} jobs)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result.runs.to_csv(args.out, index=False)
        print(f"per-seed results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
