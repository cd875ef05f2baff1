"""The real WPNAS search loop on a device, eager against the fast paths, in one run.

`throughput.py` times a proxy of the search step; this runs `wpnas.search.run_search`
itself (the runner, the method, alpha's policy gradient, the HyperNet, the epoch's
evaluation, the trajectory) twice from the same warmed SuperNet and seed: once eager
(`engine.graph_ops: off`, `engine.paths_in_flight: 1`) and once with the fast paths
(`--fast-graph-ops`, `--fast-paths`; on CUDA by default the per-op graphs and 16 paths in
flight; on the CPU the graphs refuse and say why, and 2 paths in flight still score the
sample and the greedy path together). For each space and HyperNet mode it reports the
seconds per search step of both and checks that they agree:

* every epoch's mean train loss, reward and alpha entropy, relative difference;
* the final alpha (largest absolute difference) and the final genotype (identical);
* the genotype is alpha's argmax, each decision's probabilities sum to 1, all finite.

Data: the embedded digits at 16x16 (no download), predictor term on (a synthetic predictor
that prefers higher choice indices), FLOPs term on.

    python benchmarks/search_loop.py --device cpu --tiny            # here, seconds
    python benchmarks/search_loop.py --device cuda --json out.json  # gpu_check.sh
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe_device, emit  # noqa: E402

from wpnas.config import from_dict, resolve_device, seed_everything  # noqa: E402
from wpnas.data.sources import DataConfig, build_image_splits  # noqa: E402
from wpnas.search import SearchConfig, restore_search, run_search  # noqa: E402
from wpnas.spaces import get_space  # noqa: E402
from wpnas.train.warmup import WarmupConfig, warmup_supernet  # noqa: E402

SPACES = {"nats_tss": {"C": 16, "N": 5}, "nats_sss": {}}
TINY = {"nats_tss": {"C": 4, "N": 1}, "nats_sss": {"channels": [4, 8]}}
COMPARED = ("train_loss", "reward_mean", "entropy")


def predictor(archs) -> np.ndarray:
    """Synthetic predictor (% accuracy): prefers higher choice indices."""
    return np.array([60.0 + float(sum(a)) for a in archs])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _search(space, splits, warmed, settings: dict[str, Any], engine: dict[str, Any], device: torch.device):
    cfg = from_dict(SearchConfig, {**settings, "engine": engine}, where="search")
    seed_everything(0)
    _sync(device)
    started = time.monotonic()
    result = run_search(space, splits, warmed, cfg, device, seed=0, predictor=predictor)
    _sync(device)
    return result, time.monotonic() - started


def _check(space, result, device: torch.device) -> torch.Tensor:
    """The artifacts agree with themselves; returns the final alpha."""
    _, dist = restore_search(result.checkpoint, device)
    genotype = result.final_genotype
    if not dist.argmax() == tuple(genotype["choices"]) == space.from_string(genotype["arch"]):
        raise AssertionError(f"final genotype {genotype['arch']} is not alpha's argmax")
    sums = result.alpha_trajectory.groupby(["epoch", "decision"])["probability"].sum().to_numpy()
    if not np.allclose(sums, 1.0, atol=1e-5):
        raise AssertionError(f"alpha probabilities do not sum to 1 per decision: {sums}")
    for row in result.history:
        for key in COMPARED:
            if not np.isfinite(row[key]):
                raise AssertionError(f"epoch {row['epoch']}: {key} = {row[key]}")
    return dist.alpha.detach().float().cpu()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tiny", action="store_true", help="tiny skeletons (the CPU smoke run)")
    parser.add_argument("--spaces", default=None, help="comma-separated (default: nats_tss,nats_sss)")
    parser.add_argument("--hypernet", default="off,trained", help="HyperNet modes, comma-separated")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="default: one pass (about 14 steps)")
    parser.add_argument("--fast-graph-ops", default="auto", help="engine.graph_ops of the fast run")
    parser.add_argument("--fast-paths", default=None,
                        help="engine.paths_in_flight of the fast run (default: auto on CUDA, 2 elsewhere)")
    parser.add_argument("--json", help="write the results here (after every run)")
    args = parser.parse_args()

    device = resolve_device(args.device)
    sizes = TINY if args.tiny else SPACES
    names = args.spaces.split(",") if args.spaces else list(sizes)
    if unknown := sorted(set(names) - set(sizes)):
        parser.error(f"--spaces: {unknown} not among {sorted(sizes)}")
    paths = args.fast_paths or ("auto" if device.type == "cuda" else "2")
    if paths != "auto" and not paths.isdigit():
        parser.error(f"--fast-paths: {paths!r}; expected an integer >= 1 or 'auto'")
    fast = {"graph_ops": args.fast_graph_ops, "paths_in_flight": paths if paths == "auto" else int(paths)}
    eager = {"graph_ops": "off", "paths_in_flight": 1}
    modes = args.hypernet.split(",")
    for mode in modes:  # bad settings fail here, before any training, with the setting named
        from_dict(SearchConfig, {"engine": fast, "wpnas": {"hypernet": {"mode": mode}}}, where="search")
    splits = build_image_splits(DataConfig(source="digits"))
    report: dict[str, Any] = {
        "device": describe_device(device),
        "torch": torch.__version__, "fast_engine": fast, "runs": [],
    }
    print(f"{report['device']}, torch {torch.__version__}; fast engine {fast}", flush=True)
    for name in names:
        space = get_space(name, **sizes[name])
        seed_everything(0)
        warm_cfg = from_dict(WarmupConfig, {"epochs": 1, "batch_size": 64, "probe_archs": 0,
                                            "augment": {"crop_padding": 2, "flip": False}}, where="warmup")
        warmed = warmup_supernet(space, splits, warm_cfg, device, seed=0)
        for mode in modes:
            settings = {
                "epochs": args.epochs, "steps_per_epoch": args.steps_per_epoch, "batch_size": 64,
                "valid_batch_size": 256, "eval_every": args.epochs, "calib_batches": 2, "log_every": 3600.0,
                "augment": {"crop_padding": 2, "flip": False},
                "wpnas": {"alpha_lr": 0.05, "reward": {"b1": 0.1, "b2": 1e-3}, "hypernet": {"mode": mode}},
            }
            plain, plain_s = _search(space, splits, warmed, settings, eager, device)
            quick, quick_s = _search(space, splits, warmed, settings, fast, device)
            alpha_eager, alpha_fast = _check(space, plain, device), _check(space, quick, device)
            differences = {
                key: max(abs(a[key] - b[key]) / max(abs(a[key]), 1e-12) for a, b in zip(plain.history, quick.history))
                for key in COMPARED
            }
            epoch_s = {"eager": [round(h["epoch_seconds"], 3) for h in plain.history],
                       "fast": [round(h["epoch_seconds"], 3) for h in quick.history]}
            run = {
                "space": name, "options": space.options(), "hypernet": mode,
                "search_seconds": {"eager": round(plain_s, 3), "fast": round(quick_s, 3)},
                "epoch_seconds": epoch_s,
                # the first epoch carries graph capture and kernel warm-up: the later ones are the pace
                "later_epochs_speedup": (float(np.mean(epoch_s["eager"][1:]) / np.mean(epoch_s["fast"][1:]))
                                         if args.epochs > 1 else None),
                "max_rel_diff": differences,
                "alpha_max_abs_diff": float((alpha_eager - alpha_fast).abs().max()),
                "same_genotype": plain.final_genotype["arch"] == quick.final_genotype["arch"],
                "final_arch": plain.final_genotype["arch"],
            }
            report["runs"].append(run)
            emit(run, report, args.json)


if __name__ == "__main__":
    main()
