"""The fixed-architecture fast path (compiled training forward): same results as eager, and
eager with one log line whenever it cannot apply."""

from __future__ import annotations

import logging

import numpy as np

import pytest
import torch

from wpnas.config import from_dict
from wpnas.data.batching import DeviceBatches
from wpnas.spaces import get_space
from wpnas.train.engine import Engine, EngineConfig
from wpnas.train.fast import fast_fixed_network, first_batch
from wpnas.train.ground_truth import GroundTruthConfig, finetune_architecture

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _finetune(tiny_splits, engine_settings):
    """One ground-truth fine-tune (the real stage function): (valid accuracy, final weights)."""
    torch.manual_seed(0)
    space = get_space("nats_tss", C=4, N=1)
    supernet = space.build_supernet(tiny_splits.in_channels, tiny_splits.num_classes)
    cfg = from_dict(GroundTruthConfig, {"num_archs": 2, "epochs": 2, "batch_size": 32, "engine": engine_settings})
    engine = Engine("cpu", cfg.engine)
    valid = DeviceBatches.from_splits(tiny_splits, "valid", "cpu", 128, train=False)
    captured = {}
    original = supernet.inherit

    def inherit(arch):
        captured["net"] = original(arch)
        return captured["net"]

    supernet.inherit = inherit
    acc = finetune_architecture(supernet, space.from_string(ARCH), tiny_splits, cfg, engine, 3, valid)
    return acc, captured["net"].state_dict()


@pytest.mark.parametrize("backend", ["aot_eager", "cudagraphs"])
def test_compiled_fine_tune_equals_eager(tiny_splits, caplog, backend):
    """Through torch.compile's graph capture and AOT autograd (the `aot_eager` backend: no C++
    compiler needed here; `cudagraphs`, which replays CUDA graphs on a GPU and runs the captured
    graph on the CPU), a fine-tune gives the eager fine-tune's weights and accuracy."""
    eager_acc, eager_state = _finetune(tiny_splits, {"compile": "off"})
    with caplog.at_level(logging.DEBUG, logger="wpnas.train.fast"):
        fast_acc, fast_state = _finetune(tiny_splits, {"compile": "on", "compile_backend": backend})
    assert f"ground truth: training forward compiled ({backend}, no mode)" in caplog.text  # not a fallback
    assert "fast path off" not in caplog.text
    assert fast_acc == pytest.approx(eager_acc, abs=1e-9)
    for name, value in eager_state.items():
        torch.testing.assert_close(fast_state[name], value, rtol=1e-5, atol=1e-6, msg=name)


def _engine(**settings):
    return Engine("cpu", from_dict(EngineConfig, settings))


def _net(tiny_splits):
    torch.manual_seed(0)
    return get_space("nats_tss", C=4, N=1).build_network(ARCH, tiny_splits.in_channels, tiny_splits.num_classes)


def test_auto_stays_eager_on_the_cpu(tiny_splits):
    net = _net(tiny_splits)
    assert fast_fixed_network(net, _engine(compile="auto"), lambda: pytest.fail("no probe on the CPU"), "x") is net
    assert fast_fixed_network(net, _engine(compile="off"), lambda: pytest.fail("no probe"), "x") is net


def test_a_compiler_that_fails_falls_back_to_eager_with_one_line(tiny_splits, caplog):
    net = _net(tiny_splits)
    engine = _engine(compile="on", compile_backend="no_such_backend")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with caplog.at_level(logging.WARNING, logger="wpnas.train.fast"):
        out = fast_fixed_network(net, engine, lambda: first_batch(tiny_splits, 16, engine), "ground truth")
    assert out is net
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("ground truth: fast path off (") and "no_such_backend" in lines[0]
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_a_compiled_step_with_another_result_is_refused(tiny_splits, caplog):
    """Never a silent wrong result: a backend whose code computes something else fails the probe."""
    def doubling(graph, example_inputs, **options):
        def run(*args):
            out = graph(*args)
            return tuple(o * 2 if o.is_floating_point() else o for o in out) if isinstance(out, (tuple, list)) \
                else out * 2
        return run

    from torch._dynamo.backends.registry import _BACKENDS, register_backend

    if "wpnas_test_doubling" not in _BACKENDS:
        register_backend(doubling, name="wpnas_test_doubling")
    net = _net(tiny_splits)
    engine = _engine(compile="on", compile_backend="wpnas_test_doubling")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with caplog.at_level(logging.WARNING, logger="wpnas.train.fast"):
        out = fast_fixed_network(net, engine, lambda: first_batch(tiny_splits, 16, engine), "evaluation")
    assert out is net
    assert "the compiled step differs from the eager one on the first batch" in caplog.text
    # the probe left the network as it found it: weights and BN statistics
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


