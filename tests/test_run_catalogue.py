"""The bad-input catalogue of ``tui-merge run``: bad configs, damaged checkpoints, unsafe outputs.

Every case must give exit 2, one sentence on stderr that names the culprit,
no traceback, no output folder (nor a partial one), and unchanged inputs.
Each case is a function that sets the scene in a work folder and returns
the command line and the words the message must hold.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import folder_digest
from safetensors.numpy import load_file, save_file

from model_factory import ModelFactory, truncate, write_header_length
from tui_merge.cli import main

Scene = Callable[[Path, dict[str, Path]], tuple[list[str], str]]
LINEAR = "merge_method: linear\nmodels: [{{model: {a}}}, {{model: {b}}}]\n"


def config(work: Path, text: str, **models: Path) -> str:
    path = work / "merge.yaml"
    path.write_text(text.format(**{key: str(value) for key, value in models.items()}))
    return str(path)


def run(work: Path, text: str, *extra: str, **models: Path) -> list[str]:
    return ["run", config(work, text, **models), str(work / "out"), *extra]


def damaged_copy(work: Path, source: Path, name: str = "damaged") -> Path:
    import shutil

    target = work / name
    shutil.copytree(source, target)
    return target


def weights_of(folder: Path) -> Path:
    return folder / "model.safetensors"


class CodePayload:
    """Unpickling this creates the marker file: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _bin_with_payload(work: Path, m: dict[str, Path]) -> tuple[list[str], str]:
    folder = work / "evil"
    folder.mkdir()
    (folder / "config.json").write_bytes((m["b"] / "config.json").read_bytes())
    torch.save({"model.embed_tokens.weight": CodePayload(work / "payload-ran")}, folder / "pytorch_model.bin")
    return run(work, LINEAR, a=m["a"], b=folder), "contains Python objects other than tensors"


def _nan_input(work: Path, m: dict[str, Path]) -> tuple[list[str], str]:
    folder = damaged_copy(work, m["b"])
    state = load_file(weights_of(folder))
    state["model.layers.0.mlp.up_proj.weight"][1, 1] = np.inf
    save_file(state, weights_of(folder), metadata={"format": "pt"})
    return run(work, LINEAR, a=m["a"], b=folder), "Input tensor model.layers.0.mlp.up_proj.weight of"


def _wrong_shape(work: Path, m: dict[str, Path]) -> tuple[list[str], str]:
    folder = damaged_copy(work, m["b"])
    state = load_file(weights_of(folder))
    state["model.layers.1.self_attn.o_proj.weight"] = state["model.layers.1.self_attn.o_proj.weight"][:, :16].copy()
    save_file(state, weights_of(folder), metadata={"format": "pt"})
    return run(work, LINEAR, a=m["a"], b=folder), "model.layers.1.self_attn.o_proj.weight [32, 32] vs [32, 16]"


def _damaged(change: Callable[[Path], None], expected: str) -> Scene:
    def scene(work: Path, m: dict[str, Path]) -> tuple[list[str], str]:
        folder = damaged_copy(work, m["b"])
        change(folder)
        return run(work, LINEAR, a=m["a"], b=folder), expected

    return scene


def _not_json_header(folder: Path) -> None:
    data = bytearray(weights_of(folder).read_bytes())
    data[8:12] = b"\xff\xfe{]"
    weights_of(folder).write_bytes(bytes(data))


def _missing_shard(work: Path, m: dict[str, Path]) -> tuple[list[str], str]:
    folder = damaged_copy(work, m["sharded"])
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    (folder / sorted(set(index["weight_map"].values()))[1]).unlink()
    return run(work, LINEAR, a=m["a"], b=folder), "which is missing from"


def _leftover_partial(work: Path, m: dict[str, Path]) -> tuple[list[str], str]:
    command = run(work, LINEAR, a=m["a"], b=m["b"])
    (work / "out.partial").mkdir()
    return command, "is left from an interrupted merge; continue it with"


