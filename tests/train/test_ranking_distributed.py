"""Ranking evaluation sharded over 2 Gloo ranks gives the report of one process."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from wpnas import distributed
from wpnas.config import seed_everything
from wpnas.io.supernet_checkpoint import restore_supernet
from wpnas.spaces import get_space
from wpnas.train.ranking import RankingConfig, rank_supernet
from wpnas.train.warmup import WarmupConfig, warmup_supernet

CFG = RankingConfig(valid_limit=100, calib_batches=1, calib_batch_size=64, eval_batch_size=100)


def _space():
    return get_space("nats_tss", C=4, N=1)


def _report(checkpoint, splits, pairs):
    report = rank_supernet(restore_supernet(checkpoint, "cpu"), _space(), splits, CFG, "cpu", seed=2,
                           reference=pairs)
    return report.table, {k: v for k, v in report.metrics.items() if k != "seconds"}


@pytest.mark.slow
def test_two_ranks_rank_like_one_process(tiny_splits):
    seed_everything(0)
    space = _space()
    checkpoint = warmup_supernet(space, tiny_splits, WarmupConfig(epochs=1, batch_size=32, probe_archs=0),
                                 torch.device("cpu"))
    archs = space.sample_unique(np.random.default_rng(1), 5)
    pairs = pd.DataFrame({"arch": [space.to_string(a) for a in archs], "accuracy": 50.0 + np.arange(5) * 3.7 % 11})
    one_table, one_metrics = _report(checkpoint, tiny_splits, pairs)
    two_table, two_metrics = distributed.launch(_report, (checkpoint, tiny_splits, pairs), {"nproc_per_node": 2})
    pd.testing.assert_frame_equal(two_table, one_table)  # exact: each path recalibrated on the same batches
    assert two_metrics == one_metrics