def test_drop_path_keeps_the_evaluation_eager(tiny_splits, caplog):
    net = _net(tiny_splits)
    with caplog.at_level(logging.INFO, logger="wpnas.train.fast"):
        out = fast_fixed_network(net, _engine(compile="on"), lambda: pytest.fail("no probe"), "evaluation",
                                 refuse="evaluation.drop_path is 0.2")
    assert out is net and "evaluation: fast path off (evaluation.drop_path is 0.2); eager training" in caplog.text


# -- per-op graphs of a SuperNet ---------------------------------------------------------------------
class CountingMaker:
    """Stands in for torch.cuda.make_graphed_callables on the CPU: the 'graph' runs the captured
    callable itself (so results must equal eager) and counts its replays. ``scale`` makes it
    compute something else."""

    def __init__(self, scale: float = 1.0, fail: bool = False):
        self.captured, self.replays, self.scale, self.fail = 0, 0, scale, fail
        self.sample_args: list[tuple] = []

    def __call__(self, module, sample_args):
        if self.fail:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing")
        self.captured += 1
        self.sample_args.append(tuple(sample_args))
        maker = self

        class Replay(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = module

            def forward(self, *args):
                maker.replays += 1
                return self.inner(*args) * maker.scale

        return Replay()


def _supernet(tiny_splits):
    torch.manual_seed(0)
    return get_space("nats_tss", C=4, N=1).build_supernet(tiny_splits.in_channels, tiny_splits.num_classes)


def test_supernet_ops_graphed_give_the_eager_step(tiny_splits, caplog):
    from wpnas.train.fast import graph_candidate_ops

    engine = _engine(graph_ops="on")
    example = first_batch(tiny_splits, 16, engine)
    eager, graphed = _supernet(tiny_splits), _supernet(tiny_splits)
    before = {k: v.clone() for k, v in graphed.state_dict().items()}
    maker = CountingMaker()
    with caplog.at_level(logging.INFO, logger="wpnas.train.fast"):
        restore = graph_candidate_ops(graphed, engine, lambda: example, "warm-up", graph_maker=maker)
    ops = graphed.candidate_ops()
    assert maker.captured == len(ops) == 3 * 6 * 4  # every op of every edge of the 3 cells (N=1) was reached
    assert f"warm-up: {len(ops)} candidate ops captured as CUDA graphs" in caplog.text
    assert all(torch.equal(before[k], v) for k, v in graphed.state_dict().items())  # capture + probe left no trace
    assert all(p.grad is None for p in graphed.parameters())
    x, y = example
    space = graphed.space
    for arch in space.sample(np.random.default_rng(3), 4):
        losses = []
        for net in (eager, graphed):
            net.train()
            loss = torch.nn.functional.cross_entropy(net(x, arch), y)
            loss.backward()
            losses.append(loss.detach())
        torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-6)  # (threaded CPU sums vary)
    for (name, a), b in zip(eager.named_parameters(), graphed.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-6, msg=name)
    assert maker.replays > 0
    replays = maker.replays
    graphed.eval()
    with torch.no_grad():
        graphed(x, space.sample(np.random.default_rng(4)))
    assert maker.replays == replays  # eval mode runs eagerly
    restore()
    assert not any("forward" in m.__dict__ for m in graphed.modules())


def test_supernet_graphs_that_compute_otherwise_or_fail_are_dropped(tiny_splits, caplog):
    from wpnas.train.fast import graph_candidate_ops

    engine = _engine(graph_ops="on")
    example = first_batch(tiny_splits, 16, engine)
    for maker, message in ((CountingMaker(scale=1.5), "the graphed step differs from the eager one"),
                           (CountingMaker(fail=True), "RuntimeError: CUDA error")):
        net = _supernet(tiny_splits)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="wpnas.train.fast"):
            graph_candidate_ops(net, engine, lambda: example, "warm-up", graph_maker=maker)
        assert "warm-up: per-op graphs off (" in caplog.text and message in caplog.text
        assert not any("forward" in m.__dict__ for m in net.modules())
    sss = get_space("nats_sss", channels=[4, 8]).build_supernet(tiny_splits.in_channels, tiny_splits.num_classes)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="wpnas.train.fast"):
        graph_candidate_ops(sss, engine, lambda: example, "warm-up", graph_maker=CountingMaker())
    assert "ops change shape with the path" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="wpnas.train.fast"):
        graph_candidate_ops(_supernet(tiny_splits), engine, lambda: example, "warm-up")  # the real maker, no CUDA here
    assert "CUDA graphs need a CUDA device" in caplog.text


