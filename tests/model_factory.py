"""Build the tiny test models: every family, relatives of one base, and damaged copies."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import torch

from tui_merge.samples import (
    SampleShape,
    add_finetune_deltas,
    inherit_weights,
    random_model,
    sample_config,
    sample_tokenizer,
    save_model,
)

BASE_SEED = 0


class ModelFactory:
    """Builds models into one folder, each once, by name."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def family(self, family: str) -> Path:
        """A base model of ``family`` in single-file safetensors."""
        path = self.root / f"family-{family}"
        if not path.exists():
            save_model(random_model(sample_config(family), BASE_SEED), path)
        return path

    def llama(
        self,
        name: str,
        *,
        finetune_seed: int | None = None,
        seed: int = BASE_SEED,
        shape: SampleShape | None = None,
        dtype: torch.dtype | None = None,
        tokenizer: bool = False,
        **config_overrides: object,
    ) -> Path:
        """A llama relative of the base: same weights where shapes allow, plus fine-tune deltas."""
        path = self.root / name
        if path.exists():
            return path
        shape = shape or SampleShape()
        base = random_model(sample_config("llama"), seed)
        model = random_model(sample_config("llama", shape, **config_overrides), seed + 1000)
        inherit_weights(model, base)
        if finetune_seed is not None:
            add_finetune_deltas(model, finetune_seed)
        save_model(model, path, dtype=dtype)
        if tokenizer:
            sample_tokenizer(shape.vocab_size).save_pretrained(path)
        return path

    def llama_tokens(
        self,
        name: str,
        *,
        finetune_seed: int,
        added: tuple[str, ...] = (),
        swapped: int = 0,
        eos: str | None = None,
        trained: int = 256,
    ) -> Path:
        """A fine-tune of the base whose tokenizer differs the way real fine-tunes' do.

        ``added`` tokens (``<|...|>`` ones special) get new rows after the base's
        256; ``swapped`` pairs of ordinary tokens trade ids, and their embedding
        and head rows trade places with them, so the model means the same thing
        under another numbering; ``eos`` names another end-of-sequence token;
        ``trained`` below 256 stops the tokenizer's training early, so the
        last of the base's tokens are missing (and ``added`` take their ids).
        """
        from safetensors.torch import load_file, save_file
        from transformers import AddedToken

        path = self.root / name
        if path.exists():
            return path
        self.llama(name, finetune_seed=finetune_seed, shape=SampleShape(vocab_size=trained + len(added)))
        tokenizer = sample_tokenizer(trained)
        tokenizer.add_tokens([AddedToken(token, special=token.startswith("<|")) for token in added])
        if eos:
            tokenizer.eos_token = eos
            config = json.loads((path / "config.json").read_text())
            config["eos_token_id"] = tokenizer.convert_tokens_to_ids(eos)
            (path / "config.json").write_text(json.dumps(config, indent=2))
        tokenizer.save_pretrained(path)
        if swapped:
            data = json.loads((path / "tokenizer.json").read_text())
            vocab = data["model"]["vocab"]
            by_id = {index: token for token, index in vocab.items()}
            order = list(range(256))
            for pair in range(swapped):
                first, second = 20 + 2 * pair, 21 + 2 * pair
                vocab[by_id[first]], vocab[by_id[second]] = second, first
                order[first], order[second] = second, first
            (path / "tokenizer.json").write_text(json.dumps(data))
            state = load_file(path / "model.safetensors")
            for key in ("model.embed_tokens.weight", "lm_head.weight"):
                state[key] = state[key][order].contiguous()
            save_file(state, path / "model.safetensors", metadata={"format": "pt"})
        return path

    def sharded(self, name: str, source: Path, max_shard_size: str = "20KB") -> Path:
        """The model at ``source`` saved again as sharded safetensors with an index."""
        from transformers import AutoModelForCausalLM

        path = self.root / name
        if not path.exists():
            save_model(AutoModelForCausalLM.from_pretrained(source), path, max_shard_size=max_shard_size)
        return path

    def as_bin(self, name: str, source: Path, shards: int = 1) -> Path:
        """The model at ``source`` as pytorch_model.bin (or shards with an index), as older repos ship it."""
        from safetensors.torch import load_file

        path = self.root / name
        if path.exists():
            return path
        path.mkdir()
        shutil.copy(source / "config.json", path / "config.json")
        state = load_file(source / "model.safetensors")
        if shards == 1:
            torch.save(state, path / "pytorch_model.bin")
            return path
        names = sorted(state)
        weight_map = {}
        for index in range(shards):
            file = f"pytorch_model-{index + 1:05d}-of-{shards:05d}.bin"
            part = names[index::shards]
            torch.save({key: state[key] for key in part}, path / file)
            weight_map.update(dict.fromkeys(part, file))
        (path / "pytorch_model.bin.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
        return path

    def damaged(self, name: str, source: Path) -> Path:
        """A fresh copy of ``source`` for a test to damage."""
        path = self.root / "damaged" / name
        if path.exists():
            shutil.rmtree(path)
        shutil.copytree(source, path)
        return path


def truncate(path: Path, keep: int) -> None:
    """Cut a file to its first ``keep`` bytes, like an interrupted download."""
    data = path.read_bytes()[:keep]
    path.write_bytes(data)


def write_header_length(path: Path, length: int) -> None:
    """Overwrite a safetensors file's 8-byte header length."""
    data = bytearray(path.read_bytes())
    data[:8] = struct.pack("<Q", length)
    path.write_bytes(bytes(data))


def edited_copy(source: Path, target: Path, edit) -> Path:
    """A copy of the single-file model in ``source`` with ``edit(config, weights)`` applied to its parsed
    config.json and its tensors (a dict by name), as a damaged or lying checkpoint would have them."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(source, target)
    config = json.loads((target / "config.json").read_text())
    weights = load_file(target / "model.safetensors")
    edit(config, weights)
    (target / "config.json").write_text(json.dumps(config))
    save_file(weights, target / "model.safetensors", metadata={"format": "pt"})
    return target
