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


class _Killed(KeyboardInterrupt):
    """Stands for a kill: raised right after the in-progress checkpoint of epoch ``at``."""


def _kill_after(monkeypatch, at):
    from wpnas.io.stage_checkpoint import StageCheckpoint

    real = StageCheckpoint.save
    saved = []

    def save_then_die(self, state):
        real(self, state)
        saved.append(state["epoch"])
        if state["epoch"] == at:
            raise _Killed()

    monkeypatch.setattr(StageCheckpoint, "save", save_then_die)
    return saved


def test_killed_and_resumed_warmup_is_bit_identical(tiny_splits, tmp_path, monkeypatch):
    from wpnas.io.stage_checkpoint import CheckpointPolicy

    space = get_space("nats_tss", C=4, N=1)
    policy = CheckpointPolicy(every=1, folder=str(tmp_path / "ck"))
    seed_everything(3, deterministic=True)
    straight = warmup_supernet(space, tiny_splits, _cfg(3), torch.device("cpu"), seed=3)
    saved = _kill_after(monkeypatch, at=2)
    seed_everything(3, deterministic=True)
    with pytest.raises(_Killed):
        warmup_supernet(space, tiny_splits, _cfg(3), torch.device("cpu"), seed=3, checkpoint=policy)
    assert saved == [1, 2] and len(list((tmp_path / "ck").glob("warmup-*.pt"))) == 1
    monkeypatch.undo()
    seed_everything(99, deterministic=True)  # the resumed run must not depend on the process's fresh RNG
    resumed = warmup_supernet(space, tiny_splits, _cfg(3), torch.device("cpu"), seed=3, checkpoint=policy)
    assert resumed["epoch"] == 3 and [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert list((tmp_path / "ck").iterdir()) == []  # a finished stage removes its in-progress file
    for key, value in straight["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    assert [h["lr"] for h in resumed["history"]] == [h["lr"] for h in straight["history"]]
    assert resumed["fingerprint"] == straight["fingerprint"]


def _killed_after_epoch_1(tiny_splits, tmp_path, monkeypatch):
    """A 3-epoch warm-up killed after its first in-progress checkpoint; (space, policy)."""
    from wpnas.io.stage_checkpoint import CheckpointPolicy

    space = get_space("nats_tss", C=4, N=1)
    policy = CheckpointPolicy(every=1, folder=str(tmp_path / "ck"))
    _kill_after(monkeypatch, at=1)
    with pytest.raises(_Killed):
        warmup_supernet(space, tiny_splits, _cfg(3), torch.device("cpu"), seed=3, checkpoint=policy)
    monkeypatch.undo()
    return space, policy


def test_in_progress_checkpoint_of_other_settings_is_not_used(tiny_splits, tmp_path, monkeypatch):
    from wpnas.io.stage_checkpoint import CheckpointPolicy

    space, policy = _killed_after_epoch_1(tiny_splits, tmp_path, monkeypatch)
    # another total (another schedule) or seed is another fingerprint: starts afresh, leaves the file alone
    other = warmup_supernet(space, tiny_splits, _cfg(2), torch.device("cpu"), seed=3, checkpoint=policy)
    assert [h["epoch"] for h in other["history"]] == [1, 2]
    assert len(list((tmp_path / "ck").glob("warmup-*.pt"))) == 1
    # resume: false ignores the file
    fresh = warmup_supernet(space, tiny_splits, _cfg(3), torch.device("cpu"), seed=3,
                            checkpoint=CheckpointPolicy(every=0, resume=False, folder=str(tmp_path / "ck")))
    assert [h["epoch"] for h in fresh["history"]] == [1, 2, 3]


def test_extending_a_finished_warmup_is_a_new_schedule_stated_in_the_log(tiny_splits, caplog, monkeypatch):
    import logging
    import math

    from wpnas.train.engine import Trainer

    space = get_space("nats_tss", C=4, N=1)
    first = warmup_supernet(space, tiny_splits, _cfg(2), torch.device("cpu"), seed=0)
    caplog.clear()
    step_lrs = []
    real_step = Trainer.step
    monkeypatch.setattr(Trainer, "step", lambda self, *a, **k: (step_lrs.append(self.lr), real_step(self, *a, **k))[1])
    with caplog.at_level(logging.INFO):
        extended = warmup_supernet(space, tiny_splits, _cfg(4), torch.device("cpu"), seed=0, resume=first)
    assert "new cosine schedule over 4 epochs" in caplog.text
    assert "warmup: 4/4" in caplog.text and "warmup: 2/2" not in caplog.text  # the true position
    cfg = _cfg(4).optim
    steps = extended["trainer"]["steps"] // 4

    def cosine(step):
        return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * step / (4 * steps)))

    lrs = [h["lr"] for h in extended["history"]]
    assert lrs[2] == pytest.approx(cosine(3 * steps)) and lrs[3] == pytest.approx(cosine(4 * steps))
    # the first step of the extension runs on the new schedule (0.055 here), not the old run's final 0.01
    assert step_lrs[0] == pytest.approx(cosine(2 * steps)) and step_lrs[0] > 0.05


def test_a_warmup_resumed_under_another_world_records_both(tiny_splits, tmp_path, monkeypatch, caplog):
    # Before: a WarmUp killed under 2 processes resumed silently under 1 and recorded world size 1.
    import logging

    space, policy = _killed_after_epoch_1(tiny_splits, tmp_path, monkeypatch)
    (path,) = (tmp_path / "ck").glob("warmup-*.pt")
    state = load_checkpoint(path)  # as the 2-process run would have written it (no "worlds": an older file)
    state["world"] = {"size": 2, "backend": "gloo"}
    state.pop("worlds", None)
    save_checkpoint(state, path)
    with caplog.at_level(logging.WARNING, logger="wpnas.train.warmup"):
        resumed = warmup_supernet(space, tiny_splits, _cfg(3), torch.device("cpu"), seed=3, checkpoint=policy)
    assert resumed["worlds"] == [{"size": 2, "backend": "gloo", "from_epoch": 0},
                                 {"size": 1, "backend": "none", "from_epoch": 1}]
    assert resumed["world"] == {"size": 1, "backend": "none"}
    assert any("epochs 1-1 ran on 2 process(es) (gloo), the rest run on 1 (none)" in r.getMessage()
               for r in caplog.records)
