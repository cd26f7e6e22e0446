"""``moe``: a mixture of experts built from dense fine-tunes of one base, as mergekit-moe builds it.

The output is a Mixtral model (the architecture mergekit-moe picks for Llama and Mistral experts without shared
experts): attention, norms, embeddings and head come from the base; each layer's MLP becomes ``E`` experts, expert
``e`` being that layer's MLP of ``experts[e].source_model`` (``gate_proj``, ``down_proj``, ``up_proj`` as
``block_sparse_moe.experts.E.w1``, ``w2``, ``w3``, beside ``block_sparse_moe.gate``: the names and per-expert
layout of the Mixtral checkpoints on the Hub, which transformers 4 and 5, vLLM and llama.cpp's converters
read); each layer's router starts from ``moe_gates``. The config is transformers' ``MixtralConfig``
made from the base's, with ``num_local_experts`` and ``num_experts_per_tok``.

Tensors are streamed one at a time from the source models into safetensors shards (the layout fixed up front,
each shard's header first), so memory holds one tensor and the routers, whatever the number of experts; the
output appears whole at ``OUT`` or not at all, with a manifest for ``verify`` and the config as
``mergekit_moe_config.yml``.

With one shared expert (``shared_experts``) the output is a Qwen MoE instead, as mergekit-moe builds it: the
experts as ``mlp.experts.E.gate_proj``/``up_proj``/``down_proj``, the shared expert as ``mlp.shared_expert.*``
with its gate ``mlp.shared_expert_gate`` (from its own prompts), zero biases on q, k and v where the base has
none (Qwen2 MoE has them), and transformers' ``Qwen2MoeConfig``. DeepSeek MoE (several shared experts) is
refused with a sentence for now.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tui_merge.config.schema import DTYPE_ALIASES, parse_size
from tui_merge.engine.journal import Journal, add_input_files
from tui_merge.engine.lock import OutputLock, partial_path
from tui_merge.engine.manifest import MANIFEST_NAME, manifest_text
from tui_merge.engine.merge_errors import MergeInterrupted
from tui_merge.engine.preflight import check_output_safety, output_overlaps_input
from tui_merge.engine.tasks import OUTPUT_DTYPES, TensorTask, layout_shards, tensor_seed
from tui_merge.engine.writer import ShardStream, move_into_place, shard_header, write_synced
from tui_merge.errors import BadInputError
from tui_merge.models.info import ModelInfo
from tui_merge.tools.inputs import require_downloaded
from tui_merge.tools.moe_config import MoeConfig

RECIPE = "mergekit_moe_config.yml"
_MLP = {"w1": "gate_proj", "w2": "down_proj", "w3": "up_proj"}
_ACCEPTED = ("llama", "mistral")


@dataclass(frozen=True)
class MoeTensor:
    """One output tensor and where it comes from."""

    name: str
    shape: tuple[int, ...]
    model: ModelInfo | None
    """The model it is read from; None for a router."""
    source: str = ""
    """The tensor's name in ``model``."""
    expert: int | None = None
    layer: int | None = None


_QWEN_NAMES = ("qwen", "qwen_moe", "qwen2_moe")


