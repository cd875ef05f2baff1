"""WPNAS on NATS-TSS / CIFAR-10 at a CPU budget: which cell does each variant find?

Runs the paper's steps 1-4 once (WarmUp, ground truth by fine-tuning, few-shot predictor)
and then the search in several variants from the same warmed SuperNet and predictor:
WPNAS (predictor + trained HyperNet), without the predictor (b1 = 0), without the
HyperNet, and without either. Each found cell is looked up in the NAS-Bench-201 table
(``cifar10_test_200ep``: the accuracy papers report) with its rank among all 15,625
cells (1 = best). Two references measured in the same run: the best cell among the
ground-truth pairs (what the fine-tuned ground truth alone would pick) and the median
rank of a uniformly random cell.

    python benchmarks/search_tss.py --image-size 16 --train-limit 20000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from _common import NB201_TABLE, cifar10_tree, describe_device
from wpnas.config import from_dict, resolve_device, seed_everything
from wpnas.data.sources import DataConfig, build_image_splits
from wpnas.io.checkpoints import load_checkpoint, save_checkpoint
from wpnas.io.supernet_checkpoint import restore_supernet
from wpnas.nasbench import BenchmarkTable
from wpnas.predictors.stage import PredictorStageConfig, fit_predictor
from wpnas.search import SearchConfig, run_search
from wpnas.spaces import get_space
from wpnas.train.ground_truth import GroundTruthConfig, acquire_ground_truth
from wpnas.train.warmup import WarmupConfig, warmup_supernet

VARIANTS = {
    "wpnas (predictor + hypernet)": {"reward": {"b1": None}, "hypernet": {"mode": "trained"}},
    "no predictor (b1=0)": {"reward": {"b1": 0.0}, "hypernet": {"mode": "trained"}},
    "no hypernet": {"reward": {"b1": None}, "hypernet": {"mode": "off"}},
    "neither": {"reward": {"b1": 0.0}, "hypernet": {"mode": "off"}},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="CIFAR-10 image folder (or .tar.gz); default: the shared JPEG tarball")
    p.add_argument("--table", default=str(NB201_TABLE))
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--train-limit", type=int, default=20000, help="training images before the valid split")
    p.add_argument("--C", type=int, default=8)
    p.add_argument("--N", type=int, default=1)
    p.add_argument("--warmup-epochs", type=int, default=30)
    p.add_argument("--gt-archs", type=int, default=30)
    p.add_argument("--gt-epochs", type=int, default=1)
    p.add_argument("--ground-truth", choices=["finetune", "benchmark"], default="finetune",
                   help="finetune (paper) or look the sampled cells up in the table's --gt-metric column")
    p.add_argument("--gt-metric", default="cifar10_valid_12ep",
                   help="table column for --ground-truth benchmark (never the evaluation column)")
    p.add_argument("--search-epochs", type=int, default=15)
    p.add_argument("--b1", type=float, default=0.05, help="reward weight of the predictor (per accuracy point)")
    p.add_argument("--b2", type=float, default=0.0, help="reward weight of FLOPs (per MFLOP)")
    p.add_argument("--alpha-lr", type=float, default=0.05)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--search-json", default="{}",
                   help='extra search settings merged into every variant, e.g. \'{"valid_batch_size": 1024}\'')
    p.add_argument("--wpnas-json", default="{}",
                   help='extra search.wpnas settings for every variant, e.g. \'{"entropy_weight": 0.01}\' or '
                        '\'{"landmark": {"enabled": true}}\' (the ground-truth pairs are the landmarks)')
    p.add_argument("--warmed", help="reuse this warmed_supernet checkpoint if it exists, else write it there")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the results as JSON to this path")
    args = p.parse_args()

    t_start = time.monotonic()
    seed_everything(args.seed)
    device = resolve_device(args.device)
    splits = build_image_splits(DataConfig(source="image_folder", root=str(cifar10_tree(args.data)),
                                           image_size=args.image_size, train_limit=args.train_limit))
    space = get_space("nats_tss", C=args.C, N=args.N)
    table = BenchmarkTable.from_csv(args.table, space)
    metric = "cifar10_test_200ep"
    timings = {"data": time.monotonic() - t_start}

    t0 = time.monotonic()
    if args.warmed and Path(args.warmed).is_file():
        warmed = load_checkpoint(args.warmed)
        if warmed.get("epoch") != args.warmup_epochs or warmed.get("seed") != args.seed:
            raise SystemExit(f"{args.warmed} holds {warmed.get('epoch')} epochs / seed {warmed.get('seed')}, "
                             f"not {args.warmup_epochs} / {args.seed}")
    else:
        warmed = warmup_supernet(space, splits, WarmupConfig(epochs=args.warmup_epochs, batch_size=128, probe_archs=0),
                                 device, seed=args.seed)
        if args.warmed:
            save_checkpoint(warmed, args.warmed)
    timings["warmup"] = time.monotonic() - t0

    t0 = time.monotonic()
    gt_settings = {"num_archs": args.gt_archs, "epochs": args.gt_epochs, "batch_size": 128, "valid_limit": 2000}
    if args.ground_truth == "benchmark":
        if args.gt_metric == "cifar10_test_200ep":
            raise SystemExit("--gt-metric must not be the evaluation column cifar10_test_200ep")
        gt_settings.update(source="benchmark",
                           benchmark={"kind": "csv", "path": args.table, "metric": args.gt_metric})
    gt_cfg = from_dict(GroundTruthConfig, gt_settings)
    pairs = acquire_ground_truth(space, gt_cfg, args.seed, supernet=restore_supernet(warmed, device), splits=splits,
                                 device=device)
    timings["ground_truth"] = time.monotonic() - t0

    t0 = time.monotonic()
    predictor, pred_metrics, _ = fit_predictor(
        space, pairs, from_dict(PredictorStageConfig, {"valid_size": 0.2, "model": {"support_size": 10}}),
        seed=args.seed)
    timings["predictor"] = time.monotonic() - t0

    def place(arch_string: str) -> dict:
        return {"arch": arch_string, "nb201_test_acc": table.lookup(arch_string, metric),
                "nb201_rank": table.rank(arch_string, metric)}

    gt_best = pairs.sort_values("accuracy", ascending=False).iloc[0]["arch"]
    ranks = table.ranks(metric)
    results = {
        "device": describe_device(device),
        "setup": {"space": f"nats_tss C={args.C} N={args.N}", "input_shape": list(splits.input_shape),
                  "train_images": int(splits.train_x.shape[0]), "warmup_epochs": args.warmup_epochs,
                  "ground_truth": args.ground_truth if args.ground_truth == "finetune" else f"benchmark:{args.gt_metric}",
                  "gt_archs": args.gt_archs, "gt_epochs": args.gt_epochs, "search_epochs": args.search_epochs,
                  "b1": args.b1, "b2": args.b2, "alpha_lr": args.alpha_lr,
                  "search_extra": json.loads(args.search_json), "wpnas_extra": json.loads(args.wpnas_json)},
        "predictor_valid_kendall_tau": pred_metrics.get("valid_kendall_tau"),
        "reference_ground_truth_best": place(gt_best),
        "reference_random_median_rank": float(np.median(ranks)),
        "variants": {},
    }
    for name in args.variants:
        spec = VARIANTS[name]
        b1 = args.b1 if spec["reward"]["b1"] is None else spec["reward"]["b1"]
        cfg = from_dict(SearchConfig, {
            "epochs": args.search_epochs, "batch_size": 128, "valid_batch_size": 256, "eval_every": 0,
            **json.loads(args.search_json),
            "wpnas": {"alpha_lr": args.alpha_lr, "reward": {"b1": b1, "b2": args.b2}, "hypernet": spec["hypernet"],
                      **json.loads(args.wpnas_json)},
        }, where="search")
        seed_everything(args.seed)
        t0 = time.monotonic()
        result = run_search(space, splits, warmed, cfg, device, seed=args.seed,
                            predictor=predictor if b1 > 0 else None,
                            landmarks=pairs if cfg.wpnas.landmark.enabled else None)
        entry = place(result.final_genotype["arch"])
        entry["flops_m"] = result.final_genotype["flops_m"]
        entry["seconds"] = round(time.monotonic() - t0, 1)
        results["variants"][name] = entry
        print(f"{name:30s} rank {entry['nb201_rank']:6d}  acc {entry['nb201_test_acc']:.2f}  "
              f"{entry['seconds']:.0f} s  {entry['arch']}", flush=True)
    timings["total"] = time.monotonic() - t_start
    results["seconds"] = {k: round(v, 1) for k, v in timings.items()}
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
