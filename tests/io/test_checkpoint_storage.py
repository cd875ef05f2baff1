"""Failing saves come early and clear: output checks before training, "no space left" on a full disk."""

from __future__ import annotations

import errno
import os
import shutil

import pytest
import torch

from wpnas.errors import StorageError
from wpnas.io import checkpoints
from wpnas.io.checkpoints import check_output_location, check_output_locations, load_checkpoint, save_checkpoint


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp") or "probe" in p.name)


def test_full_disk_during_save_says_so_and_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "warmed_supernet.pt"
    save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    def full_disk(obj, handle):
        handle.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", full_disk)
    with pytest.raises(StorageError, match="no space left") as err:
        save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    assert str(path) in str(err.value) and "MiB free" in str(err.value)
    assert load_checkpoint(path)["epoch"] == 1
    assert _leftovers(tmp_path) == []


def test_short_write_from_torch_is_blamed_on_the_full_disk(tmp_path, monkeypatch):
    """torch reports a full disk as 'inline_container.cc ... unexpected pos'."""
    path = tmp_path / "searched_supernet.pt"
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=0))

    def short_write(obj, handle):
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0")

    monkeypatch.setattr(checkpoints.torch, "save", short_write)
    with pytest.raises(StorageError, match=r"no space left .*searched_supernet\.pt.*0\.0 MiB free"):
        save_checkpoint({"a": 1}, path)
    assert not path.exists() and _leftovers(tmp_path) == []


def test_other_save_errors_are_not_blamed_on_the_disk(tmp_path, monkeypatch):
    def broken(obj, handle):
        raise RuntimeError("cannot pickle this")

    monkeypatch.setattr(checkpoints.torch, "save", broken)
    with pytest.raises(RuntimeError, match="cannot pickle this") as err:
        save_checkpoint({"a": 1}, tmp_path / "x.pt")
    assert not isinstance(err.value, StorageError)


def test_output_under_a_file_is_not_writable(tmp_path):
    blocker = tmp_path / "06_models"
    blocker.write_text("not a folder")
    with pytest.raises(StorageError, match=r"output 'warmed_supernet': output folder .*06_models.* is not writable"):
        check_output_location(blocker / "warmed_supernet.pt", 1, "output 'warmed_supernet'")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod")
def test_read_only_output_folder_is_not_writable(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(StorageError, match="not writable"):
            check_output_location(folder / "a.pt", 1, "output 'a'")
    finally:
        folder.chmod(0o755)


def test_output_check_probes_the_folder_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "new" / "deeper" / "a.pt"
    check_output_location(target, 1, "output 'a'")
    assert not (tmp_path / "new").exists()  # no empty (version) folder left by the check
    target.parent.mkdir(parents=True)
    check_output_location(target, 1, "output 'a'")
    assert target.parent.is_dir() and list(target.parent.iterdir()) == []


def test_too_little_room_names_needed_and_free(tmp_path, monkeypatch):
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=3 * 2**20))
    with pytest.raises(StorageError, match=r"output 'big'.* needs about 5\.0 MiB, only 3\.0 MiB free"):
        check_output_location(tmp_path / "big.pt", 5 * 2**20, "output 'big'")
    # Each fits alone, not together on one disk.
    outputs = [(tmp_path / "a.pt", 2 * 2**20, "output 'a'"), (tmp_path / "b.pt", 2 * 2**20, "output 'b'")]
    with pytest.raises(StorageError, match=r"need about 4\.0 MiB together .*only 3\.0 MiB free"):
        check_output_locations(outputs)


def test_checkpoint_size_estimate_covers_a_real_warmup_checkpoint():
    from wpnas.pipelines.preflight import supernet_checkpoint_bytes

    params = {"space": {"name": "nats_sss"}, "data": {"source": "digits", "image_size": 8}}
    estimate = supernet_checkpoint_bytes(params)
    from wpnas.spaces import get_space

    net = get_space("nats_sss").build_supernet(1, 10)
    weights = sum(t.numel() * 4 for t in net.state_dict().values())
    assert 2 * weights < estimate < 4 * weights + 2**21
