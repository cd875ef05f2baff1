"""The four search spaces side by side: SuperNet training speed, a tiny end-to-end search, and
the parameter / FLOP checks of the DARTS and MobileNet spaces.

1. SuperNet training images/s (a uniformly sampled path per step, SGD, random 32x32 images)
   at each space's search skeleton, with NATS-TSS (C=16, N=5) as the baseline measured in the
   same run: ratios are against it.
2. A tiny end-to-end ``kedro run --pipelines=search`` per space (embedded digits at 8x8, tiny
   skeletons), in a scratch copy of the project: wall time including Kedro's start-up.
3. Checks: the published DARTS-V2 cell in DARTS's evaluation network (C=36, 20 cells,
   CIFAR-10) and MobileNetV2-1.0 at 224x224 (an architecture of the MobileNet space), and the
   analytic cost against the hook counter and torch's FlopCounterMode.

    python benchmarks/spaces.py                    # all three parts, CPU, ~5 min on 2 cores
    python benchmarks/spaces.py --parts speed --device cuda --batch-size 256
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, describe_device  # noqa: E402

from wpnas.nn.flops import count_flops_params  # noqa: E402
from wpnas.spaces import get_space  # noqa: E402

#: (space, options) of each search skeleton; NATS-TSS first: the baseline.
SKELETONS = [
    ("nats_tss", {"C": 16, "N": 5}),
    ("nats_sss", {}),
    ("darts", {"C": 16, "layers": 8}),
    ("mobilenet", {"layout": "cifar", "width_mult": 1.0}),
]
#: tiny options for the end-to-end run (8x8 digits)
TINY = {"nats_tss": {"C": 4, "N": 1}, "nats_sss": {"channels": [4, 8]}, "darts": {"C": 4, "layers": 3},
        "mobilenet": {"width_mult": 0.25}}


def supernet_speed(name: str, options: dict, device: torch.device, batch: int, steps: int, warm: int) -> dict:
    space = get_space(name, **options)
    torch.manual_seed(0)
    net = space.build_supernet(3, 10).to(device).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    times = []
    for step in range(warm + steps):
        arch = space.sample(rng)
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(x, arch), y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if step >= warm:
            times.append(time.perf_counter() - started)
    per_step = float(np.median(times))
    return {"space": name, "options": options, "decisions": space.num_decisions, "size": float(space.size),
            "params_m": sum(p.numel() for p in net.parameters()) / 1e6, "ms_per_step": 1000 * per_step,
            "images_per_s": batch / per_step}


def tiny_search(name: str) -> dict:
    """``kedro run --pipelines=search`` on the embedded digits in a scratch copy of the project."""
    project = Path(tempfile.mkdtemp(prefix=f"wpnas-bench-{name}-"))
    try:
        shutil.copy(REPO / "pyproject.toml", project)
        shutil.copytree(REPO / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
        (project / "conf" / "local").mkdir()
        # the space goes in through conf/local (`--params` cannot carry a list such as SSS channels)
        (project / "conf" / "local" / "parameters.yml").write_text(
            json.dumps({"space": {"name": name, "options": {name: TINY[name]}}}))
        (project / "src").mkdir()
        params = {"data.image_size": 8, "data.train_limit": 300, "warmup.epochs": 1,
                  "warmup.batch_size": 32, "warmup.probe_archs": 2, "ground_truth.num_archs": 10,
                  "ground_truth.batch_size": 32, "predictor.valid_size": 4, "predictor.model.support_size": 4,
                  "predictor.model.epochs": 3, "search.epochs": 2, "search.steps_per_epoch": 3,
                  "search.batch_size": 32, "search.valid_batch_size": 64, "search.eval_valid_limit": 64}
        text = ",".join(f"{k}={v}" for k, v in params.items())
        env = {**os.environ, "KEDRO_DISABLE_TELEMETRY": "true",
               "MLFLOW_TRACKING_URI": f"sqlite:///{project / 'mlflow.db'}"}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "wpnas", "--pipelines=search", "--params", text], cwd=project,
                              env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode:
            raise SystemExit(f"{name}: kedro run failed\n{done.stderr[-3000:]}")
        genotype = json.loads(next((project / "data/07_model_output/final_genotype.json").rglob("*.json")).read_text())
        return {"space": name, "wall_s": wall, "found": genotype["arch"]}
    finally:
        shutil.rmtree(project, ignore_errors=True)


def checks() -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    out = {}
    darts = get_space("darts")
    arch = darts.from_string("DARTS_V2")
    options = {"C": 36, "layers": 20, "auxiliary": True}
    out["darts_v2_eval"] = dataclasses.asdict(darts.evaluation_cost(arch, (3, 32, 32), 10, options))
    mobile = get_space("mobilenet", layout="imagenet")
    v2 = mobile.from_string(":".join(["k3_e1_relu"] + ["k3_e6_relu"] * 16))
    analytic = mobile.cost(v2, (3, 224, 224), 1000)
    counted = count_flops_params(mobile.build_network(v2, 3, 1000), (3, 224, 224))
    out["mobilenet_v2_224"] = {"analytic_flops_m": analytic.flops_m, "analytic_params_m": analytic.params_m,
                               "hooks_flops_m": counted.flops_m, "hooks_params_m": counted.params_m}
    rng = np.random.default_rng(0)
    agree = {}
    for name, options in SKELETONS:
        space = get_space(name, **options)
        worst = 0.0
        for arch in space.sample(rng, 3):
            net = space.build_network(arch, 3, 10).eval()
            analytic = space.cost(arch, (3, 32, 32), 10)
            hooks = count_flops_params(net, (3, 32, 32))
            with FlopCounterMode(display=False) as counter, torch.no_grad():
                net(torch.zeros(1, 3, 32, 32))
            worst = max(worst, abs(analytic.flops_m - hooks.flops_m), abs(analytic.params_m - hooks.params_m))
            # FlopCounterMode: 2 FLOPs per multiply-accumulate, biases not counted
            agree.setdefault(name, []).append(
                {"analytic_flops_m": analytic.flops_m, "flop_counter_macs_m": counter.get_total_flops() / 2e6})
        agree[name] = {"max_abs_diff_vs_hooks": worst, "samples": agree[name]}
    out["cost_agreement"] = agree
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="speed,search,checks")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warm", type=int, default=2)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    device = torch.device(args.device)
    parts = set(args.parts.split(","))
    result: dict = {"device": describe_device(device), "torch": torch.__version__, "threads": torch.get_num_threads()}
    print(f"device: {result['device']}, torch {torch.__version__}, {result['threads']} threads", flush=True)
    if "speed" in parts:
        rows = [supernet_speed(n, o, device, args.batch_size, args.steps, args.warm) for n, o in SKELETONS]
        base = rows[0]["images_per_s"]
        print(f"\nSuperNet training, batch {args.batch_size}, 32x32, a random path per step (median of {args.steps})")
        print("| space | skeleton | decisions | size | SuperNet params (M) | ms/step | images/s | vs NATS-TSS |")
        print("|---|---|---|---|---|---|---|---|")
        for row in rows:
            row["ratio_vs_nats_tss"] = row["images_per_s"] / base
            print(f"| {row['space']} | {row['options'] or 'official'} | {row['decisions']} | {row['size']:.3g} | "
                  f"{row['params_m']:.2f} | {row['ms_per_step']:.0f} | {row['images_per_s']:.0f} | "
                  f"{row['ratio_vs_nats_tss']:.2f}x |", flush=True)
        result["speed"] = rows
    if "search" in parts:
        rows = [tiny_search(name) for name, _ in SKELETONS]
        print("\nTiny end-to-end `kedro run --pipelines=search` (8x8 digits, tiny skeletons)")
        for row in rows:
            print(f"- {row['space']}: {row['wall_s']:.1f} s, found {row['found'][:90]}", flush=True)
        result["search"] = rows
    if "checks" in parts:
        result["checks"] = checks()
        print("\nChecks:")
        print(json.dumps(result["checks"], indent=1, default=float))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
