"""Images/s of each stage's step, eager against the fast path, in one run on one device.

Stages (NATS-TSS, random 32x32 images, the `paper` environment's sizes by default):

* ``warmup``: one SuperNet step on a uniformly sampled path (a new path every step); the
  fast path replays each candidate op as a CUDA graph (`wpnas.train.fast.graph_candidate_ops`);
* ``fixed``: one training step of a fixed stand-alone network (ground-truth fine-tune,
  evaluation from scratch) - the stage with a fast path (`wpnas.train.fast`: the training
  forward compiled, CUDA graphs on a GPU); eager and fast start from the same weights and
  their losses are compared step by step;
* ``search``: a proxy of one WPNAS step in the `paper` setting (a trained HyperNet): a
  weight step on a sampled path with its offsets (fast: the per-op graphs, each offset a
  graph input) plus the reward pass (the sample and the greedy architecture scored on a
  validation batch; fast: both paths in one pass, `wpnas.nn.paths`); losses compared;
* ``ranking``: inherited-weight evaluation of 2 x ``--paths`` architectures, each after BN
  recalibration (4 batches of 128, then 2,000 valid images in batches of 512: the ranking
  defaults); fast: ``--paths`` architectures in flight. Also counted on one group: device
  ops (kernel launches on a GPU; views and allocations left out) and host syncs per
  architecture, which the launch-bound GPU step time follows.

The projection
multiplies the measured step times by the `paper` environment's step counts (25,000
training images, batch 64: 391 steps per epoch; WarmUp 200 epochs, ground truth
200 x 30 epochs, search 300 epochs).

    python benchmarks/throughput.py --device cpu --steps 10        # here, a few minutes
    python benchmarks/throughput.py --device cuda --steps 50 --json out.json
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
from wpnas.nn.paths import block_cross_entropies  # noqa: E402
from wpnas.search.hypernet import HyperNetConfig  # noqa: E402
from wpnas.search.reward import BatchStatistics, path_cross_entropy  # noqa: E402
from wpnas.search.weakly_shared import WeaklySharedSuperNet, build_hypernet  # noqa: E402
from wpnas.spaces import get_space  # noqa: E402
from wpnas.train.engine import Engine, EngineConfig, Trainer  # noqa: E402
from wpnas.train.evaluation import evaluate_many  # noqa: E402
from wpnas.train.fast import fast_fixed_network, graph_candidate_ops  # noqa: E402
from wpnas.train.optim import OptimConfig  # noqa: E402

STEPS_PER_EPOCH = 391  # 25,000 images / batch 64
PAPER = {"warmup": 200 * STEPS_PER_EPOCH, "fixed": 200 * 30 * STEPS_PER_EPOCH, "search": 300 * STEPS_PER_EPOCH}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(step, count: int, warm: int, device: torch.device) -> float:
    """Median seconds of ``step()`` over ``count`` calls after ``warm``."""
    times = []
    for i in range(warm + count):
        _sync(device)
        started = time.perf_counter()
        step()
        _sync(device)
        if i >= warm:
            times.append(time.perf_counter() - started)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warm", type=int, default=3)
    parser.add_argument("--compile", default="on",
                        help="engine.compile and engine.graph_ops of the fast run (on / auto / off)")
    parser.add_argument("--paths", type=int, default=16, help="architectures in flight in the fast ranking")
    parser.add_argument("--rank-valid", type=int, default=2000, help="valid images per ranked architecture")
    parser.add_argument("--stages", default="warmup,fixed,search,ranking",
                        help="which stages to measure (comma-separated)")
    parser.add_argument("--compile-backend", default="inductor",
                        help="engine.compile_backend of the fast fixed-architecture run (inductor, cudagraphs, ...)")
    parser.add_argument("--json")
    args = parser.parse_args()
    stages = set(args.stages.split(","))
    unknown = stages - {"warmup", "fixed", "search", "ranking"}
    if unknown:
        parser.error(f"--stages: unknown stage(s) {sorted(unknown)}; expected warmup, fixed, search, ranking")
    device = torch.device(args.device)
    space = get_space("nats_tss", C=args.C, N=args.N)
    batch = args.batch_size
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    eager_engine = Engine(device, from_dict(EngineConfig, {"compile": "off"}))
    fast_engine = Engine(device, from_dict(EngineConfig, {"compile": args.compile, "graph_ops": args.compile,
                                                          "compile_backend": args.compile_backend}))
    if eager_engine.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    optim = OptimConfig(lr=0.05, lr_min=0.0)
    result = {"device": describe_device(device), "torch": torch.__version__, "batch_size": batch,
              "space": space.options(), "compile_backend": args.compile_backend, "stages": {}}
    print(f"{result['device']}, torch {torch.__version__}, NATS-TSS C={args.C} N={args.N}, batch {batch}", flush=True)

    def record(stage: str, eager_s: float, fast_s: float | None, note: str = "", unit: str = "images") -> None:
        per = batch if unit == "images" else 1
        row = {"eager_ms": 1000 * eager_s, f"eager_{unit}_per_s": per / eager_s}
        if fast_s is not None:
            row.update(fast_ms=1000 * fast_s, **{f"fast_{unit}_per_s": per / fast_s}, ratio=eager_s / fast_s)
        if stage in PAPER:
            row["paper_hours_eager"] = PAPER[stage] * eager_s / 3600
            if fast_s is not None:
                row["paper_hours_fast"] = PAPER[stage] * fast_s / 3600
        if note:
            row["note"] = note
        if device.type == "cuda":
            row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            torch.cuda.reset_peak_memory_stats(device)
        result["stages"][stage] = row
        emit({stage: row}, result, args.json)

    if "warmup" in stages:
        # WarmUp: a new path every step; eager vs the SuperNet's candidate ops replayed as CUDA graphs
        warm_losses, warm_times, graphed, nets = {}, {}, False, {}
        for name, engine in (("eager", eager_engine), ("fast", fast_engine)):
            torch.manual_seed(0)
            net = engine.prepare(space.build_supernet(3, 10)).train()
            warm_trainer = Trainer(net.parameters(), optim, 10_000, engine)
            restore = graph_candidate_ops(net, engine, lambda: (x, y), "throughput") if name == "fast" else (lambda: None)
            graphed = graphed or any("forward" in m.__dict__ for m in net.modules())
            paths = np.random.default_rng(5)
            seen = []

            def warm_step():
                arch = space.sample(paths)
                seen.append(float(warm_trainer.step(lambda inputs: net(inputs, arch), x, y).detach()))

            warm_times[name] = _timed(warm_step, args.steps, args.warm, device)
            warm_losses[name] = seen
            nets[name] = (net, warm_trainer, restore)
        diff = max(abs(a - b) / max(abs(b), 1e-6) for a, b in zip(warm_losses["fast"], warm_losses["eager"]))
        result["warmup_loss_max_rel_diff"] = diff
        note = f"per-op CUDA graphs; losses over {len(warm_losses['eager'])} steps: max relative difference {diff:.2e}"
        if not graphed:
            note += "; the graphs did not apply (see the log line above): both runs eager"
        record("warmup", warm_times["eager"], warm_times["fast"], note)
        for _, _, restore in nets.values():
            restore()

    if "fixed" in stages:
        # fixed architecture: eager vs the fast path, same initial weights, losses compared
        arch = space.sample(np.random.default_rng(1))
        losses = {}
        times = {}
        for name, engine in (("eager", eager_engine), ("fast", fast_engine)):
            torch.manual_seed(1)
            net = engine.prepare(space.build_network(arch, 3, 10)).train()
            fixed_trainer = Trainer(net.parameters(), optim, 10_000, engine)
            started = time.perf_counter()
            forward = fast_fixed_network(net, engine, lambda: (x, y), "throughput") if name == "fast" else net
            setup = time.perf_counter() - started
            seen = []

            def fixed_step():
                seen.append(float(fixed_trainer.step(forward, x, y).detach()))

            times[name] = _timed(fixed_step, args.steps, args.warm, device)
            losses[name] = seen
            result[f"fixed_{name}_setup_s"] = setup
            result[f"fixed_{name}_compiled"] = forward is not net
        diff = max(abs(a - b) / max(abs(b), 1e-6) for a, b in zip(losses["fast"], losses["eager"]))
        result["fixed_loss_max_rel_diff"] = diff
        note = f"losses over {len(losses['eager'])} steps: max relative difference {diff:.2e}"
        if not result["fixed_fast_compiled"]:
            note += "; the fast path did not apply (see the log line above): both runs eager"
        record("fixed", times["eager"], times["fast"], note)

    if "search" in stages:
        # search proxy, the `paper` setting (a trained HyperNet): a weight step on a sampled path
        # with its offsets, then the sample and the greedy architecture scored on a batch (fast:
        # the weight step's ops as CUDA graphs with the offsets as graph inputs, the two paths
        # scored together in flight)
        greedy = space.sample(np.random.default_rng(2))
        search_times, search_losses, offsets_graphed = {}, {}, False
        for name, engine in (("eager", eager_engine), ("fast", fast_engine)):
            torch.manual_seed(2)
            net = engine.prepare(space.build_supernet(3, 10)).train()
            hypernet = build_hypernet(space, HyperNetConfig(mode="trained"), seed=0).to(device)
            shared = WeaklySharedSuperNet(net, hypernet)
            search_trainer = Trainer(shared.trainable_parameters(), optim, 10_000, engine)
            restore = (graph_candidate_ops(net, engine, lambda: (x, y), "throughput", offsets_for=shared.offsets)
                       if name == "fast" else (lambda: None))
            offsets_graphed = offsets_graphed or any("forward" in m.__dict__ for m in net.modules())
            paths = np.random.default_rng(6)
            seen = []
            batch_statistics = BatchStatistics(shared)  # built once, as the search method does

            def search_step():
                sample = space.sample(paths)
                seen.append(float(search_trainer.step(lambda inputs: shared(inputs, sample), x, y).detach()))
                with batch_statistics(), eager_engine.autocast():
                    if name == "eager":
                        torch.stack([path_cross_entropy(shared(x, a), y) for a in (sample, greedy)])
                    else:
                        block_cross_entropies(shared.forward_paths(x.repeat(2, 1, 1, 1), [sample, greedy]), y, 2)

            search_times[name] = _timed(search_step, args.steps, args.warm, device)
            search_losses[name] = seen
            restore()
        diff = max(abs(a - b) / max(abs(b), 1e-6) for a, b in zip(search_losses["fast"], search_losses["eager"]))
        result["search_loss_max_rel_diff"] = diff
        note = (f"proxy (HyperNet-offset weight step + 2 scored paths); fast: the weight step's ops as CUDA graphs "
                f"(offsets as graph inputs), the 2 paths scored together; losses over {len(search_losses['eager'])} "
                f"steps: max relative difference {diff:.2e}")
        if not offsets_graphed:
            note += "; the graphs did not apply (see the log line above): the weight steps ran eager"
        record("search", search_times["eager"], search_times["fast"], note)

    if "ranking" in stages:
        # ranking: inherited-weight evaluation with BN recalibration (the ranking defaults: 4
        # calibration batches of 128, 2,000 valid images in batches of 512), one architecture at
        # a time against --paths architectures in flight
        calib = [(torch.randn(128, 3, 32, 32, device=device), None) for _ in range(4)]
        valid = []
        for start in range(0, args.rank_valid, 512):
            n = min(512, args.rank_valid - start)
            valid.append((torch.randn(n, 3, 32, 32, device=device), torch.randint(0, 10, (n,), device=device)))
        if eager_engine.channels_last:
            calib = [(c.contiguous(memory_format=torch.channels_last), None) for c, _ in calib]
            valid = [(v.contiguous(memory_format=torch.channels_last), t) for v, t in valid]
        torch.manual_seed(3)
        supernet = eager_engine.prepare(space.build_supernet(3, 10))
        archs = space.sample_unique(np.random.default_rng(3), 2 * args.paths)
        one = Engine(device, from_dict(EngineConfig, {"paths_in_flight": 1}))
        many = Engine(device, from_dict(EngineConfig, {"paths_in_flight": args.paths}))
        rank_results = {}

        def ranked(engine, name):
            def run():
                rank_results[name] = evaluate_many(supernet, archs, valid, engine, calib)
            return run

        eager_s = _timed(ranked(one, "eager"), 1, 1, device) / len(archs)
        fast_s = _timed(ranked(many, "fast"), 1, 1, device) / len(archs)
        gaps = [abs(a["loss"] - b["loss"]) / max(abs(b["loss"]), 1e-6)
                for a, b in zip(rank_results["fast"], rank_results["eager"])]
        flips = max(abs(a["acc"] - b["acc"]) for a, b in zip(rank_results["fast"], rank_results["eager"]))
        counts = {}
        for name, engine in (("eager", one), ("fast", many)):
            with Dispatches() as seen:
                evaluate_many(supernet, archs[:args.paths], valid, engine, calib)
            counts[name] = (seen.kernels / args.paths, seen.syncs / args.paths)
        result["ranking_per_arch"] = {name: {"device_ops": ops, "host_syncs": syncs} for name, (ops, syncs) in counts.items()}
        result["ranking_loss_max_rel_diff"] = max(gaps)
        record("ranking", eager_s, fast_s,
               f"per architecture; {args.paths} paths in flight; device ops per architecture "
               f"{counts['eager'][0]:.0f} -> {counts['fast'][0]:.0f}, host syncs {counts['eager'][1]:.0f} -> "
               f"{counts['fast'][1]:.1f}; loss max relative difference {max(gaps):.2e}, accuracy {flips:.3f} points",
               unit="archs")

if __name__ == "__main__":
    main()
