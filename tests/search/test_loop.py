"""The search loop end to end on tiny NATS spaces (both), HyperNet modes, FLOPs and predictor terms."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import die_after_save
from wpnas.io.checkpoints import load_checkpoint, save_checkpoint
from wpnas.config import from_dict
from wpnas.search import runner as runner_module
from wpnas.search import SearchConfig, SearchRunner, restore_search, run_search
from wpnas.search.trajectory import COLUMNS
from wpnas.search.hypernet import HyperNetConfig
from wpnas.search.weakly_shared import build_hypernet

DEVICE = torch.device("cpu")


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_end_to_end_artifacts(kit, space_name):
    space, warmed = kit.warmed(space_name)
    result = run_search(space, kit.digits, warmed, kit.cfg(), DEVICE, seed=0)
    ckpt, traj, genotype = result.checkpoint, result.alpha_trajectory, result.final_genotype

    # searched_supernet checkpoint
    assert ckpt["kind"] == "wpnas.supernet" and ckpt["stage"] == "search" and ckpt["epoch"] == 2
    assert ckpt["supernet"] == warmed["supernet"]
    assert {"alpha", "alpha_optimizer", "hypernet", "trainer", "rng", "config", "history", "probabilities"} <= set(ckpt)
    assert len(ckpt["history"]) == 2 and len(ckpt["probabilities"]) == 3
    assert not _states_equal(ckpt["state_dict"], warmed["state_dict"])  # weights were updated
    net, dist = restore_search(ckpt)
    assert dist.argmax() == tuple(genotype["choices"])

    # alpha_trajectory: epoch x decision x choice rows, epoch 0 uniform, normalised, moved
    assert list(traj.columns) == list(COLUMNS)
    assert len(traj) == 3 * sum(space.num_choices)
    assert sorted(traj["epoch"].unique()) == [0, 1, 2]
    start = traj[traj["epoch"] == 0]
    sizes = dict(zip((d.name for d in space.decisions), space.num_choices))
    np.testing.assert_allclose(start["probability"], [1.0 / sizes[d] for d in start["decision"]], rtol=1e-6)
    sums = traj.groupby(["epoch", "decision"])["probability"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0, rtol=1e-5)
    final = traj[traj["epoch"] == 2]
    assert np.abs(final["probability"].to_numpy() - start["probability"].to_numpy()).max() > 1e-3

    # final_genotype: parses in the space, equals argmax alpha, JSON-ready
    arch = space.from_string(genotype["arch"])
    assert arch == tuple(genotype["choices"]) == dist.argmax()
    assert genotype["choice_names"] == space.choice_names(arch)
    cost = space.cost(arch, kit.digits.input_shape, kit.digits.num_classes)
    assert genotype["flops_m"] == pytest.approx(cost.flops_m) and genotype["params_m"] == pytest.approx(cost.params_m)
    lookup = {(d, c): p for d, c, p in zip(final["decision"], final["choice"], final["probability"])}
    expected = [lookup[(d.name, d.choices[a])] for d, a in zip(space.decisions, arch)]
    np.testing.assert_allclose(genotype["probabilities"], expected, rtol=1e-6)
    assert genotype["space"] == space.name and genotype["options"] == space.options()
    assert genotype["reward"]["b1"] == 0.0 and genotype["reward"]["b2"] == 0.0
    assert 0.0 <= genotype["supernet_valid_acc"] <= 100.0
    json.dumps(genotype)

    # history carries the logged metrics, all finite
    for row in result.history:
        for key in ("reward_mean", "advantage_mean", "entropy", "argmax_flops_m", "argmax_probability",
                    "argmax_valid_acc", "train_loss", "lr"):
            assert np.isfinite(row[key]), key


def test_accuracy_reward_is_the_batch_accuracy(kit):
    """reward.measure: accuracy with b1 = b2 = 0: each step's reward is the samples' accuracy."""
    space, warmed = kit.warmed("nats_tss")
    result = run_search(space, kit.digits, warmed, kit.cfg(epochs=2, steps_per_epoch=3, reward={"measure": "accuracy"}),
                        DEVICE, seed=0)
    for row in result.history:
        assert 0.0 <= row["reward_mean"] <= 1.0 and row["reward_mean"] * 100 == pytest.approx(row["valid_acc_mean"])
        assert row["ce_mean"] > 0
    assert result.final_genotype["reward"]["measure"] == "accuracy"
    ce = run_search(space, kit.digits, warmed, kit.cfg(epochs=1, steps_per_epoch=3), DEVICE, seed=0)
    assert ce.history[0]["reward_mean"] == pytest.approx(-ce.history[0]["ce_mean"])  # the paper's -CE


def test_metrics_go_to_tracking_each_epoch(kit, monkeypatch):
    space, warmed = kit.warmed("nats_tss")
    logged = []
    monkeypatch.setattr(runner_module.tracking, "log_metrics",
                        lambda metrics, step=None, prefix="": logged.append((dict(metrics), step, prefix)))
    run_search(space, kit.digits, warmed, kit.cfg(epochs=3, steps_per_epoch=2, eval_every=2), DEVICE, seed=0)
    assert [step for _, step, _ in logged] == [1, 2, 3]
    assert {prefix for _, _, prefix in logged} == {"search/"}
    for metrics, step, _ in logged:
        assert {"reward_mean", "advantage_mean", "entropy", "argmax_flops_m", "argmax_probability"} <= set(metrics)
        assert ("argmax_valid_acc" in metrics) == (step in (2, 3))  # every 2 epochs and after the last
        assert all(isinstance(v, float) for v in metrics.values())


def _sharing_pair(space):
    """Two architectures with the same kernel-bearing choice on decision 0, different elsewhere,
    both with a path from decision 0 to the output (last vs second-to-last choices)."""
    first = space.decisions[0].choices
    shared = next((k for k, c in enumerate(first) if "conv" in c), len(first) - 1)
    a = tuple([shared] + [k - 1 for k in space.num_choices[1:]])
    b = tuple([shared] + [max(k - 2, 0) for k in space.num_choices[1:]])
    return a, b


def test_hypernet_identity_at_start_then_weakly_shared(kit, space_name):
    space, warmed = kit.warmed(space_name)
    cfg = kit.cfg(hypernet={"mode": "trained", "embed_dim": 8, "hidden": 8},
                  optim={"lr": 0.1, "lr_min": 0.01})
    search = SearchRunner(space, kit.digits, warmed, cfg, DEVICE, seed=0)
    x, y = next(iter(search.ctx.valid_batches))
    a, b = _sharing_pair(space)
    # identity HyperNet: the loop's forward and reward equal plain weight sharing
    search.method.net.eval()
    with torch.no_grad():
        for arch in (a, b):
            torch.testing.assert_close(search.method.net(x, arch), search.method.net.supernet(x, arch), rtol=0, atol=0)
    plain = SearchRunner(space, kit.digits, warmed, kit.cfg(), DEVICE, seed=0)
    np.testing.assert_array_equal(np.stack(search.method.measure([a, b], x, y)),
                                  np.stack(plain.method.measure([a, b], x, y)))

    result = search.run()
    net, _ = restore_search(result.checkpoint)
    assert net.mode == "trained"
    with torch.no_grad():
        off_a, off_b = net.offsets(a), net.offsets(b)
    assert not torch.equal(off_a[0], off_b[0])  # same choice on decision 0, different offsets
    # effective weights: equal under plain sharing on every shared tensor, different with offsets
    plain_a, plain_b = net.supernet.extract(a), net.supernet.extract(b)
    common = [k for k in plain_a if k in plain_b and plain_a[k].shape == plain_b[k].shape]
    assert common
    if space_name != "darts":  # a DARTS tensor name is a node's input slot: other parents, other shared modules
        assert all(torch.equal(plain_a[k], plain_b[k]) for k in common)
    eff_a, eff_b = net.supernet.extract(a, off_a), net.supernet.extract(b, off_b)
    assert any(not torch.equal(eff_a[k], eff_b[k]) for k in common)
    # and the path itself now differs from plain weight sharing
    net.eval()
    with torch.no_grad():
        assert not torch.allclose(net(x, a), net.supernet(x, a))


def test_fixed_hypernet_is_frozen_and_not_identity(kit):
    space, warmed = kit.warmed("nats_sss")
    hyper_cfg = {"mode": "fixed", "embed_dim": 8, "hidden": 8, "fixed_scale": 0.1}
    result = run_search(space, kit.digits, warmed, kit.cfg(hypernet=hyper_cfg), DEVICE, seed=3)
    initial = build_hypernet(space, from_dict(HyperNetConfig, hyper_cfg), seed=3).state_dict()
    assert _states_equal(result.checkpoint["hypernet"]["state_dict"], initial)
    net, _ = restore_search(result.checkpoint)
    with torch.no_grad():
        assert not torch.allclose(net.offsets((0, 0, 0, 0, 0)), torch.ones(5, 5, 5))
    assert not _states_equal(result.checkpoint["state_dict"], warmed["state_dict"])


def test_reward_pass_and_frozen_weights_leave_the_supernet_untouched(kit, space_name):
    """update_weights off and no evaluation: not even BN running statistics may change."""
    space, warmed = kit.warmed(space_name)
    result = run_search(space, kit.digits, warmed, kit.cfg(update_weights=False, eval_every=0), DEVICE, seed=0)
    assert _states_equal(result.checkpoint["state_dict"], warmed["state_dict"])
    assert result.checkpoint["trainer"] is None
    assert result.alpha_trajectory["probability"].nunique() > 2  # alpha still learned


@pytest.mark.parametrize("space_name", ["nats_sss", "nats_tss"])  # the FLOPs range is read off the whole space
def test_raising_b2_never_gives_more_flops(kit, space_name):
    """b2 in units of 1 / (FLOPs range of the space): 0, 1 (the whole range is worth 1 nat of CE), 100."""
    space, warmed = kit.warmed(space_name)
    shape, classes = kit.digits.input_shape, kit.digits.num_classes
    all_flops = [space.cost(a, shape, classes).flops_m for a in space.enumerate()]
    spread = max(all_flops) - min(all_flops)
    flops = []
    for scale in (0.0, 1.0, 100.0):
        cfg = kit.cfg(epochs=3, steps_per_epoch=20, samples_per_step=4, update_weights=False, eval_every=0,
                      alpha_lr=0.2, reward={"b2": scale / spread})
        flops.append(run_search(space, kit.digits, warmed, cfg, DEVICE, seed=0).final_genotype["flops_m"])
    assert flops[0] >= flops[1] >= flops[2], flops
    assert flops[2] == pytest.approx(min(all_flops))


def test_predictor_term_steers_the_search(kit):
    """With a large b1 the argmax follows the predictor; each architecture is predicted once."""
    space, warmed = kit.warmed("nats_tss")
    target = (3, 1, 2, 3, 0, 3)
    asked = []

    def predictor(archs):
        asked.extend(tuple(a) for a in archs)
        return np.array([50.0 + 5.0 * sum(int(x == t) for x, t in zip(a, target)) for a in archs])

    cfg = kit.cfg(epochs=3, steps_per_epoch=20, update_weights=False, eval_every=0, alpha_lr=0.2,
                  samples_per_step=4, reward={"b1": 1.0})
    result = run_search(space, kit.digits, warmed, cfg, DEVICE, seed=0, predictor=predictor)
    assert tuple(result.final_genotype["choices"]) == target
    assert result.final_genotype["predicted_accuracy"] == pytest.approx(80.0)
    assert len(asked) == len(set(asked))


def _training_archs(search):
    """Record the architectures the weight updates train (forward calls with gradients on)."""
    seen = []
    forward = search.method.net.forward

    def spy(x, arch):
        if torch.is_grad_enabled():
            seen.append(tuple(arch))
        return forward(x, arch)

    search.method.net.forward = spy
    return seen


@pytest.mark.parametrize("sampling", ["probabilistic", "uniform"])
def test_sampling_mode_picks_what_the_weights_train(kit, sampling):
    space, warmed = kit.warmed("nats_sss")
    search = SearchRunner(space, kit.digits, warmed, kit.cfg(sampling=sampling, epochs=1, steps_per_epoch=12),
                         DEVICE, seed=0)
    favourite = (1, 0, 1, 0, 1)
    with torch.no_grad():
        search.method.dist.alpha.zero_()
        search.method.dist.alpha[torch.arange(5), torch.tensor(favourite)] = 30.0  # p(favourite) ~ 1
    seen = _training_archs(search)
    search.run()
    assert len(seen) == 12
    if sampling == "probabilistic":
        assert set(seen) == {favourite}
    else:
        assert len(set(seen)) > 3  # uniform draws, whatever alpha says


def test_several_samples_per_step(kit):
    space, warmed = kit.warmed("nats_tss")
    result = run_search(space, kit.digits, warmed, kit.cfg(samples_per_step=3, epochs=1), DEVICE, seed=1)
    assert np.isfinite(result.history[0]["advantage_abs_mean"])
    assert len(result.alpha_trajectory) == 2 * sum(space.num_choices)


def test_resume_continues_the_same_run(kit, tmp_path):
    """Stopping after epoch 1 and resuming from that checkpoint reproduces the uninterrupted run."""
    space, warmed = kit.warmed("nats_sss")
    cfg = kit.cfg(epochs=2, steps_per_epoch=3, hypernet={"mode": "trained", "embed_dim": 8, "hidden": 8})
    straight = run_search(space, kit.digits, warmed, cfg, DEVICE, seed=5)
    half = SearchRunner(space, kit.digits, warmed, cfg, DEVICE, seed=5).run(stop_epoch=1)
    assert half.checkpoint["epoch"] == 1 and len(half.history) == 1
    path = tmp_path / "searched_supernet.pt"  # through the file format the catalog uses (weights_only)
    save_checkpoint(half.checkpoint, path)
    resumed = run_search(space, kit.digits, warmed, cfg, DEVICE, seed=5, resume=load_checkpoint(path))
    torch.testing.assert_close(resumed.checkpoint["alpha"]["alpha"], straight.checkpoint["alpha"]["alpha"])
    assert _states_equal(resumed.checkpoint["state_dict"], straight.checkpoint["state_dict"])
    assert _states_equal(resumed.checkpoint["hypernet"]["state_dict"], straight.checkpoint["hypernet"]["state_dict"])
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert resumed.alpha_trajectory.equals(straight.alpha_trajectory)
    assert resumed.final_genotype == straight.final_genotype


def test_config_from_plain_dicts():
    cfg = from_dict(SearchConfig, {"wpnas": {"reward": {"b1": 0.5, "b2": 1e-3}, "hypernet": {"mode": "fixed"},
                                             "optim": {"lr": 0.01, "lr_min": 1e-5}}})
    assert cfg.wpnas.reward.b2 == 1e-3 and cfg.wpnas.hypernet.mode == "fixed" and cfg.wpnas.optim.lr_min == 1e-5
    defaults = SearchConfig()  # the paper's settings
    assert defaults.method == "wpnas" and defaults.epochs == 300
    assert defaults.wpnas.optim.lr == 0.01 and defaults.wpnas.optim.lr_min == 1e-5 and defaults.wpnas.alpha_lr == 3e-4


def test_a_trained_predictor_plugs_in(kit):
    """The real few-shot Predictor (through its checkpoint) is the FSP term, predictions in percent."""
    from wpnas.predictors import load_predictor, train_predictor

    space, warmed = kit.warmed("nats_tss")
    archs = space.sample_unique(np.random.default_rng(0), 24)
    accuracy = [60.0 + 3.0 * a.count(3) - 1.0 * a.count(0) for a in archs]  # percent
    trained, _ = train_predictor(space, archs, accuracy, {"kind": "fewshot", "epochs": 3, "support_size": 8,
                                                          "hidden": 16, "out_dim": 8, "decoder_hidden": 8})
    predictor = load_predictor(trained.to_checkpoint(), space)
    cfg = kit.cfg(epochs=1, steps_per_epoch=3, update_weights=False, eval_every=0, reward={"b1": 0.1})
    result = run_search(space, kit.digits, warmed, cfg, DEVICE, seed=0, predictor=predictor)
    arch = tuple(result.final_genotype["choices"])
    assert result.final_genotype["predicted_accuracy"] == pytest.approx(float(predictor.predict([arch])[0]))
    assert np.isfinite(result.history[0]["fsp_mean"])


def test_killed_search_resumes_from_its_in_progress_checkpoint(kit, tmp_path, monkeypatch):
    """A kill after epoch 2 of 3; the next call with the same inputs continues from epoch 2 and
    ends where the uninterrupted search ends, bit for bit."""
    from wpnas.config import seed_everything
    from wpnas.io.stage_checkpoint import CheckpointPolicy

    space, warmed = kit.warmed("nats_tss")
    cfg = kit.cfg(epochs=3, steps_per_epoch=2, hypernet={"mode": "trained", "embed_dim": 8, "hidden": 8})
    policy = CheckpointPolicy(every=1, folder=str(tmp_path))
    seed_everything(5, deterministic=True)
    straight = run_search(space, kit.digits, warmed, cfg, DEVICE, seed=5)
    die_after_save(monkeypatch, when=lambda state: state["epoch"] == 2)
    seed_everything(5, deterministic=True)
    with pytest.raises(KeyboardInterrupt):
        run_search(space, kit.digits, warmed, cfg, DEVICE, seed=5, checkpoint=policy)
    monkeypatch.undo()
    assert len(list(tmp_path.glob("search-*.pt"))) == 1
    seed_everything(123, deterministic=True)
    resumed = run_search(space, kit.digits, warmed, cfg, DEVICE, seed=5, checkpoint=policy)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert torch.equal(resumed.checkpoint["alpha"]["alpha"], straight.checkpoint["alpha"]["alpha"])
    assert _states_equal(resumed.checkpoint["state_dict"], straight.checkpoint["state_dict"])
    assert _states_equal(resumed.checkpoint["hypernet"]["state_dict"], straight.checkpoint["hypernet"]["state_dict"])
    assert resumed.final_genotype == straight.final_genotype
    assert resumed.checkpoint["fingerprint"] == straight.checkpoint["fingerprint"]
    assert list(tmp_path.iterdir()) == []
