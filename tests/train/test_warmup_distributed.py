"""WarmUp under DistributedDataParallel (2 Gloo ranks) against one process with the same global batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wpnas import distributed
from wpnas.config import from_dict, seed_everything
from wpnas.data.batching import DeviceBatches
from wpnas.errors import WorkerError
from wpnas.spaces import get_space
from wpnas.train.engine import Engine, Trainer
from wpnas.train.landmark import LandmarkRegularizer
from wpnas.train.warmup import WarmupConfig, initial_supernet, warmup_supernet

SETTINGS = {"epochs": 1, "batch_size": 32, "probe_archs": 2, "probe_valid_limit": 64, "calib_batches": 1,
            "optim": {"weight_decay": 5e-4, "momentum": 0.9}}
SEED = 3


def _space():
    return get_space("nats_tss", C=4, N=1)


def _warm(splits, settings, landmarks=None):
    """One rank: the library's WarmUp, unchanged (it sees the world and goes data parallel)."""
    seed_everything(SEED)
    cfg = from_dict(WarmupConfig, settings, where="warmup")
    return warmup_supernet(_space(), splits, cfg, torch.device("cpu"), seed=SEED, landmarks=landmarks)


def _one_process_with_rank_shards(splits, settings, shards=2, landmarks=None):
    """The same global batches, paths and optimizer in one process, BN statistics per shard.

    Each rank normalises its half of the batch with that half's statistics, so the maths
    allows equality only with a single process that does the same (the loss is then the
    mean over the whole batch, the gradient the mean of the ranks' gradients).
    """
    seed_everything(SEED)
    cfg = from_dict(WarmupConfig, settings, where="warmup")
    engine = Engine("cpu", cfg.engine)
    space = _space()
    supernet = initial_supernet(space, splits.in_channels, splits.num_classes, SEED)
    train = DeviceBatches.from_splits(splits, "train", "cpu", cfg.batch_size, train=True, augment=cfg.augment,
                                      seed=SEED)
    trainer = Trainer(supernet.parameters(), cfg.optim, cfg.epochs * len(train), engine)
    rng = np.random.default_rng(SEED)
    regularizer = None
    if landmarks is not None:
        regularizer = LandmarkRegularizer(space, landmarks, cfg.landmark, seed=SEED)
        regularizer.schedule(cfg.epochs * len(train))

    def sharded(x, arch):
        return torch.cat([supernet(part, arch) for part in x.tensor_split(shards)])

    supernet.train()
    for _ in range(cfg.epochs):
        for x, y in train:
            arch = tuple(int(rng.integers(0, k)) for k in space.num_choices)
            extra = None if regularizer is None else regularizer.extra_loss(trainer.steps, sharded, x, y)
            trainer.step(lambda x: sharded(x, arch), x, y, extra_loss=extra)
    return supernet


@pytest.mark.slow
def test_two_ranks_train_the_weights_of_one_process(tiny_splits):
    checkpoint = distributed.launch(_warm, (tiny_splits, SETTINGS), {"nproc_per_node": 2, "backend": "gloo"})
    reference = _one_process_with_rank_shards(tiny_splits, SETTINGS)
    params = dict(reference.named_parameters())
    assert params
    for name, value in params.items():
        # within float tolerance: the ranks' gradients are summed by an all-reduce, the
        # reference's by autograd over the concatenated batch (another summation order)
        torch.testing.assert_close(checkpoint["state_dict"][name], value.detach(), rtol=1e-4, atol=1e-5, msg=name)
    # unused paths: parameters no sampled path touched keep their initial values exactly
    # (a zero gradient would have let weight decay and momentum move them)
    seed_everything(SEED)
    initial = _space().build_supernet(tiny_splits.in_channels, tiny_splits.num_classes).state_dict()
    untouched = [n for n, v in params.items() if torch.equal(v.detach(), initial[n])]
    assert untouched and all(torch.equal(checkpoint["state_dict"][n], initial[n]) for n in untouched)
    # and the per-rank BN statistics matter: plain one-process training with the whole batch differs
    plain = _one_process_with_rank_shards(tiny_splits, SETTINGS, shards=1)
    assert any(not torch.allclose(checkpoint["state_dict"][n], v.detach(), rtol=1e-4, atol=1e-5)
               for n, v in plain.named_parameters())
    assert checkpoint["epoch"] == 1 and "probe_valid_acc_mean" in checkpoint["history"][-1]
    assert 0 <= checkpoint["history"][-1]["train_acc"] <= 100


@pytest.mark.slow
def test_a_batch_that_does_not_split_evenly_is_refused(tiny_splits):
    with pytest.raises(WorkerError, match=r"warmup\.batch_size: 33 images per batch do not split evenly over 2"):
        distributed.launch(_warm, (tiny_splits, {**SETTINGS, "batch_size": 33}), {"nproc_per_node": 2})


@pytest.mark.slow
def test_landmark_warmup_over_two_ranks_equals_one_process(tiny_splits):
    """The landmark term under DDP: its steps run under no_sync and average the gradients by hand,
    and the ranking penalty is taken on the whole batch's CEs, so 2 ranks train the weights one
    process with the same per-shard BN statistics trains."""
    import pandas as pd

    space = _space()
    archs = space.sample_unique(np.random.default_rng(0), 6)
    landmarks = pd.DataFrame({"arch": [space.to_string(a) for a in archs],
                              "accuracy": [50.0 + 5 * i for i in range(len(archs))]})
    settings = {**SETTINGS, "landmark": {"enabled": True, "weight": 2.0, "start": 0.0, "ramp": "none",
                                         "pairs_per_step": 2}}
    checkpoint = distributed.launch(_warm, (tiny_splits, settings, landmarks), {"nproc_per_node": 2})
    reference = _one_process_with_rank_shards(tiny_splits, settings, landmarks=landmarks)
    for name, value in reference.named_parameters():
        torch.testing.assert_close(checkpoint["state_dict"][name], value.detach(), rtol=1e-4, atol=1e-5, msg=name)
    assert checkpoint["history"][-1]["landmark_loss"] > 0
    # the term changed the training: without it the weights differ
    plain = _one_process_with_rank_shards(tiny_splits, SETTINGS)
    assert any(not torch.allclose(checkpoint["state_dict"][n], v.detach(), rtol=1e-4, atol=1e-5)
               for n, v in plain.named_parameters())
