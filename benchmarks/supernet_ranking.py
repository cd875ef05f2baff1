"""How well does a warmed NATS-TSS SuperNet rank architectures? (issue: measured, not asserted)

Warm up a SuperNet on CIFAR-10 (the shared JPEG tree, an image folder, or torchvision's
CIFAR-10) for a given budget, evaluate a fixed seeded sample of architectures with
inherited weights (after BN recalibration) on the held-out valid split, and compare with
``cifar10_valid_200ep`` of the NAS-Bench-201 table (``wpnas.train.ranking.rank_supernet``).
Two zero-cost proxies scored on the same sample (parameter count, FLOPs) are printed as
the baselines the SuperNet has to beat.

    python benchmarks/supernet_ranking.py --epochs 3 --C 8 --N 1 --train-limit 10000
"""

from __future__ import annotations

import argparse
import json
import time

from _common import NB201_TABLE, cifar10_tree, describe_device
from wpnas.config import resolve_device, seed_everything
from wpnas.data.sources import DataConfig, build_image_splits
from wpnas.io.supernet_checkpoint import restore_supernet
from wpnas.nasbench import BenchmarkConfig
from wpnas.spaces import get_space
from wpnas.train.engine import EngineConfig
from wpnas.train.optim import OptimConfig
from wpnas.train.ranking import RankingConfig, check_ranking, rank_supernet
from wpnas.train.warmup import WarmupConfig, warmup_supernet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="CIFAR-10 image folder (or .tar.gz); default: the shared JPEG tarball")
    parser.add_argument("--cifar-root", help="use torchvision CIFAR-10 from this root instead of an image folder")
    parser.add_argument("--table", default=str(NB201_TABLE))
    parser.add_argument("--metric", default="cifar10_valid_200ep")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--lr-min", type=float, default=0.01)
    parser.add_argument("--train-limit", type=int, default=None, help="stratified subset of the 50k training images")
    parser.add_argument("--image-size", type=int, default=None, help="resize images (e.g. 16 for CPU budgets)")
    parser.add_argument("--valid-limit", type=int, default=2000, help="valid images per architecture evaluation")
    parser.add_argument("--archs", type=int, default=100, help="seeded sample of architectures to rank")
    parser.add_argument("--sample-seed", type=int, default=0, help="seed of the sample (independent of --seed)")
    parser.add_argument("--calib-batches", type=int, default=4)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-amp", action="store_true")
    parser.add_argument("--json", help="also write the result as JSON to this path")
    args = parser.parse_args()

    started = time.monotonic()
    seed_everything(args.seed)
    device = resolve_device(args.device)
    if args.cifar_root:
        data_cfg = DataConfig(source="cifar10", root=args.cifar_root, valid_size=0.5, train_limit=args.train_limit,
                              image_size=args.image_size)
    else:
        data_cfg = DataConfig(source="image_folder", root=str(cifar10_tree(args.data)), valid_size=0.5,
                              train_limit=args.train_limit, image_size=args.image_size)
    splits = build_image_splits(data_cfg)
    data_seconds = time.monotonic() - started

    space = get_space("nats_tss", C=args.C, N=args.N)
    ranking = RankingConfig(
        num_archs=args.archs, sample_seed=args.sample_seed, calib_batches=args.calib_batches,
        calib_batch_size=args.batch_size, valid_limit=args.valid_limit, eval_batch_size=512,
        benchmark=BenchmarkConfig(kind="csv", path=args.table, metric=args.metric),
    )
    check_ranking(space, ranking)
    engine_cfg = EngineConfig(amp=not args.no_amp)
    cfg = WarmupConfig(
        epochs=args.epochs, batch_size=args.batch_size, optim=OptimConfig(lr=args.lr, lr_min=args.lr_min),
        engine=engine_cfg, probe_archs=0, calib_batches=args.calib_batches,
    )
    t0 = time.monotonic()
    checkpoint = warmup_supernet(space, splits, cfg, device, seed=args.seed)
    warmup_seconds = time.monotonic() - t0

    supernet = restore_supernet(checkpoint, device)
    report = rank_supernet(supernet, space, splits, ranking, device, seed=args.seed, engine_cfg=engine_cfg)
    m = report.metrics
    result = {
        "device": describe_device(device),
        "space": f"nats_tss C={args.C} N={args.N}",
        "input_shape": list(splits.input_shape),
        "train_images": int(splits.train_x.shape[0]),
        "epochs": args.epochs,
        "archs": m["n"],
        "sample": m["sample"],
        "metric": m["column"],
        "kendall_tau": m["kendall_tau"],
        "spearman": m["spearman"],
        "mse": m["mse"],
        "baseline_params_kendall_tau": m["params_kendall_tau"],
        "baseline_params_spearman": m["params_spearman"],
        "baseline_flops_kendall_tau": m["flops_kendall_tau"],
        "baseline_flops_spearman": m["flops_spearman"],
        "supernet_acc_mean": m["supernet_acc_mean"],
        "supernet_acc_max": m["supernet_acc_max"],
        "best_arch": m["best_arch"],
        "best_arch_rank": (f"{m['best_position']['rank']} of {m['best_position']['of']}"
                           if m["best_position"] else "n/a"),
        "seconds_data": round(data_seconds, 1),
        "seconds_warmup": round(warmup_seconds, 1),
        "seconds_eval": round(m["seconds"], 1),
        "seconds_total": round(time.monotonic() - started, 1),
    }
    for key, value in result.items():
        print(f"{key:>28}: {value:.4f}" if isinstance(value, float) else f"{key:>28}: {value}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({**result, "ranking": report.to_dict()}, fh, indent=2)


if __name__ == "__main__":
    main()
