"""Multi-stage recipes (mergekit-multi's format) run by ``tui-merge run``: stage by stage, kept, resumed, refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from safetensors.torch import load_file

from tui_merge.cli import main


def slerp_stage(base: Path, tuned: Path, name: str | None = "first") -> str:
    named = f"name: {name}\n" if name else ""
    return (f"{named}merge_method: slerp\nbase_model: {base}\nmodels:\n  - model: {base}\n  - model: {tuned}\n"
            "parameters:\n  t: 0.3\n")  # fmt: skip


def linear_of(first: str, other: Path) -> str:
    return (f"merge_method: linear\nmodels:\n  - model: {first}\n    parameters:\n      weight: 0.5\n"
            f"  - model: {other}\n    parameters:\n      weight: 0.5\n")  # fmt: skip


@pytest.fixture()
def recipe(tmp_path, llama_base, llama_finetune, llama_second_finetune) -> Path:
    path = tmp_path / "multi.yaml"
    path.write_text(slerp_stage(llama_base, llama_finetune) + "---\n" + linear_of("first", llama_second_finetune))
    return path


def test_two_stages_equal_the_two_merges_run_by_hand(
    capsys, tmp_path, recipe, llama_base, llama_finetune, llama_second_finetune
) -> None:
    assert main(["run", str(recipe), str(tmp_path / "out")]) == 0

    (tmp_path / "one.yaml").write_text(slerp_stage(llama_base, llama_finetune, name=None))
    assert main(["run", str(tmp_path / "one.yaml"), str(tmp_path / "one")]) == 0
    (tmp_path / "two.yaml").write_text(linear_of(str(tmp_path / "one"), llama_second_finetune))
    assert main(["run", str(tmp_path / "two.yaml"), str(tmp_path / "two")]) == 0
    shard = "model.safetensors"
    assert (tmp_path / "out.stages" / "first" / shard).read_bytes() == (tmp_path / "one" / shard).read_bytes()
    assert (tmp_path / "out" / shard).read_bytes() == (tmp_path / "two" / shard).read_bytes()


def test_a_relative_output_never_reads_a_stage_folder_as_a_hub_id(capsys, tmp_path, recipe, monkeypatch) -> None:
    # "out.stages/first" looks like org/name before stage first has run; no stage folder may go to the Hub
    monkeypatch.chdir(tmp_path)
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: a Hub lookup would fail the run
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    assert main(["run", "multi.yaml", "out"]) == 0
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert "Hub" not in capsys.readouterr().err


def test_a_second_run_keeps_the_finished_stages_and_redoes_only_what_changed(capsys, tmp_path, recipe) -> None:
    assert main(["run", str(recipe), str(tmp_path / "out")]) == 0
    capsys.readouterr()
    first = (tmp_path / "out.stages" / "first" / "model.safetensors").stat().st_mtime_ns

    recipe.write_text(recipe.read_text().replace("weight: 0.5\n  - model", "weight: 0.25\n  - model"))
    assert main(["run", str(recipe), str(tmp_path / "out"), "--force"]) == 0

    err = capsys.readouterr().err
    assert "stage first: " in err and "already holds its merge; kept" in err
    assert "the final stage: merging into" in err
    assert (tmp_path / "out.stages" / "first" / "model.safetensors").stat().st_mtime_ns == first


def test_one_stage_runs_alone_with_stage(capsys, tmp_path, recipe) -> None:
    assert main(["run", str(recipe), str(tmp_path / "out"), "--stage", "first"]) == 0

    assert (tmp_path / "out.stages" / "first" / "model.safetensors").is_file()
    assert not (tmp_path / "out").exists()


def test_an_interrupted_second_stage_resumes_alone(capsys, tmp_path, recipe, monkeypatch) -> None:
    from tui_merge.engine import executor
    from tui_merge.engine.events import ShardWritten

    real = executor.execute

    def stopped_in_stage_two(plan, output, **kwargs):
        if output.name != "out":
            return real(plan, output, **kwargs)
        on_event = kwargs.pop("on_event")

        def event(happened):
            on_event(happened)
            if isinstance(happened, ShardWritten):
                raise KeyboardInterrupt

        return real(plan, output, on_event=event, **kwargs)

    monkeypatch.setattr(executor, "execute", stopped_in_stage_two)
    recipe.write_text(recipe.read_text() + "tui_merge:\n  shard_size: 100KB\n")
    assert main(["run", str(recipe), str(tmp_path / "out")]) == 130
    assert (tmp_path / "out.partial").is_dir() and not (tmp_path / "out").exists()
    first = (tmp_path / "out.stages" / "first" / "model.safetensors").stat().st_mtime_ns
    monkeypatch.setattr(executor, "execute", real)
    capsys.readouterr()

    assert main(["run", str(recipe), str(tmp_path / "out"), "--resume"]) == 0

    err = capsys.readouterr().err
    assert "already holds its merge; kept" in err and "resum" in err.lower()
    assert (tmp_path / "out.stages" / "first" / "model.safetensors").stat().st_mtime_ns == first
    assert load_file(tmp_path / "out" / "model-00002-of-00002.safetensors")  # the stage's second shard, resumed


@pytest.mark.parametrize(
    ("documents", "expected"),
    [
        (["name: a\n{a_body}", "name: a\n{a_body}", "{final}"], "multi.yaml:{line}: stage a is named twice"),
        (["name: a\n{uses_b}", "name: b\n{uses_a}", "{final}"], "the stages use one another in a circle (a -> b -> a)"),
        (
            ["name: first\n{a_body}", "{uses_frist}"],
            "the final stage uses frist, which is neither a folder here nor a stage of this recipe; did you mean "
            "stage 'first'?",
        ),
        (["name: a\n{a_body}", "{uses_frist}"], "Model folder frist does not exist."),
        (["{a_body}", "{final}"], "a second document without a name"),
    ],
)
def test_bad_recipes_are_refused_with_the_stage_and_line(
    capsys, tmp_path, llama_base, llama_finetune, documents, expected
) -> None:
    bodies = {
        "a_body": slerp_stage(llama_base, llama_finetune, name=None),
        "final": linear_of("a", llama_finetune),
        "uses_a": linear_of("a", llama_finetune),
        "uses_b": linear_of("b", llama_finetune),
        "uses_frist": linear_of("frist", llama_finetune),
    }
    text = "---\n".join(document.format(**bodies) for document in documents)
    (tmp_path / "multi.yaml").write_text(text)
    line = text.splitlines().index("name: a", 1) + 1 if "named twice" in expected else 0

    assert main(["run", str(tmp_path / "multi.yaml"), str(tmp_path / "out")]) == 2

    assert expected.format(line=line) in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["multi.yaml"]


def test_export_strips_each_stages_block_and_keeps_the_stages(capsys, tmp_path, recipe) -> None:
    text = recipe.read_text().replace("---\n", "tui_merge:\n  seed: 3\n---\n# the final merge\n")
    recipe.write_text(text)

    assert main(["export", "--mergekit", str(recipe)]) == 0

    exported = capsys.readouterr().out
    assert "tui_merge" not in exported and exported.count("\n---\n") == 1
    assert exported.startswith("name: first\n") and "# the final merge\nmerge_method: linear" in exported


def test_template_writes_stages_of_a_recipe_and_refuses_a_name_twice(capsys, tmp_path, llama_base, llama_finetune):
    recipe = tmp_path / "multi.yaml"
    for name, method in (("first", "slerp"), ("second", "linear")):
        assert main(["template", str(llama_base), str(llama_finetune), "--method", method, "-o", str(recipe),
                     "--stage", name]) == 0  # fmt: skip
    written = recipe.read_text()

    assert written.count("\n---\n") == 1 and "name: first\nmerge_method: slerp" in written
    assert main(["run", str(recipe), str(tmp_path / "out"), "--dry-run"]) == 0
    assert "stage first -> " in capsys.readouterr().err
    assert main(["template", str(llama_base), str(llama_finetune), "-o", str(recipe), "--stage", "first"]) == 2
    assert "has a stage first already" in capsys.readouterr().err and recipe.read_text() == written


def test_stages_that_cannot_all_fit_are_refused_before_the_first_merge(capsys, tmp_path, recipe, monkeypatch) -> None:
    import shutil
    from collections import namedtuple

    model_bytes = (recipe.parent / "multi.yaml").stat().st_size  # any small figure: the stages need far more
    usage = namedtuple("usage", "total used free")(1 << 40, 1 << 40, model_bytes)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage)

    assert main(["run", str(recipe), str(tmp_path / "out")]) == 2

    assert "The stages still to run need about" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["multi.yaml"]


def test_a_recipe_is_written_whole_or_not_at_all(tmp_path, monkeypatch) -> None:
    from tui_merge.tools import stages

    recipe = tmp_path / "multi.yaml"
    recipe.write_text("name: first\nmerge_method: linear\n")
    before = recipe.stat().st_mode & 0o777

    def disk_full(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(stages.os, "fsync", disk_full)
    with pytest.raises(OSError):
        stages.write_recipe(recipe, "name: second\n")
    assert recipe.read_text() == "name: first\nmerge_method: linear\n"
    assert [path.name for path in tmp_path.iterdir()] == ["multi.yaml"]  # no temporary file left
    monkeypatch.undo()
    stages.write_recipe(recipe, "name: second\n")
    assert recipe.read_text() == "name: second\n" and recipe.stat().st_mode & 0o777 == before
