"""TorchScript model files, written atomically, with their metadata inside.

A file holds a ``torch.jit`` module plus one JSON extra file (``wpnas_model.json``: space,
architecture, input shape, normalisation, class names). It loads with plain
``torch.jit.load``; wpnas is not needed to run it::

    extra = {"wpnas_model.json": ""}
    model = torch.jit.load(path, map_location="cpu", _extra_files=extra)
    meta = json.loads(extra["wpnas_model.json"])
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from wpnas.errors import CheckpointError
from wpnas.io.atomic import atomic_write

#: Name of the JSON extra file that carries the metadata.
METADATA_FILE = "wpnas_model.json"


@dataclass
class TorchScriptExport:
    """A scripted/traced module and its metadata; ``module`` is None when export is off."""

    module: torch.jit.ScriptModule | None
    metadata: dict[str, Any] = field(default_factory=dict)


def save_torchscript(export: TorchScriptExport, path: str | Path) -> None:
    """Write ``export`` to ``path`` (temporary file + rename: a failure keeps the old file)."""
    if export.module is None:
        raise CheckpointError(f"nothing to write to {str(path)!r}: the export holds no module")
    extra = {METADATA_FILE: json.dumps(export.metadata, sort_keys=True)}
    with atomic_write(path, what="TorchScript file") as handle, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.save.* is deprecated", category=FutureWarning)
        torch.jit.save(export.module, handle, _extra_files=extra)


def load_torchscript(path: str | Path, map_location: str | torch.device = "cpu") -> TorchScriptExport:
    """Read a file written by :func:`save_torchscript` (metadata is empty if absent)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"TorchScript file {str(path)!r} does not exist")
    extra = {METADATA_FILE: ""}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated", category=FutureWarning)
            module = torch.jit.load(str(path), map_location=map_location, _extra_files=extra)
    except Exception as err:  # torch raises several types for corrupt files
        raise CheckpointError(f"{str(path)!r} is not a readable TorchScript file ({type(err).__name__}: {err})") from err
    text = extra[METADATA_FILE]
    metadata = json.loads(text) if text else {}
    return TorchScriptExport(module, metadata)
