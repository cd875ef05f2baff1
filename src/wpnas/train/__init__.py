"""One training engine for every stage (warm-up, fine-tuning, search, evaluation)."""

from wpnas.train.engine import EngineConfig, Trainer, evaluate, train_epochs
from wpnas.train.optim import OptimConfig

__all__ = ["EngineConfig", "OptimConfig", "Trainer", "evaluate", "train_epochs"]
