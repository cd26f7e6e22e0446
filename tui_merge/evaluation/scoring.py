"""Score causal language models on a text and continue prompts: the numbers ``compare``, ``sweep`` and the
wizard's Try panel show.

Perplexity is ``exp`` of the mean next-token loss, computed as transformers
computes it with ``labels = input_ids`` on the model's own tokenizer output
(default special tokens). A text longer than the model's context is scored
in consecutive windows of the context length, each on its own (no tokens
carried over); the losses are combined weighted by the tokens each window
predicts (its length less one), so the result is the mean over every
predicted token. Continuations are greedy (``do_sample=False``).

Models load one at a time with transformers, in the dtype they are stored
in, on CUDA when torch sees one (else the CPU) unless a device is named, and
are freed before the next one loads.
"""

from __future__ import annotations

import gc
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tui_merge.errors import BadInputError

DEFAULT_CONTEXT = 2048
"""Windows for a model whose config names no context length."""


@dataclass(frozen=True)
class ModelScore:
    """One model's result."""

    model: str
    """As given."""
    perplexity: float | None
    tokens: int
    """Tokens of the text under the model's own tokenizer (special tokens included)."""
    continuations: dict[str, str]
    """Greedy continuation of each prompt."""
    skipped: str | None = None
    """Why the model was not scored (an encoder, no tokenizer); None when it was."""


class Stopped(Exception):
    """Scoring was asked to stop (the wizard's escape)."""


def resolve_device(device: str) -> str:
    """``auto`` is CUDA when torch sees a GPU, else the CPU; a named device must exist (the merge's rule)."""
    from tui_merge.devices import resolve_device as merge_device

    return merge_device(device, "--device")


def model_folder(argument: str) -> Path:
    """The local folder of a model argument (a folder or a hub id in the cache); adapters are not loaded here."""
    from tui_merge.models.lora import resolve_reference

    source = resolve_reference(argument)
    if source.hub is not None:
        raise BadInputError(
            f"{argument}'s weights are on the Hub, not in the local cache, and compare loads whole models: fetch "
            f"it with `hf download {source.hub.repo_id} --revision {source.hub.commit}` first."
        )
    if source.adapter is not None:
        raise BadInputError(
            f"{argument} names a LoRA adapter; compare loads models with transformers as they are stored, so "
            "merge the adapter first (tui-merge run with a passthrough config) and compare that folder."
        )
    return source.folder


def skip_reason(folder: Path) -> str | None:
    """Why a model folder cannot be scored, or None when it can."""
    from tui_merge.models.architecture_fit import is_causal_language_model
    from tui_merge.models.config_facts import read_config_facts
    from tui_merge.vocab.tokenizer import has_tokenizer

    facts = read_config_facts(folder)
    if not is_causal_language_model(facts.raw):
        named = ", ".join(facts.architectures) or facts.model_type or "it"
        return f"{named} has no language-model head, so it has no next-token perplexity"
    if not has_tokenizer(folder):
        return "it has no tokenizer files, so the text cannot be tokenized for it"
    return None


def load_causal_model(folder: Path, device: str, *, with_tokenizer: bool = True) -> tuple[Any, Any]:
    """The model (in its stored dtype, on ``device``, in eval mode) and its tokenizer (None without)."""
    import transformers

    from tui_merge.vocab.tokenizer import load_tokenizer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    tokenizer = load_tokenizer(folder) if with_tokenizer else None
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype="auto")
    except MemoryError:
        raise
    except Exception as error:  # transformers raises many kinds; each means the model cannot be loaded
        raise BadInputError(f"transformers cannot load {folder} ({type(error).__name__}: {error}).") from None
    return model.to(device).eval(), tokenizer


def context_length(model: Any) -> int:
    """The longest sequence the model's config allows."""
    config = model.config
    for key in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 1:
            return value
    return DEFAULT_CONTEXT


def perplexity(
    model: Any,
    tokenizer: Any,
    text: str,
    *,
    on_window: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> tuple[float, int]:
    """Perplexity of ``text`` and its token count; ``on_window(done, total)`` after each window."""
    import torch

    ids = tokenizer(text)["input_ids"]
    if len(ids) < 2:
        raise BadInputError("The text is too short to score: it needs at least two tokens.")
    window = context_length(model)
    device = next(model.parameters()).device
    starts = range(0, len(ids), window)
    total, predicted = 0.0, 0
    for done, start in enumerate(starts, 1):
        if stop is not None and stop.is_set():
            raise Stopped()
        piece = ids[start : start + window]
        if len(piece) >= 2:
            tensor = torch.tensor([piece], device=device)
            with torch.no_grad():
                loss = model(input_ids=tensor, labels=tensor).loss
            total += float(loss) * (len(piece) - 1)
            predicted += len(piece) - 1
        if on_window is not None:
            on_window(done, len(starts))
    return math.exp(total / predicted), len(ids)


def continuation(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int, streamer: Any = None) -> str:
    """The greedy continuation of ``prompt``, without the prompt."""
    import torch

    inputs = tokenizer(prompt, return_tensors="pt").to(next(model.parameters()).device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.no_grad():
        output = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad, streamer=streamer
        )
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)


def score_models(
    models: list[str],
    text: str,
    prompts: list[str],
    *,
    max_new_tokens: int = 32,
    device: str = "auto",
    on_progress: Callable[[str, int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> list[ModelScore]:
    """Score every model in turn (one in memory at a time); ``on_progress(model, done, total)`` per window."""
    folders = {model: model_folder(model) for model in models}  # every name checked before the first load
    place = resolve_device(device)
    scores = []
    for model, folder in folders.items():
        reason = skip_reason(folder)
        if reason is not None:
            scores.append(ModelScore(model, None, 0, {}, skipped=reason))
            continue
        loaded, tokenizer = load_causal_model(folder, place)
        try:
            report = (lambda done, total, model=model: on_progress(model, done, total)) if on_progress else None
            value, tokens = perplexity(loaded, tokenizer, text, on_window=report, stop=stop)
            answers = {prompt: continuation(loaded, tokenizer, prompt, max_new_tokens) for prompt in prompts}
        finally:
            del loaded
            free_memory()
        scores.append(ModelScore(model, value, tokens, answers))
    return scores


def free_memory() -> None:
    """Give back the memory of a model the caller has just dropped, before the next one loads (CUDA included)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def text_streamer(tokenizer: Any, on_text: Callable[[str], None], stop: threading.Event | None = None) -> Any:
    """A transformers streamer that hands each finished piece of generated text to ``on_text`` and stops the
    generation (``Stopped``) at the next token once ``stop`` is set."""
    from transformers import TextStreamer

    class _Streamer(TextStreamer):
        def put(self, value: Any) -> None:
            if stop is not None and stop.is_set():
                raise Stopped()
            super().put(value)

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            if text:
                on_text(text)

    return _Streamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
