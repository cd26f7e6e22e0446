"""Merges end to end on tiny fixture models: outputs checked against formulas over the input files."""

from __future__ import annotations

import json
import re
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import folder_digest
from reference_math import numpy_slerp
from safetensors.numpy import load_file as load_numpy
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file

from model_factory import ModelFactory
from tui_merge.config import parse_config
from tui_merge.engine.control import MergeControl
from tui_merge.engine.events import MergeFinished, MergeStarted, ShardWritten, TensorMerged
from tui_merge.engine.executor import execute
from tui_merge.engine.merge_errors import MergeCancelled, MergeError
from tui_merge.engine.plan import build_plan
from tui_merge.engine.preflight import check_output
from tui_merge.engine.prepare import inspect_models
from tui_merge.errors import BadInputError


def plan_for(text: str, **names: Path):
    """Plan a config whose model names are placeholders filled with fixture paths."""
    loaded = parse_config(textwrap.dedent(text).format(**{key: str(path) for key, path in names.items()}), "merge.yaml")
    return build_plan(loaded, inspect_models(loaded))


def merge(tmp_path: Path, text: str, name: str = "out", **names: Path) -> Path:
    plan = plan_for(text, **names)
    output = tmp_path / name
    check_output(plan, output)
    execute(plan, output)
    return output


def weights(folder: Path) -> dict[str, np.ndarray]:
    state = load_file(folder / "model.safetensors")
    return {name: tensor.float().numpy() for name, tensor in state.items()}


def test_linear_merge_is_the_weighted_average_of_every_tensor(tmp_path, llama_base, llama_finetune) -> None:
    inputs = [llama_base, llama_finetune]
    output = merge(
        tmp_path,
        """\
        merge_method: linear
        models:
          - model: {a}
            parameters: {{weight: 0.25}}
          - model: {b}
            parameters: {{weight: 0.75}}
        dtype: float32
        """,
        a=llama_base,
        b=llama_finetune,
    )
    a, b = weights(inputs[0]), weights(inputs[1])

    merged = weights(output)
    assert set(merged) == set(a)
    for name in a:
        np.testing.assert_allclose(merged[name], 0.25 * a[name] + 0.75 * b[name], rtol=1e-6, atol=1e-7)


def test_slerp_per_layer_values_and_filters_apply_to_the_right_tensors(tmp_path, llama_base, llama_unrelated) -> None:
    output = merge(
        tmp_path,
        """\
        merge_method: slerp
        base_model: {a}
        models: [{{model: {a}}}, {{model: {b}}}]
        parameters:
          t:
            - filter: self_attn
              value: [0.0, 1.0]
            - filter: lm_head
              value: 0.9
            - value: 0.3
        """,
        a=llama_base,
        b=llama_unrelated,
    )
    a, b, merged = weights(llama_base), weights(llama_unrelated), weights(output)

    for name, t in [
        ("model.layers.0.self_attn.q_proj.weight", 0.0),
        ("model.layers.1.self_attn.q_proj.weight", 1.0),
        ("model.layers.1.mlp.up_proj.weight", 0.3),
        ("lm_head.weight", 0.9),
        ("model.embed_tokens.weight", 0.3),
    ]:
        np.testing.assert_allclose(merged[name], numpy_slerp(t, a[name], b[name]), rtol=1e-5, atol=1e-6, err_msg=name)


def test_slerp_over_slices_takes_the_base_from_the_sources(tmp_path, llama_base, llama_unrelated) -> None:
    output = merge(
        tmp_path,
        """\
        merge_method: slerp
        base_model: {a}
        slices:
          - sources:
              - {{model: {a}, layer_range: [0, 2]}}
              - {{model: {b}, layer_range: [0, 2]}}
        parameters:
          t: [{{filter: self_attn, value: [0, 1]}}, {{value: 0.5}}]
        """,
        a=llama_base,
        b=llama_unrelated,
    )
    a, b, merged = weights(llama_base), weights(llama_unrelated), weights(output)

    np.testing.assert_array_equal(
        merged["model.layers.0.self_attn.q_proj.weight"], a["model.layers.0.self_attn.q_proj.weight"]
    )
    name = "model.layers.1.mlp.down_proj.weight"
    np.testing.assert_allclose(merged[name], numpy_slerp(0.5, a[name], b[name]), rtol=1e-5, atol=1e-6)
    assert set(merged) == set(a)