def _existing_output(work: Path, m: dict[str, Path]) -> tuple[list[str], str]:
    command = run(work, LINEAR, a=m["a"], b=m["b"])
    (work / "out").mkdir()
    (work / "out" / "notes.txt").write_text("mine")
    return command, "already exists and is not empty"


def _output_inside_input(work: Path, m: dict[str, Path]) -> tuple[list[str], str]:
    folder = damaged_copy(work, m["b"], "inner")
    return ["run", config(work, LINEAR, a=m["a"], b=folder), str(folder / "merged")], "is inside input model"


def _input_inside_output(work: Path, m: dict[str, Path]) -> tuple[list[str], str]:
    folder = damaged_copy(work, m["b"], "out/model")
    (work / "out" / "tui_merge_config.yaml").write_text(LINEAR)  # an earlier merge, which --force may replace
    return ["run", config(work, LINEAR, a=m["a"], b=folder), str(work / "out"), "--force"], "is inside output"


def simple(text: str, expected: str, *extra: str) -> Scene:
    return lambda work, m: (run(work, text, *extra, a=m["a"], b=m["b"], c=m["vocab"]), expected)


CASES: dict[str, Scene] = {
    "yaml syntax": simple("merge_method: linear\nmodels: [\n", "merge.yaml"),
    "not a mapping": simple("- linear\n", "merge.yaml"),
    "no merge_method": simple("models: [{{model: {a}}}]\n", "merge_method"),
    "misspelt method": simple("merge_method: dare-ties\nmodels: [{{model: {a}}}]\n", "did you mean 'dare_ties'"),
    "density out of range": simple(
        "merge_method: ties\nbase_model: {a}\nmodels: [{{model: {b}, parameters: {{density: 1.5}}}}]\n",
        "density must be between 0 and 1, got 1.5",
    ),
    "unknown parameter": simple(
        "merge_method: ties\nbase_model: {a}\nmodels: [{{model: {b}, parameters: {{desnity: 0.5}}}}]\n", "desnity"
    ),
    "models and slices": simple(
        "merge_method: linear\nmodels: [{{model: {a}}}]\n"
        "slices: [{{sources: [{{model: {a}, layer_range: [0, 2]}}]}}]\n",
        "merge.yaml",
    ),
    "missing base": simple("merge_method: ties\nmodels: [{{model: {a}}}, {{model: {b}}}]\n", "base"),
    "missing model folder": simple("merge_method: linear\nmodels: [{{model: {a}}}, {{model: ./nowhere}}]\n", "nowhere"),
    "layer range beyond": simple(
        "merge_method: passthrough\nslices:\n  - sources: [{{model: {a}, layer_range: [0, 3]}}]\n",
        "[0, 3] goes beyond",
    ),
    "slerp with three models": simple(
        "merge_method: slerp\nbase_model: {a}\nmodels: [{{model: {a}}}, {{model: {b}}}, {{model: {b}}}]\n"
        "parameters: {{t: 0.5}}\n",
        "slerp",
    ),
    "bad tokenizer_source": simple(
        LINEAR + "tokenizer_source: unoin\n", "tokenizer_source: unoin is neither base nor union nor a model here"
    ),
    "vocab mismatch": simple(
        "merge_method: linear\nmodels: [{{model: {a}}}, {{model: {c}}}]\n", "Vocabulary sizes differ"
    ),
    "bad shard size": simple(LINEAR + "tui_merge: {{shard_size: 5XB}}\n", "5XB"),
    "bad device": simple(LINEAR + "tui_merge: {{device: tpu}}\n", "tpu"),
    "two outputs": simple(LINEAR, "Two outputs given", "-o", "elsewhere"),
    "resume with nothing to resume": simple(LINEAR, "There is no interrupted merge to resume", "--resume"),
    "missing config file": lambda work, m: (["run", str(work / "absent.yaml"), str(work / "out")], "absent.yaml"),
    "truncated weights": _damaged(
        lambda folder: truncate(weights_of(folder), weights_of(folder).stat().st_size - 100), "is truncated"
    ),
    "header length beyond the file": _damaged(
        lambda folder: write_header_length(weights_of(folder), 10**12), "declares a 1000000000000-byte header"
    ),
    "header not json": _damaged(_not_json_header, "is not valid JSON"),
    "empty weights file": _damaged(lambda folder: weights_of(folder).write_bytes(b""), "is 0 bytes"),
    "garbage config.json": _damaged(lambda folder: (folder / "config.json").write_text("{nope"), "config.json"),
    "index naming a missing shard": _missing_shard,
    "one tensor of the wrong shape": _wrong_shape,
    "inf in an input": _nan_input,
    "malicious pickle": _bin_with_payload,
    "leftover partial folder": _leftover_partial,
    "existing output": _existing_output,
    "output inside an input": _output_inside_input,
    "input inside the output": _input_inside_output,
}