class OffsetBlindMaker(CountingMaker):
    """A 'graph' that replays the op with offsets of one: wrong whenever an offset matters."""

    def __call__(self, module, sample_args):
        replay = super().__call__(module, sample_args)
        inner = replay.inner

        class Blind(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = inner

            def forward(self, x, *offsets):
                return self.inner(x, *(torch.ones_like(o) for o in offsets))

        return Blind()


def test_offsets_are_graph_inputs_and_the_probe_checks_them(tiny_splits, caplog):
    from wpnas.search.hypernet import HyperNetConfig
    from wpnas.search.weakly_shared import WeaklySharedSuperNet, build_hypernet
    from wpnas.train.fast import graph_candidate_ops

    engine = _engine(graph_ops="on")
    example = first_batch(tiny_splits, 16, engine)
    net = _supernet(tiny_splits)
    shared = WeaklySharedSuperNet(net, build_hypernet(net.space, HyperNetConfig(mode="fixed", embed_dim=8, hidden=8),
                                                      seed=0))
    maker = CountingMaker()
    with caplog.at_level(logging.INFO, logger="wpnas.train.fast"):
        restore = graph_candidate_ops(net, engine, lambda: example, "search", graph_maker=maker,
                                      offsets_for=shared.offsets)
    assert "candidate ops captured as CUDA graphs (offsets as graph inputs)" in caplog.text
    assert {len(args) for args in maker.sample_args} == {2}
    replays = maker.replays
    x, y = example
    arch = net.space.sample(np.random.default_rng(5))
    torch.nn.functional.cross_entropy(shared(x, arch), y).backward()
    assert maker.replays > replays  # a step with offsets takes the graphs
    restore()
    caplog.clear()
    blind = _supernet(tiny_splits)
    with caplog.at_level(logging.WARNING, logger="wpnas.train.fast"):
        graph_candidate_ops(blind, engine, lambda: example, "search", graph_maker=OffsetBlindMaker(),
                            offsets_for=WeaklySharedSuperNet(blind, shared.hypernet).offsets)
    assert "per-op graphs off (" in caplog.text and "the graphed step differs from the eager one" in caplog.text
    assert not any("forward" in m.__dict__ for m in blind.modules())


def test_warmup_with_graphed_ops_equals_eager_warmup(tiny_splits, monkeypatch):
    """WarmUp wires the per-op graphs in and takes them out again: same checkpoint as eager."""
    import wpnas.train.fast as fast
    from wpnas.config import seed_everything
    from wpnas.train.warmup import WarmupConfig, warmup_supernet

    def warm(engine):
        seed_everything(0)
        cfg = from_dict(WarmupConfig, {"epochs": 1, "batch_size": 32, "probe_archs": 0, "engine": engine})
        return warmup_supernet(get_space("nats_tss", C=4, N=1), tiny_splits, cfg, torch.device("cpu"), seed=0)

    eager = warm({"graph_ops": "off"})
    maker = CountingMaker()
    monkeypatch.setattr(fast, "_cuda_graph_maker", lambda engine: maker)
    graphed = warm({"graph_ops": "on"})
    assert maker.replays > 0
    for name, value in eager["state_dict"].items():
        torch.testing.assert_close(graphed["state_dict"][name], value, rtol=1e-4, atol=1e-6, msg=name)


def test_landmark_steps_keep_the_supernet_eager(tiny_splits, monkeypatch, caplog):
    """Several paths per step (the landmark term) would replay a graph twice before backward."""
    import pandas as pd

    import wpnas.train.fast as fast
    from wpnas.config import seed_everything
    from wpnas.train.warmup import WarmupConfig, warmup_supernet

    maker = CountingMaker()
    monkeypatch.setattr(fast, "_cuda_graph_maker", lambda engine: maker)
    space = get_space("nats_tss", C=4, N=1)
    archs = space.sample_unique(np.random.default_rng(0), 4)
    landmarks = pd.DataFrame({"arch": [space.to_string(a) for a in archs], "accuracy": [50.0, 60.0, 70.0, 80.0]})
    seed_everything(0)
    cfg = from_dict(WarmupConfig, {"epochs": 1, "batch_size": 32, "probe_archs": 0, "engine": {"graph_ops": "on"},
                                   "landmark": {"enabled": True, "start": 0.0}})
    with caplog.at_level(logging.INFO, logger="wpnas.train.fast"):
        warmup_supernet(space, tiny_splits, cfg, torch.device("cpu"), seed=0, landmarks=landmarks)
    assert maker.captured == 0
    assert "warm-up: per-op graphs off (the landmark term runs several paths per step" in caplog.text