def test_ties_merge_loads_and_generates(tmp_path, llama_base, llama_finetune, llama_vocab_plus) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    output = merge(
        tmp_path,
        """\
        merge_method: ties
        base_model: {base}
        models:
          - model: {base}
          - model: {a}
            parameters: {{weight: 0.5, density: 0.5}}
          - model: {b}
            parameters: {{weight: 0.5, density: 0.5}}
        dtype: bfloat16
        tui_merge: {{vocab: truncate}}
        """,
        base=llama_base,
        a=llama_finetune,
        b=llama_vocab_plus,
    )

    model = AutoModelForCausalLM.from_pretrained(output)
    tokenizer = AutoTokenizer.from_pretrained(output)
    prompt = tokenizer("Merging models", return_tensors="pt").input_ids
    generated = model.generate(prompt, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert model.dtype == torch.bfloat16
    assert generated.shape[1] == prompt.shape[1] + 4
    config = json.loads((output / "config.json").read_text())
    assert config["vocab_size"] == 256 and config["num_hidden_layers"] == 2
    assert (output / "tui_merge_config.yaml").read_text().startswith("merge_method: ties")
    card = (output / "README.md").read_text()
    recipe = card.split("```yaml\n", 1)[1].split("```", 1)[0]  # the card carries the recipe that replays it
    assert yaml.safe_load(recipe) == yaml.safe_load((output / "tui_merge_config.yaml").read_text())
    assert f"- {llama_base}" in card and "`ties` method" in card


def test_pad_gives_new_rows_the_mean_row_and_truncate_cuts(tmp_path, llama_base, llama_vocab_plus) -> None:
    recipe = """\
        merge_method: linear
        base_model: {a}
        models: [{{model: {a}}}, {{model: {b}}}]
        tui_merge: {{vocab: {strategy}}}
        """
    padded = merge(tmp_path, recipe.replace("{strategy}", "pad"), "padded", a=llama_base, b=llama_vocab_plus)
    cut = merge(tmp_path, recipe.replace("{strategy}", "truncate"), "cut", a=llama_base, b=llama_vocab_plus)
    a, b = weights(llama_base)["model.embed_tokens.weight"], weights(llama_vocab_plus)["model.embed_tokens.weight"]

    a_padded = np.concatenate([a, np.repeat(a.mean(axis=0, keepdims=True), 4, axis=0)])
    np.testing.assert_allclose(weights(padded)["model.embed_tokens.weight"], (a_padded + b) / 2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(weights(cut)["model.embed_tokens.weight"], (a + b[:256]) / 2, rtol=1e-6, atol=1e-7)
    assert json.loads((padded / "config.json").read_text())["vocab_size"] == 260


def test_frankenmerge_stacks_the_chosen_layers(tmp_path, llama_base, llama_finetune, llama_deeper) -> None:
    output = merge(
        tmp_path,
        """\
        merge_method: passthrough
        slices:
          - sources: [{{model: {a}, layer_range: [0, 2]}}]
          - sources: [{{model: {b}, layer_range: [1, 2]}}]
          - sources: [{{model: {c}, layer_range: [2, 4]}}]
        dtype: float32
        """,
        a=llama_base,
        b=llama_finetune,
        c=llama_deeper,
    )
    a, b, c, merged = weights(llama_base), weights(llama_finetune), weights(llama_deeper), weights(output)

    assert json.loads((output / "config.json").read_text())["num_hidden_layers"] == 5
    suffix = "self_attn.v_proj.weight"
    sources = [(a, 0), (a, 1), (b, 1), (c, 2), (c, 3)]
    for out_layer, (model, layer) in enumerate(sources):
        np.testing.assert_array_equal(
            merged[f"model.layers.{out_layer}.{suffix}"], model[f"model.layers.{layer}.{suffix}"]
        )
    np.testing.assert_array_equal(merged["model.embed_tokens.weight"], a["model.embed_tokens.weight"])
    np.testing.assert_array_equal(merged["lm_head.weight"], c["lm_head.weight"])


@pytest.mark.parametrize("method", ["dare_ties", "della", "circuit"])
def test_random_methods_replay_byte_for_byte(tmp_path, llama_base, llama_finetune, llama_unrelated, method) -> None:
    recipe = f"""\
        merge_method: {method}
        base_model: {{base}}
        models:
          - model: {{a}}
          - model: {{b}}
        tui_merge: {{{{seed: 5, shard_size: 20KB}}}}
        """
    if method != "circuit":
        recipe = recipe.replace("- model: {a}", "- model: {a}\n            parameters: {{density: 0.5}}")
    first = merge(tmp_path, recipe, "first", base=llama_base, a=llama_finetune, b=llama_unrelated)
    second = merge(tmp_path, recipe, "second", base=llama_base, a=llama_finetune, b=llama_unrelated)

    assert folder_digest(first) == folder_digest(second)
    assert len(list(first.glob("*.safetensors"))) > 1


def test_shards_respect_the_size_limit_and_the_index_covers_every_tensor(tmp_path, llama_base, llama_finetune) -> None:
    limit = 30_000
    output = merge(
        tmp_path,
        """\
        merge_method: linear
        models: [{{model: {a}}}, {{model: {b}}}]
        tui_merge: {{shard_size: 30KB}}
        """,
        a=llama_base,
        b=llama_finetune,
    )
    index = json.loads((output / "model.safetensors.index.json").read_text())
    shards = sorted(output.glob("model-*.safetensors"))

    assert len(shards) >= 4
    stored = {}
    for shard in shards:
        tensors = load_numpy(shard)
        assert sum(array.nbytes for array in tensors.values()) <= limit or len(tensors) == 1
        stored.update(dict.fromkeys(tensors, shard.name))
    assert index["weight_map"] == stored
    assert set(stored) == set(weights(llama_base))


def test_events_arrive_in_order(tmp_path, llama_base, llama_finetune) -> None:
    plan = plan_for("merge_method: linear\nmodels: [{{model: {a}}}, {{model: {b}}}]\n", a=llama_base, b=llama_finetune)
    events = []

    execute(plan, tmp_path / "out", on_event=events.append)

    assert isinstance(events[0], MergeStarted) and isinstance(events[-1], MergeFinished)
    progress = [event for event in events if isinstance(event, TensorMerged)]
    assert [event.index for event in progress] == list(range(1, len(plan.tasks) + 1))
    assert progress[-1].bytes_done == plan.bytes_to_write
    assert sum(isinstance(event, ShardWritten) for event in events) == 1


def test_cancel_leaves_nothing_at_the_output(tmp_path, llama_base, llama_finetune) -> None:
    plan = plan_for("merge_method: linear\nmodels: [{{model: {a}}}, {{model: {b}}}]\n", a=llama_base, b=llama_finetune)
    control = MergeControl()

    def cancel_after_three(event) -> None:
        if isinstance(event, TensorMerged) and event.index == 3:
            control.stop()

    with pytest.raises(MergeCancelled):
        execute(plan, tmp_path / "out", on_event=cancel_after_three, control=control)
    assert list(tmp_path.iterdir()) == []


class _StopAtCheckpoint(MergeControl):
    """Stops the merge at its ``stop_at``-th checkpoint, counting them."""

    def __init__(self, stop_at: int) -> None:
        super().__init__()
        self.stop_at, self.calls = stop_at, 0

    def checkpoint(self) -> bool:
        self.calls += 1
        if self.calls == self.stop_at:
            self.stop()
        return super().checkpoint()


def test_a_stop_takes_effect_between_blocks_of_one_large_tensor(tmp_path, monkeypatch, llama_base, llama_finetune):
    from tui_merge.engine import tensor_merge

    monkeypatch.setattr(tensor_merge, "BLOCK_BYTES", 512)  # every 2-D fixture tensor becomes several blocks
    plan = plan_for(
        "merge_method: linear\nmodels: [{{model: {a}}}, {{model: {b}}}]\ntui_merge: {{shard_size: 1KB}}\n",
        a=llama_base, b=llama_finetune,
    )  # fmt: skip
    first_blocked = next(index for index, task in enumerate(plan.tasks) if tensor_merge._row_blocks(plan, task))
    control = _StopAtCheckpoint(stop_at=first_blocked + 3)  # one per tensor so far, then the second block
    merged = []
    with pytest.raises(MergeCancelled):
        execute(plan, tmp_path / "out", on_event=lambda event: merged.append(event), control=control)
    done = [event.index for event in merged if isinstance(event, TensorMerged)]
    assert done == list(range(1, first_blocked + 1))  # stopped inside the tensor, not after it
    assert list(tmp_path.iterdir()) == []


class _HeldControl(MergeControl):
    """A control that says when the merge has come to a checkpoint while paused: the test waits for that
    moment, not for a time a busy machine may need more of."""

    def __init__(self) -> None:
        super().__init__()
        self.held = threading.Event()

    def checkpoint(self) -> bool:
        if self.paused:
            self.held.set()
        return super().checkpoint()


def test_a_paused_merge_waits_and_resumes_to_the_same_bytes(tmp_path, llama_base, llama_finetune) -> None:
    recipe = "merge_method: linear\nmodels: [{{model: {a}}}, {{model: {b}}}]\n"
    execute(plan_for(recipe, a=llama_base, b=llama_finetune), tmp_path / "straight")
    control = _HeldControl()
    control.pause()
    events = []
    worker = threading.Thread(
        target=execute, args=(plan_for(recipe, a=llama_base, b=llama_finetune), tmp_path / "paused"),
        kwargs={"on_event": events.append, "control": control},
    )  # fmt: skip
    worker.start()
    assert control.held.wait(60), "the merge never came to a checkpoint"
    assert worker.is_alive() and not any(isinstance(event, TensorMerged) for event in events)
    control.resume()
    worker.join()
    assert folder_digest(tmp_path / "paused") == folder_digest(tmp_path / "straight")


def test_nan_in_an_input_is_refused_and_a_nan_result_stops_the_merge(
    tmp_path, factory: ModelFactory, llama_base
) -> None:
    broken = factory.damaged("nan-input", llama_base)
    state = load_numpy(broken / "model.safetensors")
    state["model.layers.1.mlp.down_proj.weight"][0, 0] = np.nan
    save_numpy(state, broken / "model.safetensors", metadata={"format": "pt"})
    plan = plan_for("merge_method: linear\nmodels: [{{model: {a}}}, {{model: {b}}}]\n", a=llama_base, b=broken)

    with pytest.raises(BadInputError, match="Input tensor model.layers.1.mlp.down_proj.weight of .*nan-input"):
        execute(plan, tmp_path / "out", keep_partial=True)
    assert list(tmp_path.iterdir()) == []

    with pytest.raises(
        MergeError, match="Tensor model.layers.1.mlp.down_proj.weight came out with NaN or Inf from linear"
    ):
        execute(plan, tmp_path / "out", allow_nonfinite=True, keep_partial=True)
    assert list(tmp_path.iterdir()) == []


def test_inputs_are_never_modified(tmp_path, llama_base, llama_finetune) -> None:
    before = [folder_digest(llama_base), folder_digest(llama_finetune)]

    merge(tmp_path, "merge_method: ties\nbase_model: {a}\nmodels: [{{model: {b}}}]\n", a=llama_base, b=llama_finetune)

    assert [folder_digest(llama_base), folder_digest(llama_finetune)] == before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "merge_method: passthrough\nslices:\n  - sources: [{{model: {a}, layer_range: [0, 3]}}]\n",
            "merge.yaml:3: slices[0].sources[0].layer_range: [0, 3] goes beyond",
        ),
        (
            "merge_method: linear\nmodels: [{{model: {a}}}, {{model: {b}}}]\n",
            "Vocabulary sizes differ (llama-base has 256, llama-vocab260 has 260 rows); add tui_merge: "
            "{vocab: truncate}",
        ),
        ("merge_method: linear\nmodels: [{{model: {a}}}, {{model: {c}}}]\n", "has different shapes"),
        (
            "merge_method: linear\nmodels: [{{model: {a}}}, {{model: {b}}}]\ntui_merge: {{vocab: union}}\n",
            "needs every model's tokenizer, and llama-vocab260 has none",
        ),
    ],
)
def test_bad_plans_fail_before_writing(
    tmp_path, factory: ModelFactory, llama_base, llama_vocab_plus, text, expected
) -> None:
    from tui_merge.samples import SampleShape

    wide = factory.llama("llama-wide", shape=SampleShape(hidden=64))
    with pytest.raises(BadInputError, match=re.escape(expected)):
        plan_for(text, a=llama_base, b=llama_vocab_plus, c=wide)