def _damaged_journal(content: bytes) -> Scene:
    def scene(work: Path, m: dict[str, Path]) -> tuple[list[str], str]:
        partial = work / "out.partial"
        partial.mkdir()
        (partial / ".tui_merge_journal.jsonl").write_bytes(b'{"fingerprint": "abc"}\n' + content)
        return run(work, LINEAR, "--resume", a=m["a"], b=m["b"]), "is damaged, so"

    return scene


def _edited_header(edit: Callable[[dict], object], expected: str) -> Scene:
    """The fine-tune with its safetensors header rewritten by ``edit`` (the tensor bytes stay as they are)."""

    def scene(work: Path, m: dict[str, Path]) -> tuple[list[str], str]:
        folder = damaged_copy(work, m["b"])
        path = weights_of(folder)
        blob = path.read_bytes()
        length = int.from_bytes(blob[:8], "little")
        header = json.loads(blob[8 : 8 + length])
        edited = edit(header)
        raw = edited if isinstance(edited, bytes) else json.dumps(header).encode()
        path.write_bytes(len(raw).to_bytes(8, "little") + raw + blob[8 + length :])
        return run(work, LINEAR, a=m["a"], b=folder), expected

    return scene


def _set(header: dict, name: str, key: str, value: object) -> None:
    header[name][key] = value


Q, OUT_PROJ = "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.o_proj.weight"
INVALID = "without a valid dtype (text), shape (whole numbers of at least 0) and data_offsets"


def _laughs(work: Path, m: dict[str, Path]) -> tuple[list[str], str]:
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"{chr(c)}: &{chr(c)} [{', '.join(['*' + chr(c - 1)] * 10)}]" for c in range(ord("b"), ord("k"))]
    return run(work, "\n".join(lines) + "\n" + LINEAR, a=m["a"], b=m["b"]), "once its aliases (*name) are expanded"


def _huge_config(work: Path, m: dict[str, Path]) -> tuple[list[str], str]:
    path = work / "merge.yaml"
    path.write_text(LINEAR.format(a=m["a"], b=m["b"]) + "#" * (2 << 20) + "\n")
    return ["run", str(path), str(work / "out")], "refused unread"