def output_architecture(config: MoeConfig, models: list[ModelInfo]) -> tuple[str, str]:
    """The output's model type (``mixtral`` or ``qwen2_moe``) and why, as mergekit-moe picks it."""
    types = {model.facts.model_type for model in models}
    wanted = (config.architecture or "").lower().replace(" ", "_").replace("-", "_")
    if config.shared_experts:
        if len(config.shared_experts) != 1:
            raise BadInputError(f"shared_experts lists {len(config.shared_experts)} experts; a Qwen MoE has exactly "
                                "one shared expert (DeepSeek MoE's several are not built here yet).")  # fmt: skip
        if wanted not in ("", *_QWEN_NAMES):
            raise BadInputError(f"architecture: {config.architecture} has no shared expert; remove shared_experts, "
                                "or leave architecture out for a Qwen MoE.")  # fmt: skip
        if types - {"llama", "mistral", "qwen2"}:
            raise BadInputError(
                f"A Qwen MoE is built from Qwen2, Llama or Mistral models, not {', '.join(sorted(types))}."
            )
        if config.gate_mode not in ("random", "uniform_random") and not config.shared_experts[0].positive_prompts:
            raise BadInputError(f"The shared expert has no positive_prompts, which gate_mode {config.gate_mode} routes "
                                "its gate by; add prompts, or use gate_mode: random.")  # fmt: skip
        return "qwen2_moe", "one shared expert makes a Qwen MoE (a Mixtral has none)"
    if wanted in _QWEN_NAMES:
        raise BadInputError(f"architecture: {config.architecture} needs one shared expert; add shared_experts.")
    if wanted.startswith("deepseek"):
        raise BadInputError(
            f"architecture: {config.architecture}: mergekit's DeepSeek MoE output loads only with DeepSeek's own "
            "model code (trust_remote_code), which tui-merge never runs; leave architecture out for a Mixtral, or "
            "give one shared expert for a Qwen MoE."
        )
    if wanted not in ("", "mixtral"):
        raise BadInputError(f"architecture: {config.architecture}: tui-merge moe builds Mixtral and Qwen MoE models.")
    if types - set(_ACCEPTED):
        raise BadInputError(
            f"A Mixtral is built from Llama or Mistral models, not {', '.join(sorted(types - set(_ACCEPTED)))}; with "
            "one shared expert the same models make a Qwen MoE."
        )
    return "mixtral", "Llama and Mistral experts without a shared expert make a Mixtral"


def plan_moe(
    config: MoeConfig, base: ModelInfo, experts: list[ModelInfo], shared: list[ModelInfo] | None = None
) -> list[MoeTensor]:
    """Every output tensor in writing order; BadInputError when the experts cannot fill the output. ``shared``
    holds the shared expert's model (a Qwen MoE)."""
    shared = shared or []
    kind, _ = output_architecture(config, [base, *experts, *shared])
    qwen = kind == "qwen2_moe"
    tensors = [MoeTensor(name, entry.shape, base, name) for name, entry in base.tensors.items() if ".mlp." not in name]
    hidden = base.facts.hidden_size or 0
    if qwen:  # Qwen2 MoE has biases on q, k and v: zeros where the base has none, as mergekit gives it
        tensors += _zero_biases(base)
    for layer in range(base.depth):
        prefix = f"model.layers.{layer}.mlp"
        moe = prefix if qwen else f"model.layers.{layer}.block_sparse_moe"
        tensors.append(MoeTensor(f"{moe}.gate.weight", (len(experts), hidden), None, layer=layer))
        for index, expert in enumerate([*experts, *shared]):
            for slot, source in _MLP.items():
                name = f"{prefix}.{source}.weight"
                entry, wanted = expert.tensors.get(name), base.tensors.get(name)
                if entry is None or wanted is None or entry.shape != wanted.shape or expert.depth != base.depth:
                    raise BadInputError(
                        f"Expert {index} ({expert.label}) has no {name} shaped as the base's; every expert must be a "
                        f"fine-tune of {base.label} (run tui-merge inspect on them)."
                    )
                if index == len(experts):  # the shared expert
                    output = f"{prefix}.shared_expert.{source}.weight"
                else:
                    output = f"{moe}.experts.{index}.{source if qwen else slot}.weight"
                tensors.append(MoeTensor(output, entry.shape, expert, name, index, layer))
        if qwen:
            tensors.append(MoeTensor(f"{prefix}.shared_expert_gate.weight", (1, hidden), None, layer=layer,
                                     expert=len(experts)))  # fmt: skip
    return tensors


def _zero_biases(base: ModelInfo) -> list[MoeTensor]:
    heads, kv_heads = base.facts.num_heads or 1, base.facts.num_kv_heads or base.facts.num_heads or 1
    head_dim = (base.facts.hidden_size or 0) // heads
    zeros = []
    for layer in range(base.depth):
        for part, count in (("q_proj", heads), ("k_proj", kv_heads), ("v_proj", kv_heads)):
            name = f"model.layers.{layer}.self_attn.{part}.bias"
            if name not in base.tensors:
                zeros.append(MoeTensor(name, (count * head_dim,), None, source="zeros", layer=layer))
    return zeros


