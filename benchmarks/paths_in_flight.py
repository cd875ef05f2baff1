"""Ranking evaluation with 1, 4, 8, ... architectures in flight: time, device ops and host
syncs per architecture, and agreement with one at a time, in one run on one device.

The unit of work is the ranking default per architecture: BN recalibration on 4 batches of
128, then 2,000 valid images in batches of 512 (random 32x32 images, NATS-TSS). Each width
evaluates the same ``--archs`` architectures from the same SuperNet; width 1 is the
one-at-a-time path (`engine.paths_in_flight: 1`) and the baseline of every ratio.

    python benchmarks/paths_in_flight.py --device cpu --C 8 --N 1 --archs 16 --widths 1,4,8,16
    python benchmarks/paths_in_flight.py --device cuda --archs 64 --widths 1,8,16,32,64 --json out.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Dispatches, describe_device, emit  # noqa: E402

from wpnas.config import from_dict  # noqa: E402
from wpnas.spaces import get_space  # noqa: E402
from wpnas.train.engine import Engine, EngineConfig  # noqa: E402
from wpnas.train.evaluation import evaluate_many  # noqa: E402


def _batches(device: torch.device, channels_last: bool, valid_images: int):
    gen = torch.Generator().manual_seed(0)
    calib = [(torch.randn(128, 3, 32, 32, generator=gen), None) for _ in range(4)]
    valid = []
    for start in range(0, valid_images, 512):
        n = min(512, valid_images - start)
        valid.append((torch.randn(n, 3, 32, 32, generator=gen), torch.randint(0, 10, (n,), generator=gen)))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    calib = [(x.to(device).contiguous(memory_format=fmt), None) for x, _ in calib]
    valid = [(x.to(device).contiguous(memory_format=fmt), y.to(device)) for x, y in valid]
    return calib, valid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=5)
    parser.add_argument("--archs", type=int, default=32)
    parser.add_argument("--widths", default="1,4,8,16,32")
    parser.add_argument("--valid-images", type=int, default=2000)
    parser.add_argument("--json")
    args = parser.parse_args()
    device = torch.device(args.device)
    widths = [int(w) for w in args.widths.split(",")]
    if widths[0] != 1:
        widths = [1] + widths
    space = get_space("nats_tss", C=args.C, N=args.N)
    torch.manual_seed(0)
    base = Engine(device, from_dict(EngineConfig, {"paths_in_flight": 1}))
    supernet = base.prepare(space.build_supernet(3, 10))
    archs = space.sample_unique(np.random.default_rng(0), args.archs)
    calib, valid = _batches(device, base.channels_last, args.valid_images)
    result = {"device": describe_device(device), "torch": torch.__version__, "space": space.options(),
              "archs": args.archs, "valid_images": args.valid_images, "widths": {}}
    print(f"{result['device']}, torch {torch.__version__}, NATS-TSS C={args.C} N={args.N}, "
          f"{args.archs} architectures", flush=True)
    reference = None
    for width in widths:
        engine = Engine(device, from_dict(EngineConfig, {"paths_in_flight": width}))
        evaluate_many(supernet, archs[:width], valid, engine, calib)  # warm-up (cudnn, allocator)
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        scores = evaluate_many(supernet, archs, valid, engine, calib)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - started) / len(archs)
        with Dispatches() as seen:
            evaluate_many(supernet, archs[:width], valid, engine, calib)
        row = {"ms_per_arch": 1000 * seconds, "device_ops_per_arch": seen.kernels / width,
               "host_syncs_per_arch": seen.syncs / width}
        if reference is None:
            reference = (seconds, scores)
        else:
            row["speedup"] = reference[0] / seconds
            row["loss_max_rel_diff"] = max(abs(a["loss"] - b["loss"]) / max(abs(b["loss"]), 1e-6)
                                           for a, b in zip(scores, reference[1]))
            row["acc_max_diff_points"] = max(abs(a["acc"] - b["acc"]) for a, b in zip(scores, reference[1]))
        if device.type == "cuda":
            row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        result["widths"][width] = row
        emit({width: row}, result, args.json)


if __name__ == "__main__":
    main()
