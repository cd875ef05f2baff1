"""SPOS evolution with its fitness map sharded over 2 Gloo ranks: the run of one process."""

from __future__ import annotations

import pytest
import torch

from tests.search.conftest import search_cfg, warmed
from wpnas import distributed
from wpnas.data.sources import DataConfig, build_image_splits
from wpnas.search import run_search

EVOLUTION = {"population": 6, "generations": 3, "top_k": 3, "num_crossover": 3, "num_mutation": 3}


def _evolve(space, checkpoint):
    splits = build_image_splits(DataConfig(source="digits", image_size=8))
    result = run_search(space, splits, checkpoint, search_cfg(method="spos_evolution", evolution=EVOLUTION),
                        torch.device("cpu"), seed=2)
    evolution = result.checkpoint["evolution"]
    return result.final_genotype["arch"], evolution["evaluated"], evolution["history"]


@pytest.mark.slow
def test_two_ranks_evolve_like_one_process():
    # warmed here, once: inside the world WarmUp itself would go data parallel
    space, checkpoint = warmed("nats_tss", build_image_splits(DataConfig(source="digits", image_size=8)))
    one = _evolve(space, checkpoint)
    two = distributed.launch(_evolve, (space, checkpoint), {"nproc_per_node": 2, "backend": "gloo"})
    assert two[0] == one[0]
    assert two[1] == one[1]  # every fitness, exactly: each architecture has its own calibration draw
    assert two[2] == one[2]