def test_output_checks(tmp_path, llama_base, llama_finetune) -> None:
    plan = plan_for("merge_method: linear\nmodels: [{{model: {a}}}, {{model: {b}}}]\n", a=llama_base, b=llama_finetune)
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")

    with pytest.raises(BadInputError, match="is inside input model llama-base"):
        check_output(plan, llama_base / "merged")
    with pytest.raises(BadInputError, match="is inside output"):
        check_output(plan, llama_base.parent)
    with pytest.raises(BadInputError, match="already exists and is not empty"):
        check_output(plan, occupied)
    check_output(plan, occupied, force=True)
    execute(plan, occupied, replace=True)
    assert not (occupied / "notes.txt").exists() and (occupied / "model.safetensors").exists()


def test_a_resume_needs_disk_space_only_for_the_shards_it_still_writes(
    tmp_path, monkeypatch, llama_base, llama_finetune
) -> None:
    from tui_merge.engine import preflight
    from tui_merge.engine.journal import Journal, file_sha256, plan_fingerprint

    plan = plan_for(
        "merge_method: linear\nmodels: [{{model: {a}}}, {{model: {b}}}]\ntui_merge: {{shard_size: 30KB}}\n",
        a=llama_base, b=llama_finetune,
    )  # fmt: skip
    whole = merge(tmp_path, "merge_method: linear\nmodels: [{{model: {a}}}, {{model: {b}}}]\n"
                  "tui_merge: {{shard_size: 30KB}}\n", "whole", a=llama_base, b=llama_finetune)  # fmt: skip
    partial = tmp_path / "out.partial"
    partial.mkdir()
    journal = Journal.create(partial, plan_fingerprint(plan))
    kept = plan.shards[: len(plan.shards) - 1]  # every shard but the last is finished
    for shard in kept:
        (partial / shard.file_name).write_bytes((whole / shard.file_name).read_bytes())
        journal.record(
            shard.file_name, (partial / shard.file_name).stat().st_size, file_sha256(partial / shard.file_name)
        )
    still = sum(plan.tasks[index].nbytes for index in plan.shards[-1].tasks)
    needed_then = int(still * preflight.DISK_MARGIN)
    monkeypatch.setattr(preflight, "free_space", lambda output: (tmp_path, needed_then))

    preflight.check_output(plan, tmp_path / "out", resume=True)
    with pytest.raises(BadInputError, match="the merge writes"):
        preflight.check_output(plan, tmp_path / "other")  # a fresh merge needs room for every shard
    monkeypatch.setattr(preflight, "free_space", lambda output: (tmp_path, needed_then - 1))
    with pytest.raises(BadInputError, match=f"the merge still writes {needed_then / 1e9:.2f} GB"):
        preflight.check_output(plan, tmp_path / "out", resume=True)


