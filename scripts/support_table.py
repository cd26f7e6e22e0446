"""Which architectures merge: build tiny pairs of many families with transformers and try every kind of merge.

Run from the repository root: ``.venv/bin/python scripts/support_table.py`` prints the table;
``--write-readme`` puts it into docs/inspect.md between its ``support-table`` markers. Each family is a tiny
random-init model saved by transformers itself and a fine-tune of it (plus 1 % noise), so the names on disk
are the family's own. For each: the stacks tui-merge finds (prefix and depth), whether linear, slerp, ties and
a layer stacking merge run and pass ``tui-merge verify``, and whether transformers loads the linear merge
with nothing missing or unexpected. Nothing here is a test: ``tests/test_architectures.py`` checks the
numbers; this script only reports, in a few minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

CAUSAL = (
    "llama", "mistral", "qwen2", "qwen3", "gemma2", "phi3", "olmo2", "starcoder2", "gpt2", "gpt_neox",
    "mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3", "granitemoe", "glm4_moe", "gpt_oss",
    "qwen3_next", "falcon_h1", "olmo", "olmoe", "cohere", "stablelm", "granite", "gemma", "gemma3_text", "phi",
    "nemotron", "smollm3", "ernie4_5", "ernie4_5_moe", "dots1", "exaone4", "seed_oss", "hunyuan_v1_dense",
)  # fmt: skip
"""Causal language models built from their default config shrunk to ``SMALL``."""

SMALL = {
    "hidden_size": 32, "intermediate_size": 64, "moe_intermediate_size": 32, "num_hidden_layers": 3,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "vocab_size": 128, "n_embd": 32,
    "n_layer": 3, "n_head": 4, "num_local_experts": 4, "num_experts": 4, "n_routed_experts": 4,
    "num_experts_per_tok": 2, "n_shared_experts": 1, "shared_expert_intermediate_size": 32, "kv_lora_rank": 16,
    "q_lora_rank": 16, "qk_rope_head_dim": 8, "qk_nope_head_dim": 8, "v_head_dim": 8, "n_group": 1,
    "topk_group": 1, "first_k_dense_replace": 1, "tie_word_embeddings": False, "max_position_embeddings": 64,
    "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0,
}  # fmt: skip

OWN_SIZES = {"deepseek_v3": {"num_key_value_heads": 4}, "deepseek_v2": {"num_key_value_heads": 4},
             "qwen3_next": {"full_attention_interval": 2}}  # fmt: skip


def causal(model_type: str) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        from transformers import AutoConfig, AutoModelForCausalLM

        defaults = AutoConfig.for_model(model_type)
        sizes = {key: value for key, value in SMALL.items() if hasattr(defaults, key)}
        return AutoModelForCausalLM.from_config(
            AutoConfig.for_model(model_type, **sizes | OWN_SIZES.get(model_type, {}))
        )

    return build


def others() -> dict[str, Callable[[], torch.nn.Module]]:
    """Families of other shapes, each from a config written out here."""
    import transformers as t

    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
            "num_key_value_heads": 2, "vocab_size": 128}  # fmt: skip
    vision = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
              "image_size": 32, "patch_size": 8}  # fmt: skip
    qwen_vision = {"depth": 2, "hidden_size": 16, "out_hidden_size": 32, "intermediate_size": 32, "num_heads": 2,
                   "patch_size": 4, "spatial_merge_size": 2}  # fmt: skip
    return {
        "llava": lambda: t.AutoModelForImageTextToText.from_config(t.LlavaConfig(
            text_config=t.LlamaConfig(**text), vision_config=t.CLIPVisionConfig(**vision), image_token_index=120)),
        "qwen2_vl": lambda: t.Qwen2VLForConditionalGeneration(t.Qwen2VLConfig(
            text_config=text | {"head_dim": 8, "rope_scaling": {"type": "mrope", "mrope_section": [1, 1, 2]}},
            vision_config={"depth": 2, "embed_dim": 16, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2,
                           "patch_size": 4, "spatial_merge_size": 2}, image_token_id=120, video_token_id=121)),
        "qwen2_5_vl": lambda: t.Qwen2_5_VLForConditionalGeneration(t.Qwen2_5_VLConfig(
            text_config=text | {"head_dim": 8, "rope_scaling": {"type": "mrope", "mrope_section": [1, 1, 2]}},
            vision_config=qwen_vision | {"fullatt_block_indexes": [1]}, image_token_id=120, video_token_id=121)),
        "qwen3_vl": lambda: t.Qwen3VLForConditionalGeneration(t.Qwen3VLConfig(
            text_config=text | {"head_dim": 8, "rope_scaling": {"rope_type": "default", "mrope_section": [1, 1, 2]}},
            vision_config=qwen_vision | {"deepstack_visual_indexes": [1], "num_position_embeddings": 16},
            image_token_id=120, video_token_id=121)),
        "gemma3": lambda: t.Gemma3ForConditionalGeneration(t.Gemma3Config(
            text_config=text | {"head_dim": 8, "sliding_window": 8}, vision_config=vision, mm_tokens_per_image=4,
            image_token_index=120, boi_token_index=121, eoi_token_index=122)),
        "llama4": lambda: t.Llama4ForConditionalGeneration(t.Llama4Config(
            text_config=text | {"head_dim": 8, "intermediate_size_mlp": 64, "num_local_experts": 2,
                                "interleave_moe_layer_step": 2},
            vision_config=vision | {"vision_output_dim": 32, "projector_input_dim": 32, "projector_output_dim": 32},
            image_token_index=120)),
        "internvl": lambda: t.InternVLForConditionalGeneration(t.InternVLConfig(
            text_config=text | {"model_type": "qwen2"},
            vision_config=vision | {"image_size": [32, 32], "patch_size": [8, 8]}, image_token_id=120)),
        "mistral3": lambda: t.Mistral3ForConditionalGeneration(t.Mistral3Config(
            text_config=text | {"model_type": "mistral", "head_dim": 8},
            vision_config=vision | {"head_dim": 8, "model_type": "pixtral"}, image_token_index=120,
            spatial_merge_size=2)),
        "granitemoehybrid": lambda: t.GraniteMoeHybridForCausalLM(t.GraniteMoeHybridConfig(
            **text, num_local_experts=4, num_experts_per_tok=2, shared_intermediate_size=32,
            layer_types=["mamba", "attention", "mamba"], mamba_n_heads=4, mamba_d_head=16, mamba_d_state=8,
            mamba_n_groups=1, mamba_expand=2)),
        "falcon": lambda: t.FalconForCausalLM(t.FalconConfig(hidden_size=32, num_hidden_layers=3,
                                                             num_attention_heads=4, vocab_size=128)),
        "roberta": lambda: t.RobertaModel(t.RobertaConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                                          intermediate_size=64, vocab_size=128)),
        "modernbert": lambda: t.ModernBertModel(t.ModernBertConfig(hidden_size=32, intermediate_size=64,
                                                                   num_hidden_layers=3, num_attention_heads=4,
                                                                   vocab_size=128, global_attn_every_n_layers=2,
                                                                   pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                                                   cls_token_id=1, sep_token_id=2)),
        "mamba": lambda: t.MambaForCausalLM(t.MambaConfig(hidden_size=32, num_hidden_layers=3, vocab_size=128,
                                                           state_size=8)),
        "t5": lambda: t.T5ForConditionalGeneration(t.T5Config(d_model=32, d_ff=64, num_layers=3, num_decoder_layers=3,
                                                              num_heads=4, d_kv=8, vocab_size=128)),
        "bert": lambda: t.BertModel(t.BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                                 intermediate_size=64, vocab_size=128)),
        "albert": lambda: t.AlbertModel(t.AlbertConfig(hidden_size=32, embedding_size=16, num_hidden_layers=3,
                                                       num_attention_heads=4, intermediate_size=64, vocab_size=128)),
        "swin": lambda: t.SwinModel(t.SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1],
                                                 num_heads=[2, 4], window_size=2)),
    }  # fmt: skip


def save_pair(model: torch.nn.Module, folder: Path) -> tuple[Path, Path]:
    model.save_pretrained(folder / "a")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn(parameter.shape, generator=generator))
    model.save_pretrained(folder / "b")
    return folder / "a", folder / "b"


RECIPES = {
    "linear": "merge_method: linear\nmodels:\n  - model: {a}\n  - model: {b}\n",
    "slerp": "merge_method: slerp\nbase_model: {a}\nmodels:\n  - model: {a}\n  - model: {b}\nparameters: {{t: 0.4}}\n",
    "ties": "merge_method: ties\nbase_model: {a}\nmodels:\n  - model: {b}\n"
    "    parameters: {{density: 0.5, weight: 1}}\n",
    "stacking": "merge_method: passthrough\nslices:\n  - sources: [{{model: {a}, layer_range: [0, 2]}}]\n"
    "  - sources: [{{model: {b}, layer_range: [1, 3]}}]\n",
}
"""Each merge tried; ``stacking`` takes layers 0-1 of one parent and 1-2 of the other."""


def merge(folder: Path, kind: str, a: Path, b: Path) -> tuple[bool, str]:
    """Run one merge with ``--verify`` in this process: whether it passed, and the first error line."""
    from tui_merge.cli import main

    recipe = folder / f"{kind}.yaml"
    recipe.write_text(RECIPES[kind].format(a=a, b=b))
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(["run", str(recipe), str(folder / kind), "--verify"])
    said = next((line for line in err.getvalue().splitlines() if "error" in line), "")
    return status == 0, said.replace(f"{folder}/", "")


def loads(folder: Path) -> bool:
    """Whether transformers loads the merged folder with nothing missing or unexpected."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(folder)
    classes = [getattr(transformers, name) for name in (config.architectures or []) if hasattr(transformers, name)]
    model_class = classes[0] if classes else transformers.AutoModel
    _, info = model_class.from_pretrained(folder, output_loading_info=True)
    return not info["missing_keys"] and not info["unexpected_keys"]


