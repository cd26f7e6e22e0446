"""The routers' first weights, one vector per expert and layer, as mergekit-moe's ``gate_mode`` defines them.

- ``random``: standard normal values; ``uniform_random``: uniform in ±1/sqrt(hidden size), as ``torch.nn.Linear``
  starts. Both drawn from ``tui_merge.seed`` (0 unless given), so a build is reproducible.
- ``cheap_embed``: the base's token embeddings of each expert's prompts (each prompt after the BOS token, summed
  over the prompts' tokens), normalised; the same vector at every layer.
- ``hidden``: the base model's hidden states on each prompt, run with transformers (on CUDA when there is one),
  at the input of every layer, from the prompt's last token, averaged over the prompts; normalised per layer.
  mergekit batches the prompts and takes the last position, which is padding for the shorter ones; each prompt
  runs alone here, so its last token is its own.

Negative prompts subtract: the vector of the positive prompts minus that of the negative ones, then normalised,
as mergekit does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from tui_merge.errors import BadInputError
from tui_merge.models.info import ModelInfo
from tui_merge.tools.moe_config import Expert, MoeConfig


def gate_vectors(config: MoeConfig, base: ModelInfo, device: str, say: Callable[[str], None]):
    """A float32 tensor [layers, experts, hidden size]: row ``e`` of layer ``l`` is expert ``e``'s router row."""
    import torch

    layers, experts, hidden = base.depth, len(config.experts), base.facts.hidden_size
    if not hidden:
        raise BadInputError(f"{base.folder / 'config.json'} has no hidden_size, which the routers need.")
    generator = torch.Generator().manual_seed(config.tui_merge.seed)
    if config.gate_mode == "random":
        return torch.randn((layers, experts, hidden), generator=generator)
    if config.gate_mode == "uniform_random":
        bound = math.sqrt(1.0 / hidden)
        return torch.rand((layers, experts, hidden), generator=generator) * 2 * bound - bound
    tokenizer = _tokenizer(base.folder)
    if config.gate_mode == "cheap_embed":
        from tui_merge.models.reader import TensorReader

        if base.embedding_name is None:
            raise BadInputError(f"{base.label} has no token embedding to route by; use gate_mode: random.")
        with TensorReader() as reader:
            embedding = reader.read(base.tensors[base.embedding_name]).float()

        def vector(prompts: list[str]) -> torch.Tensor:
            ids = [index for prompt in prompts for index in _ids(tokenizer, prompt)]
            summed = embedding[torch.tensor(ids)].sum(dim=0, keepdim=True)
            return (summed / summed.norm(dim=-1, keepdim=True).clamp(min=1e-8)).repeat(layers, 1)

    else:
        model = _causal_model(base.folder, device)

        def vector(prompts: list[str]) -> torch.Tensor:
            states = []
            for prompt in prompts:
                ids = torch.tensor([_ids(tokenizer, prompt)], device=device)
                with torch.no_grad():
                    output = model(input_ids=ids, output_hidden_states=True, return_dict=True)
                states.append(torch.stack([state[0, -1].float().cpu() for state in output.hidden_states[:-1]]))
            return torch.stack(states).mean(dim=0)

    rows = []
    for index, expert in enumerate(config.experts):
        say(f"router rows of expert {index} ({expert.source_model}) from {_count(expert)}")
        rows.append(_normalised(vector(expert.positive_prompts or []), expert, vector))
    return torch.stack(rows, dim=1)


def _normalised(positive, expert: Expert, vector):
    if expert.negative_prompts:
        positive = positive - vector(expert.negative_prompts)
    return positive / positive.norm(p=2, dim=-1, keepdim=True).clamp(min=1e-8)


def _count(expert: Expert) -> str:
    negative = len(expert.negative_prompts or [])
    said = f"{len(expert.positive_prompts or [])} prompts"
    return said + (f" less {negative} negative ones" if negative else "")


def _tokenizer(folder: Path):
    from tui_merge.vocab.tokenizer import has_tokenizer, load_tokenizer

    if not has_tokenizer(folder):
        raise BadInputError(f"The base model {folder} has no tokenizer, which the prompts need; use gate_mode: random.")
    return load_tokenizer(folder)


def _ids(tokenizer, prompt: str) -> list[int]:
    """The prompt's token ids after the BOS token, without other special tokens (as mergekit tokenizes)."""
    return tokenizer((tokenizer.bos_token or "") + prompt, add_special_tokens=False)["input_ids"]


def _causal_model(folder: Path, device: str):
    from tui_merge.evaluation.scoring import load_causal_model

    return load_causal_model(folder, device, with_tokenizer=False)[0]
