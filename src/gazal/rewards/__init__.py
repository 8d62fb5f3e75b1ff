"""GRPO reward components, registry and combiner (docs/rewards.md).

    funcs, weights = build_reward_functions(RewardConfig(), tokenizer)
    GRPOTrainer(..., reward_funcs=funcs, args=GRPOConfig(reward_weights=weights, ...))

Components (one module each): ``accuracy``, ``format``, ``length`` (cosine, Yeo et al. 2025),
``repetition`` (n-gram penalty), ``structure`` (capped contentful steps). Dataset columns:
``answer`` and ``options``. ``gazal rewards audit`` checks the configured reward against a
library of reward hacks (:mod:`gazal.rewards.audit`).
"""

from .analysis import Analysis, Analyzer
from .config import COMPONENTS, RewardConfig, load_reward_config
from .registry import (
    REWARDS,
    RewardFunction,
    build_reward_functions,
    score_completions,
    weighted_total,
)

__all__ = [
    "COMPONENTS",
    "REWARDS",
    "Analysis",
    "Analyzer",
    "RewardConfig",
    "RewardFunction",
    "build_reward_functions",
    "load_reward_config",
    "score_completions",
    "weighted_total",
]