def test_a_partial_folder_left_by_another_run_is_never_removed(tmp_path, llama_base, llama_finetune) -> None:
    plan = plan_for("merge_method: linear\nmodels: [{{model: {a}}}, {{model: {b}}}]\n", a=llama_base, b=llama_finetune)
    leftover = tmp_path / "out.partial"
    leftover.mkdir()
    (leftover / "model-00001-of-00002.safetensors").write_bytes(b"finished work")

    with pytest.raises(MergeError, match=f"I/O error \\(File exists: {leftover}\\)"):
        execute(plan, tmp_path / "out")
    assert (leftover / "model-00001-of-00002.safetensors").read_bytes() == b"finished work"


@pytest.mark.parametrize(
    "text",
    [
        "merge_method: linear\nmodels: [{{model: {a}, parameters: {{weight: 0.3}}}},"
        " {{model: {b}, parameters: {{weight: 1.0}}}}]\n",
        "merge_method: task_arithmetic\nbase_model: {a}\nmodels: [{{model: {b}, parameters: {{weight: 0.7}}}}]\n",
        "merge_method: nearswap\nbase_model: {a}\nmodels: [{{model: {b}}}]\nparameters: {{t: 0.01}}\n",
        "merge_method: ties\nbase_model: {a}\nmodels: [{{model: {b}, parameters: {{density: 0.3, weight: 1.0}}}},"
        " {{model: {c}, parameters: {{density: 0.6, weight: 0.5}}}}]\n",
        "merge_method: ties\nbase_model: {a}\nmodels: [{{model: {b}, parameters: {{density: 1.0}}}}]\n",
        "merge_method: dare_ties\nbase_model: {a}\nmodels: [{{model: {b}, parameters: {{density: 0.4}}}},"
        " {{model: {c}, parameters: {{density: 0.7}}}}]\ntui_merge: {{seed: 11}}\n",
        "merge_method: della_linear\nbase_model: {a}\nmodels: [{{model: {b}, parameters: {{density: 0.4}}}},"
        " {{model: {c}, parameters: {{density: 0.7, epsilon: 0.1}}}}]\n",
        "merge_method: breadcrumbs\nbase_model: {a}\nmodels: [{{model: {b}, parameters: {{density: 0.5}}}},"
        " {{model: {c}, parameters: {{density: 0.8, gamma: 0.05}}}}]\n",
        "merge_method: breadcrumbs_ties\nbase_model: {a}\nmodels: [{{model: {b}, parameters: {{density: 0.5}}}},"
        " {{model: {c}, parameters: {{density: 0.3, gamma: 0.2}}}}]\n",
        "merge_method: ram\nbase_model: {a}\nmodels: [{{model: {b}}}, {{model: {c}}}]\nparameters: {{epsilon: 0.01}}\n",
        "merge_method: ramplus_tl\nbase_model: {a}\nmodels: [{{model: {b}}}, {{model: {c}}}]\n"
        "parameters: {{epsilon: 0.01, alpha: 5}}\n",
        "merge_method: arcee_fusion\nbase_model: {a}\nmodels: [{{model: {b}}}]\n",
        "merge_method: circuit\nbase_model: {a}\nmodels: [{{model: {b}}}, {{model: {c}}}]\ntui_merge: {{seed: 5}}\n",
        "merge_method: model_stock\nbase_model: {a}\nmodels: [{{model: {b}}}, {{model: {c}}}]\n"
        "parameters: {{filter_wise: true}}\n",
        "merge_method: nuslerp\nmodels: [{{model: {b}, parameters: {{weight: 1}}}},"
        " {{model: {c}, parameters: {{weight: 2}}}}]\n"
        "parameters: {{nuslerp_flatten: false}}\n",
        "merge_method: sce\nbase_model: {a}\nmodels: [{{model: {b}}}, {{model: {c}}}]\n"
        "parameters: {{select_topk: 1}}\n",
    ],
)
def test_large_tensors_merged_in_row_blocks_give_the_same_bytes(
    tmp_path, monkeypatch, llama_base, llama_finetune, llama_reordered, text
) -> None:
    from tui_merge.engine import tensor_merge

    models = {"a": llama_base, "b": llama_finetune, "c": llama_reordered}
    whole = merge(tmp_path, text, "whole", **models)
    monkeypatch.setattr(tensor_merge, "BLOCK_BYTES", 4096)  # the 256 x 32 embedding becomes 8 blocks of 32 rows
    plan = plan_for(text, **models)
    embedding = next(task for task in plan.tasks if task.name == "model.embed_tokens.weight")
    assert len(tensor_merge._row_blocks(plan, embedding)) == 8

    blocks = merge(tmp_path, text, "blocks", **models)
    assert folder_digest(blocks) == folder_digest(whole)


