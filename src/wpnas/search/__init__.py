"""Search (paper step 4): one interface for search methods, a generic runner, and the
methods: WPNAS (the architecture distribution, the reward, the self-critical policy
gradient, weakly weight sharing), SPOS evolution and random search (the baselines)."""

from wpnas.search.config import MethodNeeds, SearchConfig
from wpnas.search.distribution import ArchDistribution, chosen_probabilities
from wpnas.search.evolution import Evolution, EvolutionConfig
from wpnas.search.methods import SearchContext, SearchMethod, StepBatches
from wpnas.search.registry import available_methods, get_method, register_method
from wpnas.search.reward import (
    BatchStatistics,
    PredictionCache,
    Reward,
    RewardConfig,
    RewardParts,
    as_predictor_fn,
    batch_statistics,
    path_cross_entropy,
)
from wpnas.search.runner import SearchResult, SearchRunner, run_search
from wpnas.search.self_critical import SelfCriticalOptimizer, self_critical_loss
from wpnas.search.spos import SPOSEvolution
from wpnas.search.trajectory import (
    alpha_heatmap,
    alpha_trajectory_figure,
    probability_matrix,
    trajectory_table,
)
from wpnas.search.weakly_shared import WeaklySharedSuperNet, build_hypernet, restore_hypernet
from wpnas.search.wpnas_method import WPNASConfig, WPNASMethod, restore_search

# Importing the method modules registers the methods (a new method adds its module here).
from wpnas.search import random_search, spos, wpnas_method  # noqa: E402,F401  isort: skip

__all__ = [
    "ArchDistribution",
    "Evolution",
    "EvolutionConfig",
    "MethodNeeds",
    "PredictionCache",
    "Reward",
    "RewardConfig",
    "RewardParts",
    "SPOSEvolution",
    "SearchConfig",
    "SearchContext",
    "SearchMethod",
    "SearchResult",
    "SearchRunner",
    "SelfCriticalOptimizer",
    "StepBatches",
    "WPNASConfig",
    "WPNASMethod",
    "WeaklySharedSuperNet",
    "alpha_heatmap",
    "alpha_trajectory_figure",
    "as_predictor_fn",
    "available_methods",
    "BatchStatistics",
    "batch_statistics",
    "build_hypernet",
    "chosen_probabilities",
    "get_method",
    "path_cross_entropy",
    "probability_matrix",
    "register_method",
    "restore_hypernet",
    "restore_search",
    "run_search",
    "self_critical_loss",
    "trajectory_table",
]
