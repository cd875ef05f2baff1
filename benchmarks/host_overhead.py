"""Host (Python and dispatch) time of a WPNAS search step, where a large GPU waits on it.

On a big GPU the project's small-network steps are launch-bound: the step time is what the
host spends issuing work, not what the device spends on it. With a batch of 2 images at
8x8 the same holds on the CPU (the arithmetic is negligible next to the host work per
op), so host-side costs can be measured here. NATS-TSS C=16 N=5 (the paper's SuperNet,
about 870 modules), a trained HyperNet (the `paper` setting), one torch thread:

* ``bn switch``: entering and leaving the reward pass's BN mode (batch statistics, running
  statistics untouched) once, on the whole SuperNet: before, a traversal, ``model.train()``
  and ``nn.Module.__setattr__`` for every BN flag on every call (reimplemented here as the
  baseline); now ``wpnas.search.reward.BatchStatistics``, built once per search;
* ``recalibration``: ``recalibrate_bn`` of one sampled path on one batch (what every
  inherited-weight evaluation one at a time pays per architecture) against that path's
  forward alone: the difference is the function's own host time (module flags, hooks,
  resetting the path's statistics);
* ``search step``: the search proxy of ``throughput.py`` (a weight step on a sampled path
  with its offsets, then the sample and the greedy architecture scored with batch
  statistics), with either switch; both runs start from the same weights, and their
  losses must agree exactly.

    OMP_NUM_THREADS=1 python benchmarks/host_overhead.py --steps 60
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe_device  # noqa: E402

from wpnas.config import from_dict  # noqa: E402
from wpnas.nn.batchnorm import recalibrate_bn  # noqa: E402
from wpnas.search.hypernet import HyperNetConfig  # noqa: E402
from wpnas.search.reward import BatchStatistics, path_cross_entropy  # noqa: E402
from wpnas.search.weakly_shared import WeaklySharedSuperNet, build_hypernet  # noqa: E402
from wpnas.spaces import get_space  # noqa: E402
from wpnas.train.engine import Engine, EngineConfig, Trainer  # noqa: E402
from wpnas.train.optim import OptimConfig  # noqa: E402


@contextlib.contextmanager
def switched_each_time(model: nn.Module) -> Iterator[None]:
    """The reward pass's BN switch as it was: traverse, ``model.train()``, flags via ``__setattr__``."""
    flags = {m: m.training for m in model.modules()}
    tracked = {m: m.track_running_stats for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    try:
        model.train()
        for m in tracked:
            m.track_running_stats = False
        with torch.no_grad():
            yield
    finally:
        for m, value in tracked.items():
            m.track_running_stats = value
        for m, flag in flags.items():
            m.training = flag


def _median_ms(fn, count: int, warm: int) -> float:
    for _ in range(warm):
        fn()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--C", type=int, default=16)
    parser.add_argument("--N", type=int, default=5)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device("cpu")
    space = get_space("nats_tss", C=args.C, N=args.N)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([1, 7])
    engine = Engine(device, from_dict(EngineConfig, {"compile": "off"}))
    result = {"device": describe_device(device), "torch": torch.__version__, "space": space.options(),
              "batch_size": 2, "image_size": 8}

    def build():
        torch.manual_seed(0)
        net = engine.prepare(space.build_supernet(3, 10)).train()
        shared = WeaklySharedSuperNet(net, build_hypernet(space, HyperNetConfig(mode="trained"), seed=0))
        return shared, Trainer(shared.trainable_parameters(), OptimConfig(lr=0.05, lr_min=0.0), 10_000, engine)

    shared, _ = build()
    result["modules"] = sum(1 for _ in shared.modules())
    reused = BatchStatistics(shared)

    def enter_leave(switch):
        def run():
            with switch():
                pass
        return run

    before = _median_ms(enter_leave(lambda: switched_each_time(shared)), args.steps, args.warm)
    after = _median_ms(enter_leave(reused), args.steps, args.warm)
    result["bn_switch"] = {"before_ms": before, "after_ms": after, "ratio": before / after}
    print(json.dumps({"bn_switch": result["bn_switch"]}), flush=True)

    supernet = shared.supernet
    arch = space.sample(np.random.default_rng(1))
    recalibrate = _median_ms(lambda: recalibrate_bn(supernet, lambda inputs: supernet(inputs, arch), [x]),
                             args.steps, args.warm)
    supernet.train()
    with torch.no_grad():
        forward = _median_ms(lambda: supernet(x, arch), args.steps, args.warm)
    result["recalibration"] = {"recalibrate_ms": recalibrate, "forward_ms": forward, "own_ms": recalibrate - forward}
    print(json.dumps({"recalibration": result["recalibration"]}), flush=True)

    greedy = space.sample(np.random.default_rng(2))
    steps, losses = {}, {}
    for name in ("before", "after"):
        shared, trainer = build()
        switch = (lambda: switched_each_time(shared)) if name == "before" else BatchStatistics(shared)
        paths = np.random.default_rng(6)
        seen = []

        def step():
            sample = space.sample(paths)
            seen.append(float(trainer.step(lambda inputs: shared(inputs, sample), x, y).detach()))
            with switch():
                torch.stack([path_cross_entropy(shared(x, a), y) for a in (sample, greedy)]).cpu()

        steps[name] = _median_ms(step, args.steps, args.warm)
        losses[name] = seen
    result["search_step"] = {"before_ms": steps["before"], "after_ms": steps["after"],
                             "ratio": steps["before"] / steps["after"],
                             "losses_equal": losses["before"] == losses["after"]}
    print(json.dumps({"search_step": result["search_step"]}), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