def output_config(config: MoeConfig, base: ModelInfo, dtype: str, kind: str) -> dict:
    """config.json of the output: transformers' MixtralConfig or Qwen2MoeConfig made from the base's settings."""
    import transformers

    settings = json.loads((base.folder / "config.json").read_text(encoding="utf-8"))
    for key in ("model_type", "architectures", "auto_map", "transformers_version", "torch_dtype", "dtype"):
        settings.pop(key, None)
    if kind == "qwen2_moe":
        output = transformers.Qwen2MoeConfig(**settings)
        output.architectures = ["Qwen2MoeForCausalLM"]
        output.num_experts = len(config.experts)
        output.decoder_sparse_step = 1
        output.norm_topk_prob = True
        output.use_sliding_window = False
        output.shared_expert_intermediate_size = output.moe_intermediate_size = settings.get("intermediate_size")
    else:
        output = transformers.MixtralConfig(**settings)
        output.architectures = ["MixtralForCausalLM"]
        output.num_local_experts = len(config.experts)
    output.num_experts_per_tok = config.experts_per_token
    output.sliding_window = None
    output.dtype = dtype
    return output.to_dict()


def build_moe(
    config: MoeConfig,
    text: str,
    base: ModelInfo,
    experts: list[ModelInfo],
    output: Path,
    *,
    shared: list[ModelInfo] | None = None,
    device: str = "auto",
    force: bool = False,
    shard_size: str = "5GB",
    resume: bool = False,
    again: str = "tui-merge moe CONFIG OUT",
    say: Callable[[str], None] = print,
) -> list[MoeTensor]:
    """Build the MoE at ``output``; ``say`` gets a line per step (routers, each layer's experts)."""

    from tui_merge.devices import resolve_device
    from tui_merge.models.reader import TensorReader
    from tui_merge.tools.moe_gates import gate_vectors

    shared = shared or []
    require_downloaded([base, *experts, *shared], "moe")
    overlap = output_overlaps_input(output, [base, *experts, *shared])
    if overlap is not None:
        raise BadInputError(overlap)
    kind, why = output_architecture(config, [base, *experts, *shared])
    plan = plan_moe(config, base, experts, shared)
    dtype = DTYPE_ALIASES[config.dtype] if config.dtype else (base.weight_dtype or "float32")
    dtype = dtype if dtype in OUTPUT_DTYPES else "float32"
    tasks = tuple(TensorTask(item.name, item.shape, OUTPUT_DTYPES[dtype], (), (), None, {}, 0) for item in plan)
    shards = layout_shards(tasks, parse_size(shard_size))
    device = resolve_device(device, "--device")
    settings = output_config(config, base, dtype, kind)
    name = "a Qwen MoE" if kind == "qwen2_moe" else "a Mixtral"
    say(f"building {name}: {len(experts)} experts, {config.experts_per_token} per token, {base.depth} layers ({why}), "
        f"routers from gate_mode {config.gate_mode}")  # fmt: skip
    gates = gate_vectors(config, base, device, say)
    if shared:  # the shared expert's gate from its own prompts, and its own draws
        seeded = config.tui_merge.model_copy(update={"seed": config.tui_merge.seed + 1})
        solo = config.model_copy(update={"experts": config.shared_experts, "tui_merge": seeded})
        gates = (gates, gate_vectors(solo, base, device, say))
    else:
        gates = (gates, None)
    fingerprint = moe_fingerprint(text, device, tasks, shards, [base, *experts, *shared])
    with OutputLock(output):
        check_output_safety(output, force=force)
        if output.exists() and any(output.iterdir()) and not force:
            raise BadInputError(f"{output} already exists and is not empty; choose another folder, or pass --force.")
        partial = partial_path(output)
        journal = _journal(partial, fingerprint, resume, again)
        try:
            with TensorReader() as reader:
                for number, shard in enumerate(shards, 1):
                    if shard.file_name in journal.finished:
                        say(f"kept {shard.file_name} ({number} of {len(shards)}) from the interrupted build")
                        continue
                    size, digest = _write_shard(partial / shard.file_name, tasks, shard, plan, config, gates, reader)
                    journal.record(shard.file_name, size, digest)
                    say(f"wrote {shard.file_name} ({number} of {len(shards)})")
            written = {name: (shard.size, shard.sha256) for name, shard in journal.finished.items()}
            _finish(partial, settings, base, config, text, tasks, shards, written)
            journal.remove()
            move_into_place(partial, output, replace=force)
        except KeyboardInterrupt:
            kept = len(journal.finished)
            raise MergeInterrupted(f"stopped; nothing is at {output} yet, {kept} of {len(shards)} shards are kept in "
                                   f"{partial}: continue with {again} --resume") from None  # fmt: skip
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return plan


