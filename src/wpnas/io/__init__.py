"""Artifact files: one atomic write for every file, device-portable torch checkpoints."""

from wpnas.io.atomic import atomic_write
from wpnas.io.checkpoints import load_checkpoint, save_checkpoint

__all__ = ["atomic_write", "load_checkpoint", "save_checkpoint"]
