"""How well does a warmed NATS-TSS SuperNet rank architectures? (issue: measured, not asserted)

Warm up a SuperNet on CIFAR-10 (the shared JPEG tree, an image folder, or torchvision's
CIFAR-10) for a given budget, evaluate a fixed seeded sample of architectures with
inherited weights (after BN recalibration) on the held-out valid split, and compare with
``cifar10_valid_200ep`` of the NAS-Bench-201 table. A zero-cost proxy measured in the same
run (parameter count) is printed as the baseline the SuperNet has to beat.

    python benchmarks/supernet_ranking.py --epochs 3 --C 8 --N 1 --train-limit 10000
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from _common import NB201_TABLE, cifar10_tree, describe_device
from wpnas.config import resolve_device, seed_everything
from wpnas.data.batching import DeviceBatches
from wpnas.data.sources import DataConfig, build_image_splits
from wpnas.io.supernet_checkpoint import restore_supernet
from wpnas.nasbench import BenchmarkTable, kendall_tau, spearman
from wpnas.spaces import get_space
from wpnas.train.engine import Engine, EngineConfig
from wpnas.train.evaluation import evaluate_architecture
from wpnas.train.optim import OptimConfig
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
    table = BenchmarkTable.from_csv(args.table, space)
    engine_cfg = EngineConfig(amp=not args.no_amp)
    cfg = WarmupConfig(
        epochs=args.epochs, batch_size=args.batch_size, optim=OptimConfig(lr=args.lr, lr_min=args.lr_min),
        engine=engine_cfg, probe_archs=0, calib_batches=args.calib_batches,
    )
    t0 = time.monotonic()
    checkpoint = warmup_supernet(space, splits, cfg, device, seed=args.seed)
    warmup_seconds = time.monotonic() - t0

    supernet = restore_supernet(checkpoint, device)
    engine = Engine(device, engine_cfg)
    supernet = engine.prepare(supernet)
    rng = np.random.default_rng(args.seed + 2024)
    archs = space.sample_unique(rng, args.archs)
    valid = DeviceBatches.from_splits(splits, "valid", device, 512, train=False, seed=args.seed,
                                      channels_last=engine.channels_last, limit=args.valid_limit)
    calib = DeviceBatches.from_splits(splits, "train", device, args.batch_size, train=False, shuffle=True,
                                      seed=args.seed + 1, channels_last=engine.channels_last).take(args.calib_batches)
    t0 = time.monotonic()
    accs = np.array([evaluate_architecture(supernet, a, valid, engine, calib)["acc"] for a in archs])
    eval_seconds = time.monotonic() - t0
    truth = table.lookup_many(archs, args.metric)
    params = np.array([space.cost(a, splits.input_shape, splits.num_classes).params_m for a in archs])
    result = {
        "device": describe_device(device),
        "space": f"nats_tss C={args.C} N={args.N}",
        "input_shape": list(splits.input_shape),
        "train_images": int(splits.train_x.shape[0]),
        "epochs": args.epochs,
        "archs": len(archs),
        "metric": args.metric,
        "kendall_tau": kendall_tau(accs, truth),
        "spearman": spearman(accs, truth),
        "baseline_params_kendall_tau": kendall_tau(params, truth),
        "baseline_params_spearman": spearman(params, truth),
        "supernet_acc_mean": float(accs.mean()),
        "supernet_acc_max": float(accs.max()),
        "seconds_data": round(data_seconds, 1),
        "seconds_warmup": round(warmup_seconds, 1),
        "seconds_eval": round(eval_seconds, 1),
        "seconds_total": round(time.monotonic() - started, 1),
    }
    for key, value in result.items():
        print(f"{key:>28}: {value:.4f}" if isinstance(value, float) else f"{key:>28}: {value}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
