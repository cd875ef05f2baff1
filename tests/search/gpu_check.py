"""Device check of the search loop (not collected by pytest): runs the real search on CUDA.

    python tests/search/gpu_check.py [--tiny] [--out DIR]

For each NATS space (official sizes unless --tiny) on the embedded 16x16 digits: one
warm-up epoch, then searches with bf16 autocast + channels-last, HyperNet off / trained /
fixed, predictor and FLOPs terms on. Checks the artifacts and reports the seconds per
search step (one weight step + one sample and the greedy baseline scored), as JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from wpnas.config import from_dict, resolve_device, seed_everything
from wpnas.data.sources import DataConfig, build_image_splits
from wpnas.search import restore_search, run_search
from wpnas.spaces import get_space
from wpnas.train.warmup import WarmupConfig, warmup_supernet

SPACES = {"nats_tss": {"C": 16, "N": 5}, "nats_sss": {}}
TINY = {"nats_tss": {"C": 4, "N": 1}, "nats_sss": {"channels": [4, 8]}}


def predictor(archs):
    """Synthetic predictor (% accuracy): prefers higher choice indices."""
    return np.array([60.0 + float(sum(a)) for a in archs])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--out", default=None)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    device = resolve_device("auto")
    seed_everything(0)
    splits = build_image_splits(DataConfig(source="digits"))
    report = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else str(device), "runs": []}
    for name, options in (TINY if args.tiny else SPACES).items():
        space = get_space(name, **options)
        started = time.monotonic()
        warm_cfg = from_dict(WarmupConfig, {"epochs": 1, "batch_size": 64, "probe_archs": 0,
                                            "augment": {"crop_padding": 2, "flip": False}})
        warmed = warmup_supernet(space, splits, warm_cfg, device, seed=0)
        warm_seconds = time.monotonic() - started
        for mode in ("off", "trained", "fixed"):
            cfg = {
                "epochs": args.epochs, "batch_size": 64, "valid_batch_size": 256, "alpha_lr": 0.01,
                "eval_every": args.epochs, "calib_batches": 2, "samples_per_step": 1,
                "reward": {"b1": 0.1, "b2": 1e-3}, "hypernet": {"mode": mode},
                "augment": {"crop_padding": 2, "flip": False}, "log_every": 3600.0,
            }
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.monotonic()
            result = run_search(space, splits, warmed, cfg, device, seed=0, predictor=predictor)
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds = time.monotonic() - started
            per_epoch = len(splits.train_y) // 64  # training batches (drop_last) = search steps per epoch
            net, dist = restore_search(result.checkpoint, device)
            genotype = result.final_genotype
            assert dist.argmax() == tuple(genotype["choices"]) == space.from_string(genotype["arch"])
            sums = result.alpha_trajectory.groupby(["epoch", "decision"])["probability"].sum()
            assert np.allclose(sums.to_numpy(), 1.0, atol=1e-5)
            last = result.history[-1]
            finite = all(np.isfinite(v) for v in last.values() if isinstance(v, float))
            # per-epoch seconds exclude set-up; the first epoch includes kernel warm-up
            epoch_seconds = [h["epoch_seconds"] for h in result.history]
            report["runs"].append({
                "space": name, "options": space.options(), "hypernet": mode,
                "warmup_epoch_seconds": round(warm_seconds, 3),
                "search_seconds": round(seconds, 3), "steps_per_epoch": per_epoch,
                "epoch_seconds": [round(s, 3) for s in epoch_seconds],
                "seconds_per_step_after_first_epoch": round(
                    float(np.mean(epoch_seconds[1:])) / per_epoch, 5) if args.epochs > 1 else None,
                "final_arch": genotype["arch"], "flops_m": genotype["flops_m"],
                "argmax_valid_acc": last.get("argmax_valid_acc"), "reward_mean": last["reward_mean"],
                "entropy": last["entropy"], "train_loss": last["train_loss"], "all_finite": finite,
            })
            print(json.dumps(report["runs"][-1]), flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "search_gpu_check.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