@pytest.mark.parametrize(
    "text",
    [
        "merge_method: sce\nbase_model: {a}\nmodels: [{{model: {b}}}, {{model: {c}}}]\n"
        "parameters: {{select_topk: 0.3}}\n",
        "merge_method: model_stock\nbase_model: {a}\nmodels: [{{model: {b}}}, {{model: {c}}}]\n",
        "merge_method: nuslerp\nbase_model: {a}\nmodels: [{{model: {b}, parameters: {{weight: 1}}}},"
        " {{model: {c}, parameters: {{weight: 2}}}}]\n",
        "merge_method: nuslerp\nmodels: [{{model: {b}, parameters: {{weight: 1}}}},"
        " {{model: {c}, parameters: {{weight: 2}}}}]\n"
        "parameters: {{nuslerp_flatten: false, nuslerp_row_wise: true}}\n",
        "merge_method: multislerp\nbase_model: {a}\n"
        "models: [{{model: {b}, parameters: {{weight: 1}}}}, {{model: {c}, parameters: {{weight: 2}}}}]\n",
        "merge_method: karcher\nmodels: [{{model: {a}}}, {{model: {b}}}, {{model: {c}}}]\n",
    ],
)
def test_methods_that_sum_over_the_whole_tensor_merge_by_blocks_as_they_do_whole(
    tmp_path, monkeypatch, llama_base, llama_finetune, llama_unrelated, text
) -> None:
    """Blocks add up float64 products or counts in another order than one pass does: equal up to that rounding."""
    from tui_merge.engine import tensor_merge

    models = {"a": llama_base, "b": llama_finetune, "c": llama_unrelated}
    whole = weights(merge(tmp_path, text, "whole", **models))
    monkeypatch.setattr(tensor_merge, "BLOCK_BYTES", 4096)
    plan = plan_for(text, **models)
    embedding = next(task for task in plan.tasks if task.name == "model.embed_tokens.weight")
    assert len(tensor_merge._row_blocks(plan, embedding)) == 8

    blocks = weights(merge(tmp_path, text, "blocks", **models))
    assert whole.keys() == blocks.keys()
    for name in whole:
        assert np.allclose(blocks[name], whole[name], rtol=1e-5, atol=1e-6), name