def moe_fingerprint(text: str, device: str, tasks, shards, models: list[ModelInfo]) -> str:
    """What decides the shards' bytes: the config's text, the device, the layout, and every input file (size and
    modification time); a resume is accepted only for the same."""
    digest = hashlib.sha256(f"{text}\0{device}".encode())
    for shard in shards:
        digest.update(shard.file_name.encode())
        for index in shard.tasks:
            task = tasks[index]
            digest.update(f"{task.name}{task.shape}{task.dtype}".encode())
    add_input_files(digest, {file for model in models for entry in model.tensors.values() for file in entry.files})
    return digest.hexdigest()


def _journal(partial: Path, fingerprint: str, resume: bool, again: str) -> Journal:
    """The journal of a fresh ``OUT.partial``, or, with ``resume``, the interrupted build's, checked; a shard the
    journal does not name (cut short by the stop) is removed."""
    if resume:
        if not partial.is_dir():
            raise BadInputError(f"There is no interrupted build to resume at {partial}; run without --resume.")
        journal = Journal.load(partial)
        journal.check(fingerprint, partial)
        for path in partial.glob("*.safetensors"):
            if path.name not in journal.finished:
                path.unlink()
        return journal
    if partial.exists():
        raise BadInputError(f"{partial} is left from an interrupted build; continue it with {again} --resume, or "
                            f"remove it (rm -r {partial}) and run again.")  # fmt: skip
    partial.mkdir(parents=True)
    return Journal.create(partial, fingerprint)


def _write_shard(path: Path, tasks, shard, plan, config: MoeConfig, gates, reader) -> tuple[int, str]:
    """One shard through the merge's shard stream (header first, each tensor as it is read, hashed and synced on
    the writer's thread); its size and sha256."""
    from tui_merge.models.reader import TORCH_DTYPES

    stream = ShardStream(path)
    try:
        stream.put(shard_header(tasks, shard))
        for index in shard.tasks:
            tensor = _tensor(plan[index], config, gates, reader).to(TORCH_DTYPES[tasks[index].dtype])
            stream.put(tensor.contiguous().reshape(-1))
        return stream.close()
    except BaseException:
        stream.abort()
        raise


def _tensor(item: MoeTensor, config: MoeConfig, gates, reader):
    """The output tensor in float32: a router's rows, or a tensor read from its model (an expert's with its noise
    and residual scale)."""
    import torch

    if item.model is None and item.source == "zeros":
        return torch.zeros(item.shape)
    if item.model is None:
        routers, shared = gates
        return routers[item.layer] if item.expert is None else shared[item.layer]
    tensor = reader.read(item.model.tensors[item.source]).float()
    if item.expert is None:
        return tensor
    expert = [*config.experts, *(config.shared_experts or [])][item.expert]
    if expert.noise_scale:  # drawn from the tensor's own seed: the same bytes whatever was built before it
        generator = torch.Generator().manual_seed(tensor_seed(config.tui_merge.seed, item.name))
        tensor = tensor + torch.randn(tensor.shape, generator=generator) * expert.noise_scale
    if expert.residual_scale is not None and item.source.endswith("down_proj.weight"):
        tensor = tensor * expert.residual_scale
    return tensor


def _finish(partial: Path, settings: dict, base: ModelInfo, config: MoeConfig, text: str, tasks, shards, written):
    """config.json, the index, the tokenizer, generation config, the recipe and the manifest."""
    from tui_merge.vocab.output import write_tokenizer

    files = {"config.json": json.dumps(settings, indent=2) + "\n", RECIPE: text,
             MANIFEST_NAME: manifest_text(written)}  # fmt: skip
    if len(shards) > 1:
        weight_map = {tasks[index].name: shard.file_name for shard in shards for index in shard.tasks}
        total = sum(task.nbytes for task in tasks)
        files["model.safetensors.index.json"] = json.dumps({"metadata": {"total_size": total},
                                                            "weight_map": weight_map}, indent=2) + "\n"  # fmt: skip
    generation = base.folder / "generation_config.json"
    if generation.is_file():
        files["generation_config.json"] = generation.read_text(encoding="utf-8")
    for name, content in files.items():
        write_synced(partial / name, content)
    source = Path(config.tokenizer_source) if config.tokenizer_source not in (None, "base") else base.folder
    write_tokenizer(source, (), partial)
