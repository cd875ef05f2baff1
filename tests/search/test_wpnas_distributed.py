"""The WPNAS search under DistributedDataParallel (2 Gloo ranks) against one process.

What holds exactly: both ranks hold the same alpha after every step (the rewards are
all-reduced before the alpha step, so the step is one computation on equal inputs).
What holds within float tolerance: alpha, SuperNet and HyperNet weights equal those of one
process that sees the same global batches but normalises each half of a batch with that
half's BN statistics, as the ranks do (weight step and reward pass alike). The ranks' sums
run in another order (all-reduce vs autograd over the whole batch), hence the tolerance.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from tests.search.conftest import search_cfg, warmed
from wpnas import distributed
from wpnas.data.sources import DataConfig, build_image_splits
from wpnas.search import run_search
from wpnas.search.weakly_shared import WeaklySharedSuperNet

SETTINGS = {"hypernet": {"mode": "trained"}, "alpha_lr": 0.05, "samples_per_step": 2}
SEED = 2


def _splits():
    return build_image_splits(DataConfig(source="digits", image_size=8))


def _search(space, checkpoint, settings=None, landmarks=None):
    """One rank (or one process): the library's search, unchanged; alpha of every rank gathered."""
    result = run_search(space, _splits(), checkpoint, search_cfg(**(settings or SETTINGS)), torch.device("cpu"),
                        seed=SEED, landmarks=landmarks)
    alpha = result.checkpoint["alpha"]
    world = distributed.current()
    alphas = [None] * world.size
    if world.active:
        dist.all_gather_object(alphas, alpha)
    else:
        alphas = [alpha]
    return result.checkpoint, result.history, alphas


def _one_process_with_rank_shards(monkeypatch, space, checkpoint, shards=2, settings=None, landmarks=None):
    """One process whose every batch is cut into ``shards`` parts normalised apart (train and reward)."""
    plain = WeaklySharedSuperNet.forward

    def per_share(self, x, arch):
        return torch.cat([plain(self, part, arch) for part in x.tensor_split(shards)])

    with monkeypatch.context() as patch:
        patch.setattr(WeaklySharedSuperNet, "forward", per_share)
        return _search(space, checkpoint, settings, landmarks)


def _weights(state):
    """The learned tensors (BN running statistics are each rank's own, and recalibrated by evaluations)."""
    return {k: v for k, v in state.items() if "running_" not in k and "num_batches_tracked" not in k}


@pytest.mark.slow
def test_two_ranks_search_like_one_process(monkeypatch):
    space, checkpoint = warmed("nats_tss", _splits())  # warmed here: inside the world WarmUp goes data parallel
    two, history, alphas = distributed.launch(_search, (space, checkpoint), {"nproc_per_node": 2, "backend": "gloo"})
    assert len(alphas) == 2
    assert torch.equal(alphas[0]["alpha"], alphas[1]["alpha"])  # the same alpha steps on both ranks, exactly

    one, reference_history, _ = _one_process_with_rank_shards(monkeypatch, space, checkpoint)
    torch.testing.assert_close(two["alpha"]["alpha"], one["alpha"]["alpha"],
                               rtol=1e-4, atol=1e-5)
    moved = one["alpha"]["alpha"].abs().max()
    assert moved > 1e-3  # alpha did move: the comparison is not of two initial values
    for name, value in _weights(one["state_dict"]).items():
        torch.testing.assert_close(two["state_dict"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    hyper_one, hyper_two = one["hypernet"]["state_dict"], two["hypernet"]["state_dict"]
    assert hyper_one
    for name, value in hyper_one.items():  # the HyperNet's gradients were all-reduced too
        torch.testing.assert_close(hyper_two[name], value, rtol=1e-4, atol=1e-5, msg=name)
    assert not all(torch.equal(v, checkpoint["state_dict"][k]) for k, v in _weights(two["state_dict"]).items())
    for mine, theirs in zip(history, reference_history):  # the whole batch's train loss and rewards
        for key in ("train_loss", "reward_mean", "baseline_reward"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-4, abs=1e-5), key

    # the per-share BN statistics matter: a plain process with whole batches ends elsewhere
    plain, _, _ = _search(space, checkpoint)
    assert not torch.allclose(plain["alpha"]["alpha"], two["alpha"]["alpha"],
                              rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_landmark_search_over_two_ranks_equals_one_process(monkeypatch):
    """The landmark term in the search's weight steps under DDP (no_sync steps, gradients averaged
    by hand, the penalty on the whole batch's CEs) trains what one process trains."""
    import numpy as np
    import pandas as pd

    space, checkpoint = warmed("nats_tss", _splits())
    archs = space.sample_unique(np.random.default_rng(1), 6)
    landmarks = pd.DataFrame({"arch": [space.to_string(a) for a in archs],
                              "accuracy": [40.0 + 7 * i for i in range(len(archs))]})
    settings = {**SETTINGS, "landmark": {"enabled": True, "weight": 2.0, "start": 0.0, "ramp": "none"}}
    two, history, alphas = distributed.launch(_search, (space, checkpoint, settings, landmarks),
                                              {"nproc_per_node": 2, "backend": "gloo"})
    assert torch.equal(alphas[0]["alpha"], alphas[1]["alpha"])
    one, _, _ = _one_process_with_rank_shards(monkeypatch, space, checkpoint, settings=settings,
                                              landmarks=landmarks)
    torch.testing.assert_close(two["alpha"]["alpha"], one["alpha"]["alpha"], rtol=1e-4, atol=1e-5)
    for name, value in _weights(one["state_dict"]).items():
        torch.testing.assert_close(two["state_dict"][name], value, rtol=1e-4, atol=1e-5, msg=name)
    assert all(h["landmark_loss"] >= 0 for h in history) and any(h["landmark_loss"] > 0 for h in history)
