import torch

from wpnas.config import seed_everything
from wpnas.io.checkpoints import load_checkpoint, save_checkpoint
from wpnas.io.supernet_checkpoint import describe_for, restore_supernet
from wpnas.errors import CheckpointError
from wpnas.spaces import get_space
from wpnas.train.warmup import WarmupConfig, probe_architectures, warmup_supernet

import pytest


def _cfg(epochs):
    return WarmupConfig(epochs=epochs, batch_size=32, probe_archs=2, probe_every=1, calib_batches=1,
                        probe_valid_limit=64)


@pytest.mark.parametrize("name,options", [("nats_tss", {"C": 4, "N": 1}), ("nats_sss", {"channels": [4, 8]})])
def test_warmup_checkpoint_holds_everything_to_resume(tiny_splits, name, options, tmp_path):
    space = get_space(name, options)
    ck = warmup_supernet(space, tiny_splits, _cfg(1), torch.device("cpu"), seed=0)
    for key in ("state_dict", "trainer", "epoch", "rng", "sampler_state", "config", "history", "supernet", "probes"):
        assert key in ck
    assert ck["epoch"] == 1 and len(ck["history"]) == 1
    assert {"train_loss", "train_acc", "probe_valid_acc_mean"} <= set(ck["history"][0])
    save_checkpoint(ck, tmp_path / "w.pt")
    loaded = load_checkpoint(tmp_path / "w.pt")
    net = restore_supernet(loaded, "cpu", expected=describe_for(name, options, 1, 10))
    x = torch.randn(2, 1, 8, 8)
    arch = space.sample(__import__("numpy").random.default_rng(0))
    assert net(x, arch).shape == (2, 10)


def test_resume_equals_uninterrupted_run(tiny_splits):
    space = get_space("nats_tss", C=4, N=1)
    seed_everything(3)
    straight = warmup_supernet(space, tiny_splits, _cfg(2), torch.device("cpu"), seed=3)
    seed_everything(3)
    stopped = _interrupted(space, tiny_splits)
    assert stopped["epoch"] == 1
    resumed = warmup_supernet(space, tiny_splits, _cfg(2), torch.device("cpu"), seed=3, resume=stopped)
    assert resumed["epoch"] == 2 and len(resumed["history"]) == 2
    for key, value in straight["state_dict"].items():
        assert torch.allclose(value.float(), resumed["state_dict"][key].float(), atol=1e-5), key


def _interrupted(space, splits):
    """The checkpoint a 2-epoch warm-up would leave had it stopped after epoch 1."""
    import wpnas.train.warmup as wu

    real = wu.train_epochs

    def first_epoch_only(trainer, batches, epochs, *args, **kwargs):
        return real(trainer, batches, 1, *args, **kwargs)

    wu.train_epochs = first_epoch_only
    try:
        checkpoint = warmup_supernet(space, splits, _cfg(2), torch.device("cpu"), seed=3)
    finally:
        wu.train_epochs = real
    return checkpoint


def test_resume_from_another_space_is_rejected(tiny_splits):
    tss = get_space("nats_tss", C=4, N=1)
    ck = warmup_supernet(tss, tiny_splits, _cfg(1), torch.device("cpu"), seed=0)
    with pytest.raises(CheckpointError, match="options"):
        warmup_supernet(get_space("nats_tss", C=8, N=1), tiny_splits, _cfg(2), torch.device("cpu"), resume=ck)
    with pytest.raises(CheckpointError, match="another space"):
        restore_supernet(ck, "cpu", expected=describe_for("nats_sss", {}, 1, 10))


def test_probe_set_is_fixed_by_seed():
    space = get_space("nats_tss")
    assert probe_architectures(space, 5, 1) == probe_architectures(space, 5, 1)
    assert probe_architectures(space, 5, 1) != probe_architectures(space, 5, 2)
