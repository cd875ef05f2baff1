"""Artifact files: atomic, device-portable torch checkpoints."""

from wpnas.io.checkpoints import atomic_write, load_checkpoint, save_checkpoint

__all__ = ["atomic_write", "load_checkpoint", "save_checkpoint"]
