"""Paper Table 2 on the NAS benchmark tables: supervised vs few-shot predictors on 170 pairs.

Runs :func:`wpnas.predictors.benchmark.run_predictor_benchmark` on the NB201 table
(metric cifar10_valid_200ep) and the NATS-SSS table (cifar10_valid_90ep) and prints
mean ± std over seeds, next to the paper's few-shot Kendall tau.

    python benchmarks/predictor_table2.py --seeds 10 --jobs 2 --out data/08_reporting/predictor_table2.csv
    python benchmarks/predictor_table2.py --rows paper      # the paper's own training settings
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from wpnas.nasbench import BenchmarkTable
from wpnas.predictors.benchmark import default_rows, paper_rows, run_predictor_benchmark, summarize, to_markdown
from wpnas.spaces import get_space

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / ".." / "shared" / "data"
TABLES = {
    "nats_tss": (DATA / "nb201" / "nb201_cifar10.csv", "cifar10_valid_200ep"),
    "nats_sss": (DATA / "nats_sss" / "nats_sss_cifar10.csv", "cifar10_valid_90ep"),
}
#: Kendall tau on the 30 validation architectures reported in the paper (Table 2, CIFAR-10).
PAPER_TAU = {
    "nats_tss": {"MLP": 0.550, "few-shot MLP": 0.561, "RNN": 0.517, "few-shot RNN": 0.531,
                 "Transformer": 0.582, "few-shot Transformer": 0.588},
    "nats_sss": {"MLP": 0.795, "few-shot MLP": 0.804, "RNN": 0.773, "few-shot RNN": 0.786,
                 "Transformer": 0.790, "few-shot Transformer": 0.795},
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

    rows = []
    if args.rows in ("default", "both"):
        rows += default_rows(args.encoders)
    if args.rows in ("paper", "both"):
        rows += paper_rows([e for e in args.encoders if e != "gcn"])
    overrides = json.loads(args.override)
    frames = []
    start = time.perf_counter()
    for name in args.spaces:
        path, metric = TABLES[name]
        if not path.is_file():
            print(f"missing table {path}; the reference data must sit at ../shared/data", file=sys.stderr)
            return 2
        space = get_space(name)
        table = BenchmarkTable.from_csv(path, space)
        t0 = time.perf_counter()
        frame = run_predictor_benchmark(table, space, metric, rows=rows, seeds=range(args.seeds),
                                        overrides=overrides, n_jobs=args.jobs)
        print(f"{name}: {len(frame)} fits in {time.perf_counter() - t0:.0f} s", flush=True)
        frames.append(frame)
    wall = time.perf_counter() - start
    df = pd.concat(frames, ignore_index=True)
    summary = summarize(df)
    summary["paper_tau_valid"] = [PAPER_TAU.get(s, {}).get(r, float("nan")) for s, r in zip(summary.space, summary.row)]
    print(to_markdown(summary))
    paper = summary.dropna(subset=["paper_tau_valid"])
    if len(paper):
        print("paper Kendall tau (30 valid archs) for the same rows:")
        for _, rec in paper.iterrows():
            print(f"  {rec.space:9s} {rec.row:22s} paper {rec.paper_tau_valid:.3f}  ours {rec.tau_valid_mean:.3f}")
    print(f"total wall time {wall:.0f} s ({args.seeds} seeds, {args.jobs} jobs)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.out, index=False)
        print(f"per-seed results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
