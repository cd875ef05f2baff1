"""The SuperNet checkpoint format shared by warm-up and search.

One dict holds everything needed to resume or reuse a SuperNet: what it was built for
(space, options, input channels, classes), weights, optimizer/scheduler state, epoch,
RNG states, the stage config and per-epoch history, plus whatever a stage adds
(alpha, HyperNet). Restoring checks the description before touching any weights.
"""

from __future__ import annotations

from typing import Any

import torch

import wpnas
from wpnas.data.splits import ImageSplits
from wpnas.errors import CheckpointError, DataError
from wpnas.fingerprint import check_fingerprint
from wpnas.spaces.supernet import SuperNet, check_description, describe_supernet
from wpnas.spaces import get_space

KIND = "wpnas.supernet"


def make_checkpoint(supernet: SuperNet, stage: str, **extra: Any) -> dict[str, Any]:
    state = {k: v.detach().cpu() for k, v in supernet.state_dict().items()}
    return {
        "kind": KIND,
        "stage": stage,
        "wpnas_version": wpnas.__version__,
        "supernet": supernet.describe(),
        "state_dict": state,
        **extra,
    }


def check_checkpoint(checkpoint: Any, source: str = "supernet checkpoint") -> dict[str, Any]:
    if not isinstance(checkpoint, dict) or checkpoint.get("kind") != KIND:
        raise CheckpointError(f"{source} is not a wpnas SuperNet checkpoint (kind != {KIND!r})")
    for key in ("supernet", "state_dict"):
        if key not in checkpoint:
            raise CheckpointError(f"{source} is incomplete: missing {key!r}")
    return checkpoint


def restore_supernet(
    checkpoint: dict[str, Any],
    device: torch.device | str = "cpu",
    expected: dict[str, Any] | None = None,
    source: str = "supernet checkpoint",
) -> SuperNet:
    """Rebuild the SuperNet a checkpoint describes and load its weights.

    ``expected`` (a ``SuperNet.describe()`` dict, e.g. from the current parameters) makes
    a checkpoint written for another space or configuration fail with the differences named.
    """
    checkpoint = check_checkpoint(checkpoint, source)
    described = checkpoint["supernet"]
    if expected is not None:
        check_description(described, expected, source)
    space = get_space(described["space"], described.get("options") or {})
    supernet = space.build_supernet(described["in_channels"], described["num_classes"])
    try:
        supernet.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"{source} weights do not fit the SuperNet it describes: {err}") from err
    return supernet.to(device)


def describe_for(space_name: str, options: dict[str, Any], in_channels: int, num_classes: int) -> dict[str, Any]:
    """The ``describe()`` dict a SuperNet built from these settings would have."""
    return describe_supernet(get_space(space_name, options), in_channels, num_classes)


def check_made_from(checkpoint: dict[str, Any], splits: ImageSplits, source: str) -> None:
    """Fail when ``checkpoint`` was trained on other image splits than ``splits`` (other data
    source, split settings, input shape, normalisation, classes or sizes), naming both
    fingerprints and the fields that differ. A checkpoint written before fingerprints existed
    is accepted with a warning (and a value that is no checkpoint is left to the checks that
    read it)."""
    if not isinstance(checkpoint, dict):
        return
    check_fingerprint(
        splits.fingerprint(), (checkpoint.get("inputs") or {}).get("image_splits"), source, DataError,
        hint="The image splits changed after it was written: run the stage that wrote it again on these splits, "
             "or restore the splits it was trained on",
    )
