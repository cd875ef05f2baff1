"""The search-method interface: registry, the SPOS-evolution method through the generic runner,
and the landmark term inside WPNAS weight updates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from wpnas.config import from_dict
from wpnas.errors import ConfigError
from wpnas.search import SearchConfig, SearchRunner, available_methods, get_method, run_search

DEVICE = torch.device("cpu")
EVOLUTION = {"population": 6, "generations": 3, "top_k": 3, "num_crossover": 3, "num_mutation": 3}


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_registry_knows_the_methods_and_rejects_others():
    assert {"wpnas", "spos_evolution"} <= set(available_methods())
    assert get_method("spos_evolution").name == "spos_evolution"
    with pytest.raises(ConfigError, match=r"unknown search method 'darts'.*spos_evolution"):
        get_method("darts")
    with pytest.raises(ConfigError, match="search.method: unknown search method 'random'"):
        from_dict(SearchConfig, {"method": "random"})


def test_spos_evolution_through_the_runner(kit):
    space, warmed = kit.warmed("nats_tss")
    cfg = kit.cfg(method="spos_evolution", evolution=EVOLUTION)
    runner = SearchRunner(space, kit.digits, warmed, cfg, DEVICE, seed=0)
    result = runner.run()
    genotype = result.final_genotype
    evaluated = runner.method.evolution.evaluated
    best = max(evaluated.values())
    # the final choice is the best evaluated architecture, with the fitness the runner would measure
    assert genotype["method"] == "spos_evolution" and evaluated[tuple(genotype["choices"])] == best
    assert genotype["supernet_valid_acc"] == pytest.approx(best)
    assert runner.evaluate(tuple(genotype["choices"]))["acc"] == pytest.approx(best)
    assert genotype["evaluated"] == len(evaluated) == 6 + 2 * 6
    # one epoch per generation, history and trajectory per generation; weights never trained
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert list(result.trajectory["generation"]) == [1, 2, 3]
    best_so_far = [h["best_fitness"] for h in result.history]
    assert best_so_far == sorted(best_so_far)
    assert _states_equal(
        {k: v for k, v in result.checkpoint["state_dict"].items() if "running" not in k and "num_batches" not in k},
        {k: v for k, v in warmed["state_dict"].items() if "running" not in k and "num_batches" not in k},
    )
    assert result.checkpoint["method"] == "spos_evolution"


def test_spos_evolution_resumes_exactly(kit):
    space, warmed = kit.warmed("nats_sss")
    cfg = kit.cfg(method="spos_evolution", evolution=EVOLUTION)
    straight = run_search(space, kit.digits, warmed, cfg, DEVICE, seed=2)
    half = SearchRunner(space, kit.digits, warmed, cfg, DEVICE, seed=2).run(stop_epoch=2)
    resumed = run_search(space, kit.digits, warmed, cfg, DEVICE, seed=2, resume=half.checkpoint)
    assert resumed.final_genotype == straight.final_genotype
    assert resumed.trajectory.equals(straight.trajectory)


def test_resume_refuses_another_method(kit):
    from wpnas.errors import CheckpointError

    space, warmed = kit.warmed("nats_tss")
    done = run_search(space, kit.digits, warmed, kit.cfg(epochs=1), DEVICE)
    with pytest.raises(CheckpointError, match="written by search method 'wpnas'"):
        run_search(space, kit.digits, warmed, kit.cfg(method="spos_evolution", evolution=EVOLUTION), DEVICE,
                   resume=done.checkpoint)


def test_flops_bound_below_the_space_fails_before_evolution(kit):
    space, warmed = kit.warmed("nats_tss")
    cfg = kit.cfg(method="spos_evolution", evolution={**EVOLUTION, "max_flops_m": 1e-6})
    with pytest.raises(ConfigError, match="smallest"):
        SearchRunner(space, kit.digits, warmed, cfg, DEVICE)


def _landmarks(space, n: int = 8) -> pd.DataFrame:
    archs = space.sample_unique(np.random.default_rng(0), n)
    return pd.DataFrame({"arch": [space.to_string(a) for a in archs], "accuracy": np.linspace(40.0, 80.0, n)})


def test_landmark_term_in_search_weight_updates(kit):
    space, warmed = kit.warmed("nats_tss")
    cfg = kit.cfg(landmark={"enabled": True, "weight": 1.0})
    with pytest.raises(ConfigError, match="landmark.enabled needs ground-truth pairs"):
        SearchRunner(space, kit.digits, warmed, cfg, DEVICE)
    result = run_search(space, kit.digits, warmed, cfg, DEVICE, landmarks=_landmarks(space))
    assert all(np.isfinite(h["landmark_loss"]) and h["landmark_loss"] >= 0 for h in result.history)
    plain = run_search(space, kit.digits, warmed, kit.cfg(), DEVICE)
    assert not _states_equal(result.checkpoint["state_dict"], plain.checkpoint["state_dict"])
    assert result.final_genotype["landmark"] is True


@pytest.mark.parametrize("name", ["darts", "mobilenet"])
def test_spos_evolution_on_the_darts_and_mobilenet_spaces(kit, name):
    """SPOS evolution (generic mutate / crossover, inherited-weight fitness with BN recalibration)
    on the new spaces, through the same runner: the chosen architecture is the best evaluated one."""
    space, warmed = kit.warmed(name)
    cfg = kit.cfg(method="spos_evolution", evolution=EVOLUTION, epochs=1)
    runner = SearchRunner(space, kit.digits, warmed, cfg, DEVICE, seed=0)
    genotype = runner.run().final_genotype
    evaluated = runner.method.evolution.evaluated
    assert len(evaluated) > EVOLUTION["population"]  # offspring were bred and scored
    assert evaluated[tuple(genotype["choices"])] == max(evaluated.values())
    assert space.from_string(genotype["arch"]) == tuple(genotype["choices"])


def test_wpnas_weight_steps_with_graphed_ops_equal_eager(kit, monkeypatch):
    """The search's weight steps (HyperNet off) take the per-op graphs and give the eager search."""
    import wpnas.train.fast as fast
    from tests.train.test_fast import CountingMaker

    from wpnas.config import seed_everything

    space, warmed = kit.warmed("nats_tss")
    seed_everything(0)  # the runner draws from the global generators too (as run_search seeds them)
    eager = SearchRunner(space, kit.digits, warmed, kit.cfg(engine={"graph_ops": "off"}), DEVICE, seed=0).run()
    maker = CountingMaker()
    monkeypatch.setattr(fast, "_cuda_graph_maker", lambda engine: maker)
    seed_everything(0)
    runner = SearchRunner(space, kit.digits, warmed, kit.cfg(engine={"graph_ops": "on"}), DEVICE, seed=0)
    graphed = runner.run()
    assert maker.captured > 0 and maker.replays > 0
    # within float noise: multi-threaded CPU kernels sum in an order that varies from run to run
    torch.testing.assert_close(graphed.checkpoint["alpha"]["alpha"], eager.checkpoint["alpha"]["alpha"],
                               rtol=1e-4, atol=1e-5)
    for name, value in eager.checkpoint["state_dict"].items():
        torch.testing.assert_close(graphed.checkpoint["state_dict"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    assert not any("forward" in m.__dict__ for m in runner.method.supernet.modules())  # the graphs were taken out


def test_paths_in_flight_score_like_one_at_a_time(kit, monkeypatch):
    """WPNAS scores its samples and the greedy architecture together and SPOS evaluates a
    generation in groups: the same values as one path at a time, up to float noise. (Whole
    searches are not compared: alpha's argmax breaks exact ties, and float noise decides them.)"""
    from wpnas.spaces.nats_tss_supernet import TSSSuperNet

    groups = []
    together = TSSSuperNet.forward_paths

    def spy(self, x, archs, *args, **kwargs):
        groups.append(len(archs))
        return together(self, x, archs, *args, **kwargs)

    monkeypatch.setattr(TSSSuperNet, "forward_paths", spy)
    space, warmed = kit.warmed("nats_tss")
    archs = space.sample_unique(np.random.default_rng(7), 5)
    ces = {}
    for width in (1, 3):
        cfg = kit.cfg(engine={"paths_in_flight": width}, hypernet={"mode": "trained", "embed_dim": 8, "hidden": 8})
        method = SearchRunner(space, kit.digits, warmed, cfg, DEVICE, seed=0).method
        x, y = method.ctx.valid_batches.take(1)[0]
        ces[width] = method.measure(archs, x, y)
    np.testing.assert_allclose(ces[3][0], ces[1][0], rtol=1e-5)  # CE
    np.testing.assert_allclose(ces[3][1], ces[1][1], atol=1 / len(y) + 1e-9)  # accuracy: one image at most
    assert groups == [3, 2]  # 5 architectures, 3 at a time
    groups.clear()
    fitness = {}
    for width in (1, 4):
        cfg = kit.cfg(method="spos_evolution", evolution=EVOLUTION, engine={"paths_in_flight": width})
        method = SearchRunner(space, kit.digits, warmed, cfg, DEVICE, seed=0).method
        fitness[width] = method._fitness(archs)
    assert set(groups) == {4, 1}  # 5 architectures, 4 at a time (a pass per calibration and valid batch)
    np.testing.assert_allclose(fitness[4], fitness[1], atol=100 / 100 + 1e-9)  # one valid image at most


@pytest.mark.parametrize("mode", ["trained", "fixed"])
def test_wpnas_weight_steps_with_offsets_take_graphs_equal_eager(kit, monkeypatch, mode):
    """With weakly weight sharing on, every op's offset is a second graph input (a trained
    HyperNet learns through the graphed backward): the search equals the eager one."""
    import wpnas.train.fast as fast
    from tests.train.test_fast import CountingMaker

    from wpnas.config import seed_everything

    space, warmed = kit.warmed("nats_tss")
    hypernet = {"mode": mode, "embed_dim": 8, "hidden": 8}
    seed_everything(0)
    eager = SearchRunner(space, kit.digits, warmed, kit.cfg(engine={"graph_ops": "off"}, hypernet=hypernet),
                         DEVICE, seed=0).run()
    maker = CountingMaker()
    monkeypatch.setattr(fast, "_cuda_graph_maker", lambda engine: maker)
    seed_everything(0)
    runner = SearchRunner(space, kit.digits, warmed, kit.cfg(engine={"graph_ops": "on"}, hypernet=hypernet),
                          DEVICE, seed=0)
    graphed = runner.run()
    assert maker.captured > 0 and maker.replays > 0
    # every captured op takes (input, offset); the offset requires a gradient only when the HyperNet trains
    assert {len(args) for args in maker.sample_args} == {2}
    assert {args[1].requires_grad for args in maker.sample_args} == {mode == "trained"}
    torch.testing.assert_close(graphed.checkpoint["alpha"]["alpha"], eager.checkpoint["alpha"]["alpha"],
                               rtol=1e-4, atol=1e-5)
    for name, value in eager.checkpoint["state_dict"].items():
        torch.testing.assert_close(graphed.checkpoint["state_dict"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    for name, value in eager.checkpoint["hypernet"]["state_dict"].items():
        torch.testing.assert_close(graphed.checkpoint["hypernet"]["state_dict"][name], value, rtol=1e-4, atol=1e-5,
                                   msg=name)
    if mode == "trained":  # the HyperNet did learn (so the graphed backward reached it)
        warm_state = SearchRunner(space, kit.digits, warmed, kit.cfg(hypernet=hypernet), DEVICE, seed=0)
        initial = warm_state.method.net.hypernet.state_dict()
        assert any(not torch.equal(initial[k], v) for k, v in graphed.checkpoint["hypernet"]["state_dict"].items())
