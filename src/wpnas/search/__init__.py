"""WPNAS search (paper Sections 3.1, 3.3, 3.4): the architecture distribution, the reward,
the self-critical policy gradient, weakly weight sharing and the search loop."""

from wpnas.search.distribution import ArchDistribution, chosen_probabilities
from wpnas.search.loop import SearchConfig, SearchResult, WPNASSearch, restore_search, run_search
from wpnas.search.reward import (
    PredictionCache,
    Reward,
    RewardConfig,
    RewardParts,
    as_predictor_fn,
    batch_statistics,
    path_cross_entropy,
)
from wpnas.search.self_critical import SelfCriticalOptimizer, self_critical_loss
from wpnas.search.trajectory import (
    alpha_heatmap,
    alpha_trajectory_figure,
    probability_matrix,
    trajectory_table,
)
from wpnas.search.weakly_shared import WeaklySharedSuperNet, build_hypernet, restore_hypernet

__all__ = [
    "ArchDistribution",
    "PredictionCache",
    "Reward",
    "RewardConfig",
    "RewardParts",
    "SearchConfig",
    "SearchResult",
    "SelfCriticalOptimizer",
    "WPNASSearch",
    "WeaklySharedSuperNet",
    "alpha_heatmap",
    "alpha_trajectory_figure",
    "as_predictor_fn",
    "batch_statistics",
    "build_hypernet",
    "chosen_probabilities",
    "path_cross_entropy",
    "probability_matrix",
    "restore_hypernet",
    "restore_search",
    "run_search",
    "self_critical_loss",
    "trajectory_table",
]
