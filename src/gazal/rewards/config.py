"""The reward configuration: one typed section per component plus the gates.

A GRPO recipe embeds :class:`RewardConfig` as its ``reward:`` section; ``gazal rewards audit``
reads the same section (or a YAML holding only it). Every value is documented with where it
comes from; docs/rewards.md gives the formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gazal.config import cfg, load_section

__all__ = [
    "COMPONENTS",
    "AccuracyConfig",
    "FormatConfig",
    "GateConfig",
    "LengthConfig",
    "RepetitionConfig",
    "RewardConfig",
    "StructureConfig",
    "load_reward_config",
]

COMPONENTS = ("accuracy", "format", "length", "repetition", "structure")


def _finite(name: str, value: float) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")


def _weight(section: str, value: float) -> None:
    _finite(f"{section}.weight", value)
    if value < 0:
        raise ValueError(f"{section}.weight: must be >= 0, got {value} (a negative weight turns "
                         "a penalty into a reward, so a truncated completion could earn)")


@dataclass
class AccuracyConfig:
    weight: float = cfg(1.0, "weight of the accuracy reward (1 when the extracted answer is the "
                             "gold letter, else 0) in the total; the main signal, as in DeepSeek-R1 "
                             "and open-r1 (weight 1)")

    def __post_init__(self) -> None:
        _weight("accuracy", self.weight)


@dataclass
class FormatConfig:
    weight: float = cfg(0.5, "weight of the format reward in [0, 1]; below accuracy so format "
                             "never outweighs a right answer (our choice; open-r1 weighs format 1 "
                             "beside accuracy 1)")
    partial_credit: bool = cfg(True, "true: 0.25 for each of the four parts (thinking block, "
                                     "numbered steps, assessment, final answer line); false: 1 "
                                     "only when all four hold, else 0")
    min_assessment_words: int = cfg(3, "words (2+ letters) the '## Clinical Assessment' section "
                                       "needs between its heading and the final answer line "
                                       "(DESIGN.md: a short justification)")
    think_in_prompt: bool = cfg(False, "true when the chat template ends the generation prompt "
                                       "with <think> (the completion then holds only </think>); "
                                       "Qwen3's template does not, so false")

    def __post_init__(self) -> None:
        _weight("format", self.weight)
        if self.min_assessment_words < 0:
            raise ValueError("format.min_assessment_words must be >= 0")


@dataclass
class LengthConfig:
    weight: float = cfg(0.5, "weight of the cosine length-scaled accuracy reward (Yeo et al. 2025)")
    min_tokens: int = cfg(0, "completion length (tokens) at and below which the reward is its "
                             "length-0 value r_*_0; 0 reproduces Yeo et al.")
    max_tokens: int = cfg(4096, "L_max of Yeo et al.: completions of this many tokens or more are "
                                "treated as cut at the length limit (reward r_exceed, and every "
                                "other component <= 0); set it to the trainer's "
                                "max_completion_length")
    r_c_0: float = cfg(1.0, "reward of a correct answer of length min_tokens (short correct); "
                            "open-r1's cosine_max_value_correct (Yeo et al. use 2)")
    r_c_L: float = cfg(0.5, "reward of a correct answer of length max_tokens (long correct); "
                            "open-r1's cosine_min_value_correct (Yeo et al. use 1)")
    r_w_0: float = cfg(-1.0, "reward of a wrong answer of length min_tokens (short wrong), also "
                             "given to every invalid response; Yeo et al.'s -10 scaled by 1/10 to "
                             "the unit scale of the other components")
    r_w_L: float = cfg(0.0, "reward of a wrong answer of length max_tokens (long wrong); Yeo et "
                            "al.'s 0")
    r_exceed: float = cfg(-1.0, "reward of a completion cut at the length limit or longer than "
                                "max_tokens; Yeo et al.'s exceed-length penalty -10 scaled by 1/10")
    chars_per_token: float = cfg(4.0, "approximate characters per token, used only when neither "
                                      "completion_ids nor a tokenizer is available (the common "
                                      "~4 characters per English token)")

    def __post_init__(self) -> None:
        _weight("length", self.weight)
        for name in ("r_c_0", "r_c_L", "r_w_0", "r_w_L", "r_exceed", "chars_per_token"):
            _finite(f"length.{name}", getattr(self, name))
        if not 0 <= self.min_tokens < self.max_tokens:
            raise ValueError(f"length: need 0 <= min_tokens < max_tokens, got min_tokens="
                             f"{self.min_tokens}, max_tokens={self.max_tokens}")
        if self.r_c_0 < self.r_c_L:
            raise ValueError(f"length: a short correct answer must earn at least a long one: "
                             f"r_c_0 ({self.r_c_0}) < r_c_L ({self.r_c_L})")
        if self.r_w_L < self.r_w_0:
            raise ValueError(f"length: a long wrong answer must earn at least a short one: "
                             f"r_w_L ({self.r_w_L}) < r_w_0 ({self.r_w_0})")
        if self.r_c_L <= self.r_w_L:
            raise ValueError(f"length: every correct answer must earn more than every wrong one: "
                             f"r_c_L ({self.r_c_L}) <= r_w_L ({self.r_w_L})")
        if self.r_exceed > 0 or self.r_exceed > self.r_w_0:
            raise ValueError(f"length: r_exceed ({self.r_exceed}) must be <= 0 and <= r_w_0 "
                             f"({self.r_w_0}): a truncated completion never earns more than a "
                             "finished wrong one")
        if self.chars_per_token <= 0:
            raise ValueError("length.chars_per_token must be > 0")


@dataclass
class RepetitionConfig:
    weight: float = cfg(0.5, "weight of the n-gram repetition penalty")
    ngram_size: int = cfg(3, "n of the repeated n-grams; open-r1's repetition_n_grams default 3")
    max_penalty: float = cfg(-1.0, "penalty when every n-gram is a repeat (must be <= 0); "
                                   "open-r1's repetition_max_penalty default -1")
    unit: Literal["words", "tokens"] = cfg(
        "words", "words: whitespace-separated words, ASCII-lowercased, as Yeo et al.'s sparse "
                 "penalty (tokenizer independent, so the audit and training agree); tokens: "
                 "completion_ids (or the tokenizer), falling back to words without either")

    def __post_init__(self) -> None:
        _weight("repetition", self.weight)
        _finite("repetition.max_penalty", self.max_penalty)
        if self.ngram_size < 1:
            raise ValueError("repetition.ngram_size must be >= 1")
        if self.max_penalty > 0:
            raise ValueError(f"repetition.max_penalty ({self.max_penalty}) must be <= 0")


@dataclass
class StructureConfig:
    weight: float = cfg(0.25, "weight of the step-structure credit; the smallest weight, as "
                              "steps are easy to produce (our choice)")
    cap: int = cfg(6, "steps that earn credit at most; more steps earn nothing more, so "
                      "splitting reasoning into many tiny steps does not pay (our choice: "
                      "typical clinical reasoning takes 4-8 steps)")
    min_step_words: int = cfg(5, "words (2+ letters) a step needs to carry content (count for "
                                 "structure and the thinking gate); our choice: a clinical "
                                 "statement takes a sentence")

    def __post_init__(self) -> None:
        _weight("structure", self.weight)
        if self.cap < 1:
            raise ValueError("structure.cap must be >= 1")
        if self.min_step_words < 1:
            raise ValueError("structure.min_step_words must be >= 1")


@dataclass
class GateConfig:
    final_answer_line: bool = cfg(True, "accuracy (and the correct branch of length) counts only "
                                        "when exactly one canonical final answer line names one "
                                        "option and the shared extractor reads the same letter")
    thinking: bool = cfg(True, "accuracy counts only with exactly one closed thinking block "
                               "(at the start) holding at least min_steps steps with content")
    min_steps: int = cfg(1, "steps with content the thinking gate needs")
    degenerate: bool = cfg(True, "a response that is mostly repeated n-grams or mostly copied "
                                 "from the prompt is degenerate: its steps carry no content and "
                                 "its answer does not count")
    ngram_size: int = cfg(3, "word n-gram size of the degeneracy measures")
    max_repeated_fraction: float = cfg(0.4, "degenerate when at least this fraction of the word "
                                            "n-grams repeat an earlier one (the audit library's "
                                            "honest answers: <= 0.05; its padding and spam "
                                            "hacks: >= 0.54)")
    max_copied_fraction: float = cfg(0.5, "degenerate when at least this fraction of the "
                                          "completion's word n-grams also occur in the prompt "
                                          "(the audit library's honest answers: <= 0.15; its "
                                          "copied-question hack: 0.68)")

    def __post_init__(self) -> None:
        if self.min_steps < 0:
            raise ValueError("gates.min_steps must be >= 0")
        if self.ngram_size < 1:
            raise ValueError("gates.ngram_size must be >= 1")
        for name in ("max_repeated_fraction", "max_copied_fraction"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ValueError(f"gates.{name} must be in (0, 1], got {value}")


@dataclass
class RewardConfig:
    """The GRPO reward: which components, their weights and parameters, and the gates."""

    components: list[str] = cfg(list(COMPONENTS), "reward components, in TRL's reward_funcs "
                                                  "order; each is logged as rewards/<name>/mean")
    answer_column: str = cfg("answer", "dataset column with the gold answer (a letter, or the "
                                       "gold option's text such as yes/no/maybe)")
    options_column: str = cfg("options", "dataset column with the options (letter -> text "
                                         "mapping, or a list of texts for A, B, ...)")
    eos_token_ids: list[int] = cfg([], "token ids that end a completion, besides the "
                                       "tokenizer's eos and pad tokens; a completion whose last "
                                       "id is none of them was cut at the length limit")
    shaping_scale: float = cfg(1.0, "multiplies the weight of every component but accuracy "
                                    "(the shaping) in TRL's reward_weights: shaping scaled "
                                    "relative to the accuracy term. 1 = the weights as written; "
                                    "the GPU recipes use 0.5 with grpo.scale_rewards: none, so "
                                    "shaping alone never moves an all-wrong group like "
                                    "correctness does (docs/rewards.md, \"Advantages\")")
    accuracy: AccuracyConfig = cfg(default_factory=AccuracyConfig, help="accuracy component")
    format: FormatConfig = cfg(default_factory=FormatConfig, help="format component")
    length: LengthConfig = cfg(default_factory=LengthConfig, help="length component")
    repetition: RepetitionConfig = cfg(default_factory=RepetitionConfig,
                                       help="repetition component")
    structure: StructureConfig = cfg(default_factory=StructureConfig, help="structure component")
    gates: GateConfig = cfg(default_factory=GateConfig, help="gates between components")

    def __post_init__(self) -> None:
        unknown = [c for c in self.components if c not in COMPONENTS]
        if unknown:
            raise ValueError(f"components: unknown reward component(s) {unknown}; "
                             f"known: {', '.join(COMPONENTS)}")
        if len(set(self.components)) != len(self.components):
            raise ValueError(f"components: listed twice in {self.components}")
        if not self.components:
            raise ValueError("components: at least one reward component is needed")
        _finite("shaping_scale", self.shaping_scale)
        if self.shaping_scale < 0:
            raise ValueError(f"shaping_scale must be >= 0, got {self.shaping_scale} (a "
                             "negative scale turns every penalty into a reward)")

    def weights(self) -> list[float]:
        """The weight of each component in :attr:`components` order (TRL's reward_weights):
        ``<component>.weight``, times ``shaping_scale`` for every component but accuracy."""
        return [getattr(self, name).weight * (1.0 if name == "accuracy" else self.shaping_scale)
                for name in self.components]


def load_reward_config(recipe: str | Path | None = None,
                       overrides: list[str] | tuple[str, ...] = ()) -> RewardConfig:
    """A :class:`RewardConfig` from a recipe and ``--key value`` overrides.

    The recipe is either a training recipe with a ``reward:`` section (only that section is
    read) or a YAML holding the reward section itself. Override keys are relative to the
    reward section (``--length.max_tokens 8192``); a leading ``reward.`` is accepted.
    """
    return load_section(RewardConfig, recipe, "reward", overrides, whole_file=True)
