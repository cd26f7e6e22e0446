"""mergekit-moe's config, read unchanged: the base, the experts with their prompts, how the routers start.

The keys are mergekit-moe 0.1.5's: ``base_model``, ``experts`` (each ``source_model``, ``positive_prompts``,
optional ``negative_prompts``, ``noise_scale``, ``residual_scale``), ``gate_mode`` (``hidden``, ``cheap_embed``,
``random``, ``uniform_random``), ``dtype``, ``experts_per_token``, ``shared_experts`` and ``architecture``, plus
``tokenizer_source`` as the issue of a merged tokenizer names it. Our own key lives in a ``tui_merge:`` block:
``seed`` for the random gate modes and the experts' noise (0 unless given, and written into the output's recipe).
The checks mergekit-moe makes before it starts are made here too, each a sentence naming the key and its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tui_merge.config.loading import MAX_CONFIG_BYTES, parse_settings, read_text
from tui_merge.config.located import KeyPath, line_of
from tui_merge.config.schema import DTYPE_ALIASES, ModelName
from tui_merge.errors import BadInputError

GateMode = Literal["hidden", "cheap_embed", "random", "uniform_random"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Expert(_Strict):
    """A model whose MLP becomes one expert of every layer."""

    source_model: ModelName
    positive_prompts: list[str] | None = None
    negative_prompts: list[str] | None = None
    noise_scale: float | None = None
    """Gaussian noise of this standard deviation added to the expert's weights (mergekit's key)."""
    residual_scale: float | None = None
    """A factor on the expert's down projection (mergekit's key)."""


class MoeOptions(_Strict):
    """The ``tui_merge:`` block of a MoE config."""

    seed: int = 0


class MoeConfig(_Strict):
    """A mergekit-moe config."""

    base_model: ModelName
    experts: list[Expert] = Field(min_length=1)
    gate_mode: GateMode = "hidden"
    dtype: str | None = None
    experts_per_token: int = 2
    shared_experts: list[Expert] | None = None
    architecture: str | None = None
    tokenizer_source: str | None = None
    tui_merge: MoeOptions = Field(default_factory=MoeOptions)


def load_moe_config(path: str, *, allow_all_same: bool = False) -> tuple[MoeConfig, str]:
    """The config in ``path`` and its text, with mergekit-moe's checks; BadInputError naming the key and line."""
    text = read_text(Path(path), "MoE config", MAX_CONFIG_BYTES)
    config, lines = parse_settings(text, path, MoeConfig, "a mergekit-moe config")
    check_moe_config(config, path, lines, allow_all_same=allow_all_same)
    return config, text


def check_moe_config(config: MoeConfig, source: str, lines: dict[KeyPath, int], *, allow_all_same: bool) -> None:
    """mergekit-moe's own refusals (``is_bad_config``), said with the line of the key at fault."""

    def where(*path: str | int) -> str:
        return f"{source}:{line_of(lines, path)}"

    if config.dtype is not None and config.dtype not in DTYPE_ALIASES:
        raise BadInputError(f"{where('dtype')}: dtype {config.dtype!r} is not one of {', '.join(DTYPE_ALIASES)}.")
    if config.experts_per_token < 1:
        raise BadInputError(f"{where('experts_per_token')}: experts_per_token must be at least 1.")
    if len(config.experts) < config.experts_per_token:
        raise BadInputError(
            f"{where('experts_per_token')}: experts_per_token is {config.experts_per_token} but there are only "
            f"{len(config.experts)} experts; list at least as many experts."
        )
    if config.gate_mode not in ("random", "uniform_random"):
        for index, expert in enumerate(config.experts):
            if not expert.positive_prompts:
                raise BadInputError(
                    f"{where('experts', index)}: expert {index} ({expert.source_model}) has no positive_prompts, "
                    f"which gate_mode {config.gate_mode} routes by; add prompts, or use gate_mode: random."
                )
        first = _prompts(config.experts[0])
        if len(config.experts) > 1 and all(_prompts(expert) == first for expert in config.experts[1:]):
            raise BadInputError(
                f"{where('experts')}: every expert has the same prompts, so the routers could not tell them "
                "apart; give each expert prompts of what should go to it."
            )
    same = all(expert.source_model == config.experts[0].source_model for expert in config.experts[1:])
    if len(config.experts) > 1 and same and not allow_all_same:
        raise BadInputError(
            f"{where('experts')}: every expert is {config.experts[0].source_model}, which makes a bigger model that "
            "answers exactly as one; pass --i-understand-this-is-not-useful-without-training to build it anyway."
        )


def _prompts(expert: Expert) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(expert.positive_prompts or ()), tuple(expert.negative_prompts or ())
