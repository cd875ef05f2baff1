"""Training from scratch under DistributedDataParallel (2 Gloo ranks) against one process.

Within float tolerance, the weights equal those of one process that sees the same global
batches and normalises each half of a batch with that half's BN statistics, as the ranks
do (the ranks' gradient sums run in another order than autograd's over the whole batch).
"""

from __future__ import annotations

import pytest
import torch

from wpnas import distributed
from wpnas.config import from_dict
from wpnas.errors import WorkerError
from wpnas.spaces import get_space
from wpnas.train.scratch import EvaluationConfig, train_from_scratch

SETTINGS = {"epochs": 2, "batch_size": 32, "valid_every": 0, "export": "none",
            "augment": {"crop_padding": 1, "flip": True, "cutout": 0},  # (a cutout of 16 blanks an 8x8 image)
            "optim": {"lr": 0.05, "weight_decay": 5e-4, "momentum": 0.9}}
ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2|"
SEED = 4


def _space():
    return get_space("nats_tss", C=4, N=1)


def _train(splits, settings):
    space = _space()
    cfg = from_dict(EvaluationConfig, settings, where="evaluation")
    net, history, final = train_from_scratch(space, space.from_string(ARCH), splits, cfg, "cpu", seed=SEED)
    return {k: v.detach().clone() for k, v in net.named_parameters()}, history, final


@pytest.mark.slow
def test_two_ranks_train_the_network_of_one_process(tiny_splits, monkeypatch):
    two, history, final = distributed.launch(_train, (tiny_splits, SETTINGS), {"nproc_per_node": 2, "backend": "gloo"})
    network = type(_space().build_network(_space().from_string(ARCH), 1, 10))
    plain = network.forward

    def per_share(self, x):
        return torch.cat([plain(self, part) for part in x.tensor_split(2)]) if self.training else plain(self, x)

    with monkeypatch.context() as patch:
        patch.setattr(network, "forward", per_share)
        one, reference_history, _ = _train(tiny_splits, SETTINGS)
    for name, value in one.items():
        torch.testing.assert_close(two[name], value, rtol=1e-4, atol=1e-5, msg=name)
    for mine, theirs in zip(history, reference_history):  # the loss of the whole global batches
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-4, abs=1e-5)
        assert mine["train_acc"] == pytest.approx(theirs["train_acc"], abs=1e-6)
    assert 0 <= final["test_accuracy"] <= 100
    # and the ranks did train apart: whole-batch BN statistics in one process end elsewhere
    whole, _, _ = _train(tiny_splits, SETTINGS)
    assert any(not torch.allclose(two[n], v, rtol=1e-4, atol=1e-5) for n, v in whole.items())

    with pytest.raises(WorkerError, match=r"evaluation\.batch_size: 33 images per batch do not split evenly over 2"):
        distributed.launch(_train, (tiny_splits, {**SETTINGS, "batch_size": 33}), {"nproc_per_node": 2})


def _repeated(splits, settings):
    """One rank (or the one process): the whole step 5 with ``repeats`` runs."""
    from wpnas.train.scratch import evaluate_genotype

    space = _space()
    cfg = from_dict(EvaluationConfig, settings, where="evaluation")
    genotype = {"space": space.name, "options": space.options(), "arch": ARCH,
                "choices": list(space.from_string(ARCH))}
    result = evaluate_genotype(genotype, space, splits, cfg, "cpu", seed=SEED)
    return result.metrics, {k: v.detach().clone() for k, v in result.network.state_dict().items()}


@pytest.mark.slow
def test_repeated_runs_are_a_map_over_the_ranks(tiny_splits):
    """`evaluation.repeats`: the runs (seeds SEED, SEED + 1) shard over 2 ranks, each trained alone,
    and give exactly the runs of one process; the first run is the single-run evaluation."""
    settings = {**SETTINGS, "repeats": 2, "batch_size": 33}  # no data parallelism: any batch size
    two, two_state = distributed.launch(_repeated, (tiny_splits, settings), {"nproc_per_node": 2})
    one, one_state = _repeated(tiny_splits, settings)
    assert [r["seed"] for r in two["runs"]] == [SEED, SEED + 1]
    assert two["runs"] == one["runs"]
    assert all(torch.equal(two_state[k], v) for k, v in one_state.items())
    accs = [r["test_accuracy"] for r in one["runs"]]
    assert one["test_accuracy"] == pytest.approx(sum(accs) / 2)
    assert one["test_accuracy_std"] == pytest.approx(abs(accs[0] - accs[1]) / 2 ** 0.5)
    single, single_state = _repeated(tiny_splits, {**settings, "repeats": 1})
    assert single["test_accuracy"] == accs[0] and all(torch.equal(single_state[k], v) for k, v in one_state.items())



def test_more_ranks_than_evaluation_runs_are_refused_before_the_run(monkeypatch):
    from wpnas.errors import ConfigError
    from wpnas.pipelines.params import validate_parameters

    for key in ("WORLD_SIZE", "RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    params = {"run": {"device": "cpu", "distributed": {"nproc_per_node": 3}},
              "evaluation": {"repeats": 2, "batch_size": 31, "benchmark": None}}
    with pytest.raises(ConfigError, match=r"a world of 3 processes is larger than the work \(2 evaluation runs"):
        validate_parameters(params, ["evaluate_final_model"])
    params["evaluation"]["repeats"] = 3
    validate_parameters(params, ["evaluate_final_model"])  # a map: the batch need not split over the ranks
