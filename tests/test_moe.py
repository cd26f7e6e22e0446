"""``tui-merge moe``: Mixtrals from mergekit-moe configs, checked with transformers and formulas written here."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tui_merge.cli import main


def write_config(folder: Path, base: Path, experts: list[tuple[Path, list[str], list[str]]], **keys) -> Path:
    lines = [f"base_model: {base}"]
    lines += [f"{key}: {value}" for key, value in keys.items()]
    lines.append("experts:")
    for model, positive, negative in experts:
        lines.append(f"  - source_model: {model}")
        if positive:
            lines.append(f"    positive_prompts: {positive!r}")
        if negative:
            lines.append(f"    negative_prompts: {negative!r}")
    path = folder / "moe.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


def test_copies_of_the_base_routed_one_per_token_answer_as_the_base(tmp_path, llama_base) -> None:
    from transformers import AutoModelForCausalLM, MixtralForCausalLM

    config = write_config(tmp_path, llama_base, [(llama_base, [], []), (llama_base, [], [])], gate_mode="random",
                          experts_per_token=1, dtype="float32")  # fmt: skip
    assert main(["moe", str(config), str(tmp_path / "moe"), "--i-understand-this-is-not-useful-without-training"]) == 0

    moe = AutoModelForCausalLM.from_pretrained(tmp_path / "moe").eval()
    base = AutoModelForCausalLM.from_pretrained(llama_base).eval()
    assert isinstance(moe, MixtralForCausalLM) and moe.config.num_local_experts == 2
    ids = torch.tensor([[1, 5, 17, 42, 99, 3, 8]])
    with torch.no_grad():
        assert torch.allclose(moe(ids).logits, base(ids).logits, atol=1e-5)


def test_cheap_embed_routers_are_the_prompts_normalised_embedding_sums(tmp_path, llama_base, llama_finetune) -> None:
    from transformers import AutoTokenizer

    prompts = (["Hello there", "How are you?"], ["def f(x):"], ["Hello"])
    experts = [(llama_base, prompts[0], []), (llama_finetune, prompts[1], prompts[2])]
    config = write_config(tmp_path, llama_base, experts, gate_mode="cheap_embed", experts_per_token=1)
    assert main(["moe", str(config), str(tmp_path / "moe"), "--no-verify"]) == 0

    tokenizer = AutoTokenizer.from_pretrained(llama_base)
    embedding = load_file(llama_base / "model.safetensors")["model.embed_tokens.weight"].float()

    def direction(texts: list[str]) -> torch.Tensor:
        ids = [i for text in texts for i in tokenizer((tokenizer.bos_token or "") + text, add_special_tokens=False)
               ["input_ids"]]  # fmt: skip
        summed = embedding[ids].sum(dim=0)
        return summed / summed.norm()

    second = direction(prompts[1]) - direction(prompts[2])
    expected = torch.stack([direction(prompts[0]), second / second.norm()])
    router = weights(tmp_path / "moe")
    for layer in range(2):
        assert torch.allclose(router[f"model.layers.{layer}.block_sparse_moe.gate.weight"].float(), expected, atol=1e-6)
    expert = router["model.layers.1.block_sparse_moe.experts.1.w2.weight"]
    assert torch.equal(expert, load_file(llama_finetune / "model.safetensors")["model.layers.1.mlp.down_proj.weight"])


def test_hidden_routers_are_the_base_models_hidden_states_at_each_layer(tmp_path, llama_base, llama_finetune) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompts = (["Hello there", "How are you?"], ["def f(x):"])
    config = write_config(tmp_path, llama_base, [(llama_base, prompts[0], []), (llama_finetune, prompts[1], [])],
                          gate_mode="hidden")  # fmt: skip
    assert main(["moe", str(config), str(tmp_path / "moe"), "--no-verify", "--device", "cpu"]) == 0

    tokenizer = AutoTokenizer.from_pretrained(llama_base)
    model = AutoModelForCausalLM.from_pretrained(llama_base).eval()

    def direction(texts: list[str]) -> torch.Tensor:
        states = []
        for text in texts:
            ids = tokenizer((tokenizer.bos_token or "") + text, add_special_tokens=False, return_tensors="pt")
            with torch.no_grad():
                hidden = model(**ids, output_hidden_states=True).hidden_states
            states.append(torch.stack([state[0, -1] for state in hidden[:-1]]))
        mean = torch.stack(states).mean(dim=0)
        return mean / mean.norm(dim=-1, keepdim=True)

    expected = torch.stack([direction(prompts[0]), direction(prompts[1])], dim=1)
    router = weights(tmp_path / "moe")
    for layer in range(2):
        assert torch.allclose(
            router[f"model.layers.{layer}.block_sparse_moe.gate.weight"].float(), expected[layer], atol=1e-5
        )


def test_random_routers_come_again_from_their_seed(tmp_path, llama_base, llama_finetune) -> None:
    experts = [(llama_base, [], []), (llama_finetune, [], [])]
    builds = []
    for name, seed in (("one", 0), ("two", 0), ("three", 1)):
        folder = tmp_path / name
        folder.mkdir()
        config = write_config(folder, llama_base, experts, gate_mode="random", tui_merge=f"{{seed: {seed}}}")
        assert main(["moe", str(config), str(folder / "moe"), "--no-verify"]) == 0
        builds.append(weights(folder / "moe")["model.layers.0.block_sparse_moe.gate.weight"])
    assert torch.equal(builds[0], builds[1]) and not torch.equal(builds[0], builds[2])


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"experts_per_token": 3, "gate_mode": "random"}, "experts_per_token is 3 but there are only 2 experts"),
        ({"gate_mode": "cheap_embed"}, "has no positive_prompts, which gate_mode cheap_embed routes by"),
        ({"gate_mode": "random", "architecture": "qwen"}, "architecture: qwen needs one shared expert"),
        ({"gate_mode": "random", "architecture": "deepseek"}, "loads only with DeepSeek's own model code"),
        ({"gate_mode": "random", "architecture": "gemma"}, "tui-merge moe builds Mixtral and Qwen MoE models"),
        ({"gate_mode": "random", "gate_mod": "x"}, "unknown key gate_mod"),
    ],
)
def test_bad_configs_are_refused_with_a_sentence_and_nothing_at_out(
    capsys, tmp_path, llama_base, llama_finetune, keys, expected
) -> None:
    config = write_config(tmp_path, llama_base, [(llama_base, [], []), (llama_finetune, [], [])], **keys)

    assert main(["moe", str(config), str(tmp_path / "moe")]) == 2

    assert expected in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["moe.yaml"]


def test_one_shared_expert_makes_a_qwen_moe_that_transformers_builds(tmp_path, llama_base, llama_finetune) -> None:
    from transformers import AutoModelForCausalLM, Qwen2MoeForCausalLM

    config = write_config(tmp_path, llama_base, [(llama_base, [], []), (llama_finetune, [], [])], gate_mode="random")
    config.write_text(config.read_text() + f"shared_experts:\n  - source_model: {llama_finetune}\n")

    assert main(["moe", str(config), str(tmp_path / "moe")]) == 0

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "moe").eval()
    assert isinstance(model, Qwen2MoeForCausalLM) and model.config.num_experts == 2
    built, tuned = weights(tmp_path / "moe"), load_file(llama_finetune / "model.safetensors")
    name = "model.layers.1.mlp.down_proj.weight"
    assert torch.equal(built["model.layers.1.mlp.shared_expert.down_proj.weight"], tuned[name])
    assert torch.equal(built["model.layers.1.mlp.experts.1.down_proj.weight"], tuned[name])
    assert built["model.layers.0.mlp.shared_expert_gate.weight"].shape == (1, 32)
    assert not built["model.layers.0.self_attn.q_proj.bias"].any()  # Qwen2 MoE's biases, zero as mergekit gives
    with torch.no_grad():
        assert torch.isfinite(model(torch.tensor([[1, 5, 17]])).logits).all()


def test_a_stopped_build_keeps_its_finished_shards_and_resumes_to_the_same_bytes(
    capsys, tmp_path, monkeypatch, llama_base, llama_finetune
) -> None:
    from tui_merge.tools import moe

    config = write_config(tmp_path, llama_base, [(llama_base, [], []), (llama_finetune, [], [])], gate_mode="random")
    config.write_text(config.read_text().replace(f"source_model: {llama_finetune}",
                                                 f"source_model: {llama_finetune}\n    noise_scale: 0.01"))  # fmt: skip
    small = ["--out-shard-size", "40KB", "--no-verify"]
    assert main(["moe", str(config), str(tmp_path / "straight"), *small]) == 0
    real, calls = moe._tensor, []

    def stopped(*args, **kwargs):
        calls.append(1)
        if len(calls) == 20:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(moe, "_tensor", stopped)
    assert main(["moe", str(config), str(tmp_path / "out"), *small]) == 130
    said = capsys.readouterr().err
    assert "shards are kept in" in said and "--resume" in said and not (tmp_path / "out").exists()
    monkeypatch.setattr(moe, "_tensor", real)

    assert main(["moe", str(config), str(tmp_path / "out"), *small, "--resume"]) == 0

    assert "from the interrupted build" in capsys.readouterr().err
    straight = sorted(path.name for path in (tmp_path / "straight").iterdir())
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == straight and len(straight) > 8
    for name in straight:
        if name.endswith(".safetensors"):
            assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes(), name