def row(name: str, build: Callable[[], torch.nn.Module], scratch: Path) -> list[str]:
    from tui_merge.models.info import load_model_info

    folder = scratch / name
    torch.manual_seed(0)
    try:
        a, b = save_pair(build(), folder)
    except Exception as error:  # noqa: BLE001 - a family this transformers cannot build at this size is reported
        return [name, f"not built here ({type(error).__name__})", "", "", "", "", ""]
    info = load_model_info(str(a))
    stacks = ", ".join(f"`{prefix}` x{depth}" for prefix, depth in info.stack_depths.items()) or "none"
    cells = [name, stacks]
    for kind in RECIPES:
        passed, said = merge(folder, kind, a, b)
        cells.append("yes" if passed else f"no: {re.sub(r'^tui-merge: error: ', '', said)[:80]}")
    cells.append("yes" if (folder / "linear").is_dir() and loads(folder / "linear") else "no")
    return cells


def table(rows: list[list[str]]) -> str:
    head = ["family", "stacks found", "linear", "slerp", "ties", "layer stacking", "loads in transformers"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-readme", action="store_true", help="put the table into docs/inspect.md")
    parser.add_argument("families", nargs="*", help="only these families (default: all)")
    args = parser.parse_args()
    from transformers.utils import logging

    logging.set_verbosity_error()
    builders = {name: causal(name) for name in CAUSAL} | others()
    chosen = args.families or list(builders)
    with tempfile.TemporaryDirectory() as scratch:
        rows = []
        for name in chosen:
            rows.append(row(name, builders[name], Path(scratch)))
            print(f"{name}: {' / '.join(rows[-1][2:])}", file=sys.stderr, flush=True)
    text = table(rows)
    print(text)
    if args.write_readme:
        readme = Path("docs/inspect.md")
        begin, end = "<!-- support-table: scripts/support_table.py --write-readme -->", "<!-- /support-table -->"
        content = readme.read_text(encoding="utf-8")
        before, _, rest = content.partition(begin)
        _, _, after = rest.partition(end)
        readme.write_text(f"{before}{begin}\n{text}{end}{after}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
