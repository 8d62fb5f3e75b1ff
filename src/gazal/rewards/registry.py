"""Reward functions by name, and the combiner that hands them to TRL.

``build_reward_functions(cfg, tokenizer)`` returns the functions and weights for
``GRPOTrainer(reward_funcs=funcs, args=GRPOConfig(reward_weights=weights, ...))``. TRL calls
each function with the batch, logs ``rewards/<name>/mean`` and ``/std`` per component (the
name is the function's ``__name__``) and sums ``weight * reward`` into the total
(``multi_objective_aggregation="sum_then_normalize"``, TRL's default, which the audit assumes).
The functions of one build share an :class:`~gazal.rewards.analysis.Analyzer`, so a batch is
parsed once however many components read it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from . import accuracy, format, length, repetition, structure
from .analysis import Analysis, Analyzer
from .config import RewardConfig

__all__ = ["REWARDS", "RewardFunction", "build_reward_functions", "score_completions",
           "weighted_total"]

Scorer = Callable[[Analysis], float]


class RewardFunction:
    """A TRL reward function: ``(completions, **columns) -> list[float]``.

    A class rather than a closure so it pickles (TRL and accelerate may copy reward
    functions); ``__name__`` is the component name TRL logs it under.
    """

    def __init__(self, name: str, scorer: Scorer, analyzer: Analyzer):
        self.__name__ = name
        self.scorer = scorer
        self.analyzer = analyzer

    def __call__(self, completions: Sequence[Any], **columns: Any) -> list[float | None]:
        batch = self.analyzer.batch(completions, columns)
        return [self.scorer(a) for a in batch]

    def __repr__(self) -> str:
        return f"RewardFunction({self.__name__!r})"


RewardFactory = Callable[[RewardConfig, Analyzer], RewardFunction]


def _factory(name: str, scorer: Scorer) -> RewardFactory:
    def make(cfg: RewardConfig, analyzer: Analyzer) -> RewardFunction:
        return RewardFunction(name, scorer, analyzer)
    make.__doc__ = scorer.__doc__
    return make


# name -> factory(cfg, analyzer) -> reward function
REWARDS: dict[str, RewardFactory] = {
    accuracy.NAME: _factory(accuracy.NAME, accuracy.score),
    format.NAME: _factory(format.NAME, format.score),
    length.NAME: _factory(length.NAME, length.score),
    repetition.NAME: _factory(repetition.NAME, repetition.score),
    structure.NAME: _factory(structure.NAME, structure.score),
}


def build_reward_functions(cfg: RewardConfig, tokenizer: Any = None, *, cache: bool = True
                           ) -> tuple[list[RewardFunction], list[float]]:
    """The reward functions of ``cfg.components`` and their weights, for TRL.

    ``tokenizer`` (optional) gives the EOS/pad ids that mark a finished generation and counts
    tokens when the trainer passes no ``completion_ids``.
    """
    analyzer = Analyzer(cfg, tokenizer, cache=cache)
    funcs = [REWARDS[name](cfg, analyzer) for name in cfg.components]
    return funcs, cfg.weights()


def weighted_total(values: Sequence[float | None], weights: Sequence[float]) -> float:
    """TRL's combination: the sum of weight * value over components that gave a value."""
    return sum(w * v for v, w in zip(values, weights, strict=True)
               if v is not None and not math.isnan(v))


def score_completions(completions: Sequence[Any], funcs: Sequence[Callable[..., Any]],
                      weights: Sequence[float], **columns: Any) -> list[dict[str, Any]]:
    """Run reward functions over a batch the way TRL does; per completion its ``components``
    (name -> value) and weighted ``total``."""
    names = [getattr(f, "__name__", type(f).__name__) for f in funcs]
    per_func = []
    for f, name in zip(funcs, names, strict=True):
        values = list(f(completions=completions, **columns))
        if len(values) != len(completions):
            raise ValueError(f"reward '{name}' returned {len(values)} values for "
                             f"{len(completions)} completions")
        per_func.append(values)
    out = []
    for i in range(len(completions)):
        values = [v[i] for v in per_func]
        out.append({"components": dict(zip(names, values, strict=True)),
                    "total": weighted_total(values, weights)})
    return out
