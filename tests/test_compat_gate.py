"""Headless runs refuse what the analysis refuses: the compatibility gate in the one merge job."""

from __future__ import annotations

from pathlib import Path

from conftest import folder_digest

from tui_merge.cli import main


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def nothing_written(out: Path) -> bool:
    return not out.exists() and not out.with_name(out.name + ".partial").exists()


def test_models_of_different_depth_are_refused_even_with_allow_crimes(capsys, tmp_path, llama_base, llama_deeper):
    recipe = write(
        tmp_path / "m.yaml", f"merge_method: linear\nmodels:\n  - model: {llama_base}\n  - model: {llama_deeper}\n"
    )
    before = folder_digest(llama_deeper)
    for extra in ([], ["--allow-crimes"]):
        assert main(["run", str(recipe), str(tmp_path / "out"), *extra]) == 2
        err = capsys.readouterr().err
        assert f"{recipe}: cannot merge: Depths differ" in err and "only layer stacking" in err
        assert "--allow-crimes" not in err and nothing_written(tmp_path / "out")
    assert main(["run", str(recipe), "--dry-run"]) == 2  # a dry run refuses what the merge would
    assert folder_digest(llama_deeper) == before


def test_unrelated_models_need_allow_crimes_and_are_then_a_warning_in_the_log_and_the_card(
    capsys, tmp_path, llama_base, llama_unrelated
) -> None:
    recipe = write(
        tmp_path / "m.yaml", f"merge_method: linear\nmodels:\n  - model: {llama_base}\n  - model: {llama_unrelated}\n"
    )
    assert main(["run", str(recipe), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "do not share a base" in err and "Pass --allow-crimes to merge them anyway." in err
    assert nothing_written(tmp_path / "out")

    assert main(["run", str(recipe), str(tmp_path / "out"), "--allow-crimes"]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: ") == 1 and "do not share a base" in err and "Merged anyway (--allow-crimes)." in err
    card = (tmp_path / "out" / "README.md").read_text()
    assert "Warnings found before merging:" in card and "do not share a base" in card


def test_the_one_off_commands_pass_the_same_gate(capsys, tmp_path, llama_base, llama_unrelated) -> None:
    argv = ["blockmerge", "--model_path1", str(llama_base), "--model_path2", str(llama_unrelated),
            "--gradient_values", "[1, 0]", "--output_model_path", str(tmp_path / "out")]  # fmt: skip
    assert main(argv) == 2
    assert "do not share a base" in capsys.readouterr().err and nothing_written(tmp_path / "out")
    assert main([*argv, "--allow-crimes"]) == 0


def test_warnings_print_one_line_each_and_go_into_the_model_card(capsys, tmp_path, llama_base, llama_vocab_plus):
    recipe = write(
        tmp_path / "m.yaml",
        f"merge_method: linear\nmodels:\n  - model: {llama_base}\n  - model: {llama_vocab_plus}\n"
        "tui_merge: {vocab: pad}\n",
    )
    assert main(["run", str(recipe), str(tmp_path / "out")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning: " in line]
    assert len(warnings) == 1 and "Vocabulary sizes differ" in warnings[0]
    assert "Vocabulary sizes differ" in (tmp_path / "out" / "README.md").read_text()


def test_some_models_weighted_and_another_not_is_refused_and_none_weighted_is_said(
    capsys, tmp_path, llama_base, llama_finetune
) -> None:
    mixed = write(
        tmp_path / "mixed.yaml",
        f"merge_method: linear\nmodels:\n  - model: {llama_base}\n    parameters: {{weight: 0.7}}\n"
        f"  - model: {llama_finetune}\n",
    )
    assert main(["run", str(mixed), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"mixed.yaml:5: models[1]: {llama_finetune} has no weight while {llama_base} has one" in err
    assert nothing_written(tmp_path / "out")

    none = write(
        tmp_path / "none.yaml", f"merge_method: linear\nmodels:\n  - model: {llama_base}\n  - model: {llama_finetune}\n"
    )
    assert main(["run", str(none), str(tmp_path / "out")]) == 0
    assert "no model gives a weight: 2 models merged with equal weights" in capsys.readouterr().err

    based = write(
        tmp_path / "based.yaml",
        f"merge_method: task_arithmetic\nbase_model: {llama_base}\nmodels:\n  - model: {llama_base}\n"
        f"  - model: {llama_finetune}\n    parameters: {{weight: 0.5}}\n",
    )
    assert main(["run", str(based), str(tmp_path / "out2")]) == 0  # the base needs no weight of its own


# --- output paths -------------------------------------------------------------------------------


def linear(tmp_path: Path, a: Path, b: Path) -> Path:
    return write(tmp_path / "m.yaml", f"merge_method: linear\nmodels:\n  - model: {a}\n  - model: {b}\n")


def test_an_output_that_is_a_file_is_refused_even_with_force(capsys, tmp_path, llama_base, llama_finetune):
    (tmp_path / "out").write_text("my notes")
    for extra in ([], ["--force"]):
        assert main(["run", str(linear(tmp_path, llama_base, llama_finetune)), str(tmp_path / "out"), *extra]) == 2
        assert "is a file, not a folder; --force replaces a model folder, never a file" in capsys.readouterr().err
    assert (tmp_path / "out").read_text() == "my notes"


def test_an_empty_output_name_is_refused(capsys, tmp_path, llama_base, llama_finetune) -> None:
    assert main(["run", str(linear(tmp_path, llama_base, llama_finetune)), "-o", ""]) == 2
    assert "No output folder given" in capsys.readouterr().err


def test_a_second_merge_into_the_same_output_is_refused_naming_the_first(
    capsys, tmp_path, llama_base, llama_finetune
) -> None:
    import os

    from tui_merge.engine.lock import OutputLock

    partial = tmp_path / "out.partial"
    partial.mkdir()
    running = OutputLock(tmp_path / "out")
    running.acquire()  # as a merge in progress holds it
    try:
        for extra in ([], ["--resume"], ["--force"]):
            assert main(["run", str(linear(tmp_path, llama_base, llama_finetune)), str(tmp_path / "out"), *extra]) == 2
            err = capsys.readouterr().err
            assert f"Another tui-merge run (pid {os.getpid()}) is writing {tmp_path / 'out'}" in err
        assert list(partial.iterdir()) == []
    finally:
        running.release()
    assert main(["run", str(linear(tmp_path, llama_base, llama_finetune)), str(tmp_path / "out")]) == 2
    assert "is left from an interrupted merge" in capsys.readouterr().err  # no lock held: a real leftover


def test_the_finished_output_carries_no_lock_and_a_leftover_replaced_folder_never_fails_a_merge(
    tmp_path, llama_base, llama_finetune
) -> None:
    recipe = linear(tmp_path, llama_base, llama_finetune)
    assert main(["run", str(recipe), str(tmp_path / "out")]) == 0
    assert not (tmp_path / "out" / ".tui_merge.lock").exists() and not (tmp_path / ".out.tui-merge.lock").exists()
    (tmp_path / "out.replaced").mkdir()
    (tmp_path / "out.replaced" / "old.txt").write_text("from a crash while replacing")
    assert main(["run", str(recipe), str(tmp_path / "out"), "--force"]) == 0
    assert (tmp_path / "out.replaced" / "old.txt").exists() and not (tmp_path / "out.replaced-2").exists()


def test_a_failure_while_moving_the_finished_merge_into_place_says_where_the_model_is(
    capsys, tmp_path, monkeypatch, llama_base, llama_finetune
) -> None:
    from tui_merge.engine import writer

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("the model being replaced")
    (tmp_path / "out" / "tui_merge_config.yaml").write_text("an earlier merge")
    monkeypatch.setattr(writer, "replaced_path", lambda output: tmp_path / "missing" / "out.replaced")
    recipe = linear(tmp_path, llama_base, llama_finetune)
    assert main(["run", str(recipe), str(tmp_path / "out"), "--force"]) == 1
    err = capsys.readouterr().err
    assert "while moving the finished merge into place; the complete model is in" in err and "--resume" not in err
    assert (tmp_path / "out.partial" / "model.safetensors").exists()
    assert (tmp_path / "out" / "old.txt").exists()


# --- import-recipe ------------------------------------------------------------------------------

CARD = "# A merge\n\n```yaml\nmerge_method: linear\nmodels:\n  - model: a\n  - model: b\n```\n"


def test_import_recipe_never_overwrites_its_card_nor_writes_over_a_folder(capsys, tmp_path) -> None:
    card = write(tmp_path / "README.md", CARD)
    assert main(["import-recipe", str(card), "-o", str(card), "--force"]) == 2
    assert "is the model card being imported" in capsys.readouterr().err and card.read_text() == CARD
    (tmp_path / "folder").mkdir()
    assert main(["import-recipe", str(card), "-o", str(tmp_path / "folder")]) == 2
    assert "is a folder; name the config file to write" in capsys.readouterr().err


def test_import_recipe_refuses_a_recipe_whose_fence_is_never_closed(capsys, tmp_path) -> None:
    card = write(tmp_path / "README.md", CARD.removesuffix("```\n"))
    assert main(["import-recipe", str(card), "-o", str(tmp_path / "m.yaml")]) == 2
    assert "README.md:3: the fenced block holding the recipe is never closed" in capsys.readouterr().err
    assert not (tmp_path / "m.yaml").exists()


def test_a_reader_that_goes_away_ends_the_command_quietly(capsys, monkeypatch, workdir) -> None:
    """``tui-merge template ... | head -0``: stdout is a pipe whose reader has gone. (Tables drawn with rich
    end the same way through rich's own handler, with status 1.)"""
    import os
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)
    gone = open(write_end, "w")  # noqa: SIM115 (closed below, after main has pointed it at /dev/null)
    monkeypatch.setattr(sys, "stdout", gone)
    try:
        assert main(["template", "base", "chat", "-o", "t.yaml"]) == 141
    finally:
        monkeypatch.undo()
        gone.close()
    assert "Traceback" not in capsys.readouterr().err


def _retyped_copies(tmp_path: Path, sources: list[Path], edit) -> list[Path]:
    import json
    import shutil

    copies = []
    for source in sources:
        target = tmp_path / source.name
        shutil.copytree(source, target)
        config = json.loads((target / "config.json").read_text())
        edit(config)
        (target / "config.json").write_text(json.dumps(config))
        copies.append(target)
    return copies


def test_a_model_type_transformers_does_not_know_merges_with_a_warning_that_it_was_not_checked(
    capsys, tmp_path, llama_base, llama_finetune
) -> None:
    def custom(config: dict) -> None:
        config.update(model_type="tiny-custom", architectures=["TinyCustomForCausalLM"])

    base, tune = _retyped_copies(tmp_path, [llama_base, llama_finetune], custom)
    recipe = write(tmp_path / "m.yaml", f"merge_method: linear\nmodels:\n  - model: {base}\n  - model: {tune}\n")

    assert main(["run", str(recipe), str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "does not know model type 'tiny-custom', so the merged config.json was not checked" in err
    assert "not checked against the merged tensors" in (tmp_path / "out" / "README.md").read_text()


def test_tensors_transformers_has_no_place_for_are_merged_with_a_warning(
    capsys, tmp_path, llama_base, llama_finetune
) -> None:
    import torch
    from safetensors.torch import load_file, save_file

    stray = "model.layers.0.self_attn.stowaway"
    tolerated = "model.layers.0.self_attn.rotary_emb.inv_freq"  # old llama checkpoints store it; the loader skips it
    copies = _retyped_copies(tmp_path, [llama_base, llama_finetune], lambda config: None)
    for folder in copies:
        weights = load_file(folder / "model.safetensors")
        weights[stray], weights[tolerated] = torch.arange(4.0), torch.arange(4.0)
        save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    recipe = write(
        tmp_path / "m.yaml", f"merge_method: linear\nmodels:\n  - model: {copies[0]}\n  - model: {copies[1]}\n"
    )

    assert main(["run", str(recipe), str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert f"LlamaForCausalLM has no place for 1 merged tensor(s) ({stray}); transformers will skip them" in err


def test_too_little_address_space_is_one_sentence_naming_the_limit(tmp_path, llama_base, llama_finetune) -> None:
    import resource
    import subprocess
    import sys

    recipe = write(
        tmp_path / "m.yaml", f"merge_method: linear\nmodels: [{{model: {llama_base}}}, {{model: {llama_finetune}}}]\n"
    )

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (300_000 << 10, resource.RLIM_INFINITY))

    for argv in (["run", str(recipe), str(tmp_path / "out")], ["verify", str(llama_base)]):  # both need torch
        done = subprocess.run([sys.executable, "-m", "tui_merge", *argv], capture_output=True, text=True,
                              preexec_fn=limit)  # fmt: skip
        assert done.returncode == 2, done.stderr
        # The refusal ends the output; before it may come what planning found (with a remembered config check
        # the plan gets as far as its warnings before torch is needed).
        lines = done.stderr.splitlines()
        assert [line for line in lines if line.startswith("tui-merge: error:")] == lines[-1:]
        assert lines[-1] == (
            "tui-merge: error: tui-merge needs at least 1024 MiB of address space for torch and its libraries, "
            "plus the merge's working memory, but this shell allows 292 MiB (ulimit -v 300000); raise it "
            "(ulimit -v unlimited, or at least ulimit -v 1048576) and run again."
        )
        assert "Traceback" not in done.stderr
    assert nothing_written(tmp_path / "out")