@pytest.mark.parametrize("other", ["llama_finetune", "llama_unrelated"])  # nearly colinear, and far apart
def test_slerp_of_a_large_tensor_by_blocks_matches_the_whole_tensor_formula(
    tmp_path, monkeypatch, request, llama_base, other
) -> None:
    other_model = request.getfixturevalue(other)
    from reference_math import numpy_slerp

    from tui_merge.engine import tensor_merge

    monkeypatch.setattr(tensor_merge, "BLOCK_BYTES", 4096)
    text = "merge_method: slerp\nbase_model: {a}\nmodels: [{{model: {a}}}, {{model: {b}}}]\nparameters: {{t: 0.3}}\n"
    plan = plan_for(text, a=llama_base, b=other_model)
    embedding = next(task for task in plan.tasks if task.name == "model.embed_tokens.weight")
    assert len(tensor_merge._row_blocks(plan, embedding)) == 8

    out = weights(merge(tmp_path, text, a=llama_base, b=other_model))
    base, far = weights(llama_base), weights(other_model)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        assert np.allclose(out[name], numpy_slerp(0.3, base[name], far[name]), atol=1e-6), name


@pytest.mark.parametrize(
    "text",
    [
        "merge_method: slerp\nbase_model: {a}\nmodels: [{{model: {a}}}, {{model: {b}}}]\nparameters: {{t: 0.3}}\n",
        "merge_method: ties\nbase_model: {a}\nmodels: [{{model: {b}, parameters: {{weight: 1, density: 0.4}}}}, "
        "{{model: {c}, parameters: {{weight: 0.5, density: 0.7}}}}]\n",
        "merge_method: sce\nbase_model: {a}\nmodels: [{{model: {b}}}, {{model: {c}}}]\n"
        "parameters: {{select_topk: 0.3}}\n",
        "merge_method: model_stock\nbase_model: {a}\nmodels: [{{model: {b}}}, {{model: {c}}}]\n",
        "merge_method: arcee_fusion\nbase_model: {a}\nmodels: [{{model: {b}}}]\n",
    ],
)
def test_blocks_kept_from_the_first_pass_give_the_bytes_of_blocks_read_again(
    tmp_path, monkeypatch, llama_base, llama_finetune, llama_reordered, text
) -> None:
    """A block merger keeps its first pass's blocks when they fit: each byte is read once, the output unchanged."""
    from tui_merge.engine import tensor_merge

    models = {"a": llama_base, "b": llama_finetune, "c": llama_reordered}
    monkeypatch.setattr(tensor_merge, "BLOCK_BYTES", 4096)
    summaries = {}
    for name, kept_bytes in (("read-again", 0), ("kept", 1 << 30)):
        monkeypatch.setattr(tensor_merge, "KEPT_BLOCK_BYTES", kept_bytes)
        plan = plan_for(text, **models)
        check_output(plan, tmp_path / name)
        summaries[name] = execute(plan, tmp_path / name)
    assert folder_digest(tmp_path / "kept") == folder_digest(tmp_path / "read-again")
    inputs_bytes = sum(ref.entry.nbytes for task in plan.tasks for ref in (*task.inputs, *filter(None, [task.base])))
    assert summaries["kept"].bytes_read == inputs_bytes < summaries["read-again"].bytes_read