CASES.update(
    {
        "header dtype not text": _edited_header(lambda h: _set(h, Q, "dtype", ["F32"]), INVALID),
        "header negative dimension": _edited_header(lambda h: _set(h, Q, "shape", [-32, -32]), INVALID),
        "header fractional dimension": _edited_header(lambda h: _set(h, Q, "shape", [32.5, 32]), INVALID),
        "header offsets as text": _edited_header(lambda h: _set(h, Q, "data_offsets", ["0", "10"]), INVALID),
        "header offsets reversed": _edited_header(
            lambda h: _set(h, Q, "data_offsets", h[Q]["data_offsets"][::-1]), INVALID
        ),
        "header tensors sharing bytes": _edited_header(
            lambda h: _set(h, OUT_PROJ, "data_offsets", h[Q]["data_offsets"]), "on overlapping bytes"
        ),
        "header metadata not text": _edited_header(lambda h: h.update({"__metadata__": {"format": 1}}), "__metadata__"),
        "header number too long": _edited_header(
            lambda h: json.dumps(h).replace('"data_offsets": [', '"data_offsets": [' + "9" * 5000 + ", ", 1).encode(),
            "not valid JSON",
        ),
        "header padded far beyond any real one": _edited_header(
            lambda h: json.dumps(h).encode() + b" " * (33 << 20), "more than the 32 MiB any real checkpoint needs"
        ),
        "header nested too deeply": _edited_header(lambda h: b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        "journal line not an object": _damaged_journal(b"[1, 2]\n"),
        "journal line missing keys": _damaged_journal(b'{"shard": "model.safetensors"}\n'),
        "journal not UTF-8": _damaged_journal(b'{"shard": "\xff\xfe"}\n'),
        "billion laughs": _laughs,
        "nesting too deep": simple(LINEAR + "x: " + "[" * 300 + "]" * 300 + "\n", "nests deeper than 32 levels"),
        "config larger than 1 MiB": _huge_config,
        "too many gradient anchors": simple(
            "merge_method: linear\nmodels: [{{model: {a}, parameters: {{weight: ["
            + ", ".join(["0.5"] * 10_001)
            + "]}}}}, {{model: {b}, parameters: {{weight: 1}}}}]\n",
            "10001 gradient anchors",
        ),
        "NaN weight": simple(
            "merge_method: linear\nmodels: [{{model: {a}, parameters: {{weight: .nan}}}}, "
            "{{model: {b}, parameters: {{weight: 1}}}}]\n",
            "must be a finite number, got nan",
        ),
        "NaN density in a gradient": simple(
            "merge_method: ties\nbase_model: {a}\nmodels: [{{model: {b}, parameters: {{density: [0.5, .nan]}}}}]\n",
            "density[1] must be a finite number between 0 and 1, got nan",
        ),
        "infinite filter value": simple(
            "merge_method: linear\nmodels: [{{model: {a}}}, {{model: {b}}}]\n"
            "parameters: {{weight: [{{filter: mlp, value: .inf}}, {{value: 1}}]}}\n",
            "must be a finite number, got inf",
        ),
        "weight beyond float32": simple(
            "merge_method: linear\nmodels: [{{model: {a}, parameters: {{weight: 1e300}}}}, "
            "{{model: {b}, parameters: {{weight: 1}}}}]\n",
            "must be a number float32 can hold, got 1e+300",
        ),
        "seed out of range": simple(
            LINEAR + "tui_merge: {{seed: 18446744073709551616}}\n", "seed must be a whole number"
        ),
        "negative seed": simple(LINEAR + "tui_merge: {{seed: -1}}\n", "from 0 to 2**64-1, got -1"),
    }
)


def _edited_json(name: str, edit: Callable[[dict], object], expected: str, *, both: bool = False) -> Scene:
    """The base (the config's first model, whose config the merge starts from) with ``name`` rewritten by
    ``edit`` (returning text replaces the file); ``both`` edits the fine-tune the same way."""

    def scene(work: Path, m: dict[str, Path]) -> tuple[list[str], str]:
        folders = {}
        for key in ("a", "b") if both else ("a",):
            folder = damaged_copy(work, m[key], f"damaged-{key}")
            path = folder / name
            data = json.loads(path.read_text()) if path.is_file() else {}
            edited = edit(data)
            path.write_text(edited if isinstance(edited, str) else json.dumps(data))
            folders[key] = folder
        return run(work, LINEAR, a=folders["a"], b=folders.get("b", m["b"])), expected

    return scene


def _put(key: str, value: object) -> Callable[[dict], None]:
    return lambda data: data.update({key: value})


CASES.update(
    {
        "config.json not an object": _edited_json("config.json", lambda d: "[1, 2]", "is not a JSON object"),
        "config.json nested too deeply": _edited_json(
            "config.json", lambda d: '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "is nested too deeply"
        ),
        "config.json without model_type": _edited_json(
            "config.json",
            lambda d: d.pop("model_type") and None,
            "has no model_type, so transformers cannot tell",
            both=True,
        ),
        "config.json fewer layers": _edited_json(
            "config.json", _put("num_hidden_layers", 1), "config.json says 1 layers but the weights hold 2"
        ),
        "config.json huge layer count": _edited_json(
            "config.json", _put("num_hidden_layers", 9999), "config.json says 9999 layers"
        ),
        "config.json negative layer count": _edited_json(
            "config.json", _put("num_hidden_layers", -2), "gives num_hidden_layers as -2"
        ),
        "config.json fractional layer count": _edited_json(
            "config.json", _put("num_hidden_layers", 2.5), "gives num_hidden_layers as 2.5"
        ),
        "config.json vocabulary larger than the embedding": _edited_json(
            "config.json", _put("vocab_size", 70), "says vocab_size 70 but the embedding has"
        ),
        "config.json hidden size not the tensors'": _edited_json(
            "config.json", _put("hidden_size", 64), "does not describe the merged tensors: LlamaForCausalLM", both=True
        ),
        "config.json intermediate size not the tensors'": _edited_json(
            "config.json", _put("intermediate_size", 7), "model.layers.0.mlp.down_proj.weight is [32, 64], expected"
        ),
        "config.json dtype a list": _edited_json(
            "config.json", _put("torch_dtype", ["bfloat16"]), "gives torch_dtype as ['bfloat16'], which is not a dtype"
        ),
        "config.json dtype a number": _edited_json("config.json", _put("dtype", 16), "gives dtype as 16, which is not"),
        "config.json negative vocabulary": _edited_json("config.json", _put("vocab_size", -256), "vocab_size as -256"),
        "config.json fractional vocabulary": _edited_json(
            "config.json", _put("vocab_size", 255.5), "gives vocab_size as 255.5"
        ),
        "config.json tie_word_embeddings as text": _edited_json(
            "config.json", _put("tie_word_embeddings", "false"), "gives tie_word_embeddings as 'false', which must be"
        ),
        "generation_config.json not JSON": _edited_json(
            "generation_config.json", lambda d: "{oops", "generation_config.json is not valid JSON"
        ),
        "generation_config.json refused by transformers": _edited_json(
            "generation_config.json", _put("max_new_tokens", -3), "holds settings transformers refuses"
        ),
    }
)


def _far_token_id(work: Path, m: dict[str, Path]) -> tuple[list[str], str]:
    from tui_merge.samples import sample_tokenizer

    folder = damaged_copy(work, m["b"])
    sample_tokenizer(256).save_pretrained(folder)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["model"]["vocab"]["far-away"] = 10**9
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    return run(work, LINEAR, a=m["a"], b=folder), "gives a token ('far-away') the id 1000000000, far outside its"


CASES["tokenizer id far beyond its tokens"] = _far_token_id


@pytest.fixture(scope="module")
def models(factory: ModelFactory, llama_base, llama_finetune, llama_vocab_plus) -> dict[str, Path]:
    return {
        "a": llama_base,
        "b": llama_finetune,
        "vocab": llama_vocab_plus,
        "sharded": factory.sharded("llama-finetune-sharded", llama_finetune),
    }


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_sentence_exit_2_and_costs_nothing(case, tmp_path, models, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    command, expected = CASES[case](tmp_path, models)
    inputs = [path for path in tmp_path.iterdir() if path.is_dir()] + [models["a"], models["b"]]
    before = {path: folder_digest(path) for path in inputs}
    existing_out = (tmp_path / "out").exists()

    status = main(command)

    out, err = capsys.readouterr()
    assert status == 2, (case, err)
    # Progress lines may come first when the culprit shows only once merging starts (a NaN in an input).
    errors = [line for line in err.splitlines() if line.startswith("tui-merge: error: ")]
    assert len(errors) == 1 and err.splitlines()[-1] == errors[0], err
    assert expected in err, err
    assert "Traceback" not in err
    assert existing_out or not (tmp_path / "out").exists()
    assert case == "leftover partial folder" or case.startswith("journal") or not (tmp_path / "out.partial").exists()
    assert {path: folder_digest(path) for path in inputs} == before
    assert not (tmp_path / "payload-ran").exists()
