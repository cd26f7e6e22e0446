"""Answers in a moment: tokenizers read without transformers, one tensor without torch, mistakes said before torch.

Speed is measured in ``benchmarks/``, never here; these tests check that the fast ways give exactly what the
slow ones did, and that the commands that should not need torch do not import it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tui_merge.models.checkpoint import read_checkpoint
from tui_merge.models.tensor_data import read_float64
from tui_merge.vocab.tokenizer import fast_facts, transformers_facts


@pytest.fixture(scope="module")
def older(factory) -> Path:
    return factory.llama_tokens("llama-older-fast", finetune_seed=6, trained=254, added=("<legacy_a>", "<legacy_b>"))


@pytest.mark.parametrize("name", ["llama_base", "llama_chat_tokens", "llama_reordered", "older"])
def test_tokenizer_facts_read_directly_equal_transformers(request, name) -> None:
    folder = request.getfixturevalue(name)
    fast, slow = fast_facts(folder), transformers_facts(folder)

    assert fast is not None, "this tokenizer should not need transformers"
    assert (fast.ids, fast.special_ids, fast.added) == (slow.ids, slow.special_ids, slow.added)


def _copy(tmp_path: Path, folder: Path) -> Path:
    target = tmp_path / "tokenizer"
    shutil.copytree(folder, target)
    return target


def _edit_settings(folder: Path, **changes: object) -> None:
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings.update(changes)
    (folder / "tokenizer_config.json").write_text(json.dumps(settings))


@pytest.mark.parametrize(
    "change",
    [
        "special tokens map",
        "class with defaults",
        "special token not in the vocabulary",
        "config moves an added token",
    ],
)
def test_tokenizers_the_files_do_not_fully_describe_go_to_transformers(tmp_path, llama_chat_tokens, change) -> None:
    folder = _copy(tmp_path, llama_chat_tokens)
    if change == "special tokens map":
        (folder / "special_tokens_map.json").write_text(json.dumps({"eos_token": "<s>"}))
    elif change == "class with defaults":
        settings = json.loads((folder / "tokenizer_config.json").read_text())
        settings.pop("pad_token", None)
        settings["tokenizer_class"] = "LlamaTokenizer"
        (folder / "tokenizer_config.json").write_text(json.dumps(settings))
    elif change == "special token not in the vocabulary":
        _edit_settings(folder, pad_token="<not-in-vocab>")
    else:
        _edit_settings(folder, added_tokens_decoder={"3": {"content": "<|im_end|>", "special": True}})

    assert fast_facts(folder) is None


def test_one_tensor_is_read_without_torch_exactly_as_torch_reads_it(tmp_path) -> None:
    values = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    stored = {"f32": values, "f16": values.half(), "bf16": values.bfloat16(), "f64": values.double()}
    save_file(stored, tmp_path / "model.safetensors")
    torch.save(stored, tmp_path / "pytorch_model.bin")

    for source in ("model.safetensors", "pytorch_model.bin"):
        folder = tmp_path / source.split(".")[0]
        folder.mkdir()
        shutil.copy(tmp_path / source, folder / source)
        tensors = read_checkpoint(folder).tensors
        for name, tensor in stored.items():
            assert np.array_equal(read_float64(tensors[name]), tensor.double().flatten().numpy()), (source, name)


_NO_TORCH = """
import sys
from tui_merge.cli import main
status = main({argv!r})
print(status, "torch" in sys.modules, "transformers" in sys.modules)
"""


def _imports(argv: list[str], cwd: Path) -> tuple[int, bool, bool]:
    done = subprocess.run([sys.executable, "-c", _NO_TORCH.format(argv=argv)], capture_output=True, text=True,
                          cwd=cwd)  # fmt: skip
    status, torch_loaded, transformers_loaded = done.stdout.split()[-3:]
    return int(status), torch_loaded == "True", transformers_loaded == "True"


def test_inspect_and_mistakes_about_the_output_do_not_import_torch(tmp_path, llama_base, llama_chat_tokens) -> None:
    config = tmp_path / "m.yaml"
    config.write_text(f"merge_method: linear\nmodels: [{{model: {llama_base}}}, {{model: {llama_chat_tokens}}}]\n")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    (tmp_path / "left.partial").mkdir()

    assert _imports(["inspect", str(llama_base), str(llama_chat_tokens)], tmp_path) == (0, False, False)
    for output in ("taken", "left"):
        assert _imports(["run", str(config), str(tmp_path / output)], tmp_path) == (2, False, False)
    missing = tmp_path / "missing.yaml"
    missing.write_text(f"merge_method: linear\nmodels: [{{model: {llama_base}}}, {{model: ./nowhere}}]\n")
    assert _imports(["run", str(missing), str(tmp_path / "out")], tmp_path) == (2, False, False)


def test_a_passed_config_check_is_remembered_and_a_failed_one_is_not(tmp_path, monkeypatch, llama_base, llama_finetune):
    from tui_merge.cli import main
    from tui_merge.models import architecture_fit

    monkeypatch.setenv("TUI_MERGE_CACHE", str(tmp_path / "cache"))  # not the checks other tests passed
    config = tmp_path / "m.yaml"
    config.write_text(f"merge_method: linear\nmodels: [{{model: {llama_base}}}, {{model: {llama_finetune}}}]\n")
    asked = []
    real_fit = architecture_fit.architecture_fit

    def counting_fit(*args, **kwargs):
        asked.append(1)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(architecture_fit, "architecture_fit", counting_fit)
    assert main(["run", str(config), str(tmp_path / "first")]) == 0
    assert main(["run", str(config), str(tmp_path / "second")]) == 0
    assert len(asked) == 1  # the replay did not ask transformers again

    broken = tmp_path / "broken"
    shutil.copytree(llama_base, broken)
    settings = json.loads((broken / "config.json").read_text())
    settings["intermediate_size"] = 7
    (broken / "config.json").write_text(json.dumps(settings))
    config.write_text(f"merge_method: linear\nmodels: [{{model: {broken}}}, {{model: {llama_finetune}}}]\n")
    for output in ("third", "fourth"):
        assert main(["run", str(config), str(tmp_path / output)]) == 2
    assert len(asked) == 3  # a failed check is asked again every time
