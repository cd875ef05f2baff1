"""Ground-truth stage wall time with 1, 2, 4, 8 ... workers (the distributed map), on CPU or one GPU.

The stage is the paper's step 2: N architectures, each inheriting the warmed SuperNet's
weights and fine-tuned for E epochs. Workers are started by the same elastic launcher the
Kedro node uses (``run.distributed.map_workers_per_device`` per device, times
``nproc_per_node``); on one GPU they share it (Gloo, the devices round-robin), which is how
several architectures are in flight on one card. The
1-worker run is the baseline of the same invocation; every run must return the same table.

    python benchmarks/ground_truth_workers.py --workers 1,2                       # CPU, here
    python benchmarks/ground_truth_workers.py --device cuda --workers 1,4,8 \\
        --data /tmp/cifar10-jpeg --image-size 32 --C 16 --N 5 --archs 32 --epochs 1  # one GPU
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe_device, emit  # noqa: E402

from wpnas import distributed  # noqa: E402
from wpnas.config import DistributedConfig, from_dict, seed_everything  # noqa: E402
from wpnas.data.sources import DataConfig, build_image_splits  # noqa: E402
from wpnas.io.supernet_checkpoint import restore_supernet  # noqa: E402
from wpnas.spaces import get_space  # noqa: E402
from wpnas.train.ground_truth import GroundTruthConfig, acquire_ground_truth  # noqa: E402
from wpnas.train.warmup import WarmupConfig, warmup_supernet  # noqa: E402


def table(space, checkpoint, splits, cfg, device, seed):
    """One worker (or the only process): its share of the fine-tunes, gathered by the map."""
    supernet = restore_supernet(checkpoint, device)
    pairs = acquire_ground_truth(space, cfg, seed, supernet=supernet, splits=splits, device=device)
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts; the first is the baseline")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", help="image folder (e.g. the CIFAR-10 JPEG tree); default: the embedded digits")
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--C", type=int, default=8)
    parser.add_argument("--N", type=int, default=1)
    parser.add_argument("--archs", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup-epochs", type=int, default=1)
    parser.add_argument("--compile", default="auto", choices=["auto", "on", "off"],
                        help="ground_truth.engine.compile of the fine-tunes (auto: compiled on CUDA)")
    parser.add_argument("--out", help="write the results as JSON here (after every worker count)")
    args = parser.parse_args()
    device = torch.device(args.device)
    seed_everything(0)
    data = {"source": "digits", "image_size": args.image_size} if not args.data else \
        {"source": "image_folder", "root": args.data, "image_size": args.image_size, "train_limit": args.train_limit}
    splits = build_image_splits(from_dict(DataConfig, data))
    space = get_space("nats_tss", C=args.C, N=args.N)
    warm = from_dict(WarmupConfig, {"epochs": args.warmup_epochs, "batch_size": args.batch_size, "probe_archs": 0})
    checkpoint = warmup_supernet(space, splits, warm, device, seed=0)
    cfg = from_dict(GroundTruthConfig, {"num_archs": args.archs, "epochs": args.epochs, "batch_size": args.batch_size,
                                        "engine": {"compile": args.compile}})
    result = {"device": describe_device(device), "torch": torch.__version__, "cpus": os.cpu_count(),
              "space": {"name": space.name, **space.options()}, "archs": args.archs, "epochs": args.epochs,
              "batch_size": args.batch_size, "compile": args.compile, "train_images": int(splits.train_x.shape[0]),
              "runs": []}
    print(f"{result['device']}; {args.archs} archs x {args.epochs} epochs, batch {args.batch_size}, "
          f"{result['train_images']} training images", flush=True)
    reference = None
    for count in [int(w) for w in args.workers.split(",")]:
        started = time.perf_counter()
        if count == 1:
            pairs = table(space, checkpoint, splits, cfg, device, 0)
        else:
            dist_cfg = DistributedConfig(nproc_per_node=count, backend="gloo")
            pairs = distributed.launch(table, (space, checkpoint, splits, cfg, device, 0), dist_cfg, device=device,
                                       what="ground truth")
        wall = time.perf_counter() - started
        same = None
        if reference is None:
            reference = pairs
        else:
            same = bool(pairs[["arch", "accuracy"]].equals(reference[["arch", "accuracy"]]))
        base = result["runs"][0] if result["runs"] else {"wall_s": wall, "busiest_worker_s": None}
        # the map deals architecture i to rank i % workers: a rank's busy time is the sum of its
        # fine-tunes' seconds, and the busiest rank sets the pace once the workers have started
        # (their start-up, seconds here, is nothing next to the paper's hours-long stage)
        busiest = max(float(pairs["seconds"].iloc[rank::count].sum()) for rank in range(count))
        row = {"workers": count, "wall_s": wall, "speedup": base["wall_s"] / wall, "same_table_as_first": same,
               "fine_tune_seconds_sum": float(pairs["seconds"].sum()), "busiest_worker_s": busiest,
               "steady_speedup": (base["busiest_worker_s"] or busiest) / busiest}
        if device.type == "cuda":
            row["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        result["runs"].append(row)
        emit(row, result, args.out)


if __name__ == "__main__":
    main()
