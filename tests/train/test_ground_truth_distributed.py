"""The ground-truth map over 2 Gloo ranks returns the pairs one process computes."""

from __future__ import annotations

import pytest
import torch

from wpnas import distributed
from wpnas.config import from_dict, seed_everything
from wpnas.io.supernet_checkpoint import restore_supernet
from wpnas.spaces import get_space
from wpnas.train.ground_truth import GroundTruthConfig, acquire_ground_truth
from wpnas.train.warmup import WarmupConfig, warmup_supernet

SETTINGS = {"num_archs": 3, "epochs": 1, "batch_size": 32, "calib_batches": 1}
SAME = ["arch", "accuracy", "flops_m", "params_m", "source"]  # "seconds" is wall time


def _pairs(checkpoint, splits, settings, seed):
    """One rank (or the only process): the library call, unchanged."""
    space = get_space("nats_tss", C=4, N=1)
    cfg = from_dict(GroundTruthConfig, settings, where="ground_truth")
    supernet = restore_supernet(checkpoint, "cpu")
    return acquire_ground_truth(space, cfg, seed, supernet=supernet, splits=splits, device="cpu")


@pytest.fixture(scope="module")
def warmed(tiny_splits):
    seed_everything(0)
    space = get_space("nats_tss", C=4, N=1)
    return warmup_supernet(space, tiny_splits, WarmupConfig(epochs=1, batch_size=32, probe_archs=0), torch.device("cpu"))


@pytest.mark.slow
def test_two_ranks_give_the_pairs_of_one_process(tiny_splits, warmed):
    one = _pairs(warmed, tiny_splits, SETTINGS, 5)
    two = distributed.launch(_pairs, (warmed, tiny_splits, SETTINGS, 5), {"nproc_per_node": 2, "backend": "gloo"})
    assert len(two) == SETTINGS["num_archs"]
    # exact: each architecture is fine-tuned from the same weights with seed + its index,
    # on one torch thread in both cases, whichever rank runs it
    assert two[SAME].equals(one[SAME])
    assert two["seconds"].gt(0).all()


def _pairs_checkpointed(checkpoint, splits, settings, seed, folder):
    space = get_space("nats_tss", C=4, N=1)
    cfg = from_dict(GroundTruthConfig, settings, where="ground_truth")
    from wpnas.io.stage_checkpoint import CheckpointPolicy

    return acquire_ground_truth(space, cfg, seed, supernet=restore_supernet(checkpoint, "cpu"), splits=splits,
                                device="cpu", checkpoint=CheckpointPolicy(every=1, folder=folder))


@pytest.mark.slow
def test_two_ranks_resume_what_one_process_left(tiny_splits, warmed, tmp_path, monkeypatch):
    """A single-process run killed after one architecture; 2 ranks finish the other three."""
    from wpnas.io.stage_checkpoint import StageCheckpoint

    settings = {**SETTINGS, "num_archs": 4}
    one = _pairs(warmed, tiny_splits, settings, 5)
    real = StageCheckpoint.save
    first = {}

    def save_then_die(self, state):
        real(self, state)
        first.update(state["rows"][0])
        raise KeyboardInterrupt("killed after the first architecture")

    monkeypatch.setattr(StageCheckpoint, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        _pairs_checkpointed(warmed, tiny_splits, settings, 5, str(tmp_path))
    monkeypatch.undo()
    two = distributed.launch(_pairs_checkpointed, (warmed, tiny_splits, settings, 5, str(tmp_path)),
                             {"nproc_per_node": 2, "backend": "gloo"})
    assert two[SAME].equals(one[SAME])
    assert two["seconds"].iloc[0] == first["seconds"]  # the row of the killed run, not fine-tuned again
    assert list(tmp_path.glob("*.pt")) == []
