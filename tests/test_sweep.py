"""``tui-merge sweep``: candidates ranked by perplexities computed here with transformers, replayable, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_compare import transformers_perplexity

from tui_merge.cli import main
from tui_merge.evaluation.sample_text import SAMPLE_TEXT


@pytest.fixture(scope="module")
def tuned_with_tokenizer(factory) -> Path:
    return factory.llama("llama-finetune-tok", finetune_seed=9, tokenizer=True)


@pytest.fixture()
def slerp(tmp_path, llama_base, tuned_with_tokenizer) -> Path:
    config = tmp_path / "slerp.yaml"
    config.write_text(
        f"# the sweep keeps this config's models\nmerge_method: slerp\nbase_model: {llama_base}\n"
        f"models: [{{model: {llama_base}}}, {{model: {tuned_with_tokenizer}}}]\nparameters: {{t: 0.5}}\n"
    )
    return config


def sweep_folder(config: Path) -> Path:
    (folder,) = config.with_suffix(".sweep").iterdir()
    return folder


def test_candidates_are_ranked_by_their_perplexity_and_the_best_replays_to_its_bytes(capsys, tmp_path, slerp):
    best = tmp_path / "best.yaml"
    assert main(["sweep", str(slerp), "--vary", "t=0,0.5,1", "--keep", "-o", str(best)]) == 0
    out = capsys.readouterr().out

    folder = sweep_folder(slerp)
    scores = {index: transformers_perplexity(folder / f"candidate-{index}", SAMPLE_TEXT)[0] for index in (1, 2, 3)}
    ranked = sorted(scores, key=scores.get)
    rows = [line.split() for line in out.splitlines() if line.rstrip().endswith(".yaml") and len(line.split()) == 4]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert [float(row[2]) for row in rows] == pytest.approx([scores[index] for index in ranked], abs=1e-3)
    assert [row[3] for row in rows] == [f"candidate-{index}.yaml" for index in ranked]
    assert f"candidateconfigsin{folder}" in "".join(out.split())  # the path may wrap anywhere
    assert yaml.safe_load((folder / f"candidate-{ranked[0]}.yaml").read_text())["parameters"]["t"] == float(rows[0][1])
    assert best.read_text() == (folder / f"candidate-{ranked[0]}.yaml").read_text()
    assert main(["run", str(best), str(tmp_path / "replayed")]) == 0
    shard = "model.safetensors"
    assert (tmp_path / "replayed" / shard).read_bytes() == (folder / f"candidate-{ranked[0]}" / shard).read_bytes()


def test_an_interrupted_sweep_continues_with_the_next_candidate(capsys, monkeypatch, slerp) -> None:
    from tui_merge.evaluation import scoring

    merges: list[str] = []
    real_run_job = __import__("tui_merge.engine.job", fromlist=["run_job"]).run_job

    def counting_run_job(job, **kwargs):
        merges.append(job.output.name)
        return real_run_job(job, **kwargs)

    monkeypatch.setattr("tui_merge.engine.job.run_job", counting_run_job)
    real_score = scoring.score_models

    def interrupt_second(models, *args, **kwargs):
        if models[0].endswith("candidate-2"):
            raise KeyboardInterrupt
        return real_score(models, *args, **kwargs)

    monkeypatch.setattr(scoring, "score_models", interrupt_second)
    assert main(["sweep", str(slerp), "--vary", "t=0.25,0.75,1"]) == 130
    assert merges == ["candidate-1", "candidate-2"]
    folder = sweep_folder(slerp)
    assert [json.loads(line).get("candidate") for line in (folder / "sweep.jsonl").read_text().splitlines()] == [
        None,
        1,
    ]

    monkeypatch.setattr(scoring, "score_models", real_score)
    capsys.readouterr()
    assert main(["sweep", str(slerp), "--vary", "t=0.25,0.75,1"]) == 0
    assert merges[2:] == ["candidate-2", "candidate-3"]  # the first is not merged again
    assert not list(folder.glob("candidate-?/"))  # merged folders go once scored
    assert len(sorted(folder.glob("candidate-*.yaml"))) == 3


def test_gradient_values_and_a_models_own_parameter(capsys, tmp_path, llama_base, tuned_with_tokenizer) -> None:
    config = tmp_path / "ties.yaml"
    config.write_text(
        f"merge_method: ties\nbase_model: {llama_base}\n"
        f"models: [{{model: {tuned_with_tokenizer}, parameters: {{density: 0.5, weight: 1}}}}]\n"
    )
    assert main(["sweep", str(config), "--vary", "models[0].density=[0.2,0.8],0.6", "--vary", "lambda=1,0.5"]) == 0

    folder = sweep_folder(config)
    made = [yaml.safe_load((folder / f"candidate-{index}.yaml").read_text()) for index in range(1, 5)]
    assert [(entry["models"][0]["parameters"]["density"], entry["parameters"]["lambda"]) for entry in made] == [
        ([0.2, 0.8], 1), ([0.2, 0.8], 0.5), (0.6, 1), (0.6, 0.5),
    ]  # fmt: skip
    assert "perplexity over models[0].density x lambda, in the order given:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("vary", "expected"),
    [
        ("tt=0.3", "--vary tt=0.3: parameters.tt: slerp has no parameter 'tt'; did you mean 't'?"),
        ("t=0.5,1.5", "--vary t=1.5: parameters.t must be between 0 and 1, got 1.5. No merge was started."),
        ("t=", "--vary t: give at least one value after '='"),
        ("models[5].weight=1", "--vary models[5].weight: the config has 2 models"),
        ("t", "write it as NAME=V1,V2,..."),
    ],
)
def test_bad_variations_are_refused_before_the_first_merge(capsys, slerp, vary, expected) -> None:
    assert main(["sweep", str(slerp), "--vary", vary]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
    assert not slerp.with_suffix(".sweep").exists()


def test_a_global_value_that_every_model_overrides_is_refused(capsys, tmp_path, llama_base, tuned_with_tokenizer):
    config = tmp_path / "ties.yaml"
    config.write_text(
        f"merge_method: ties\nbase_model: {llama_base}\n"
        f"models: [{{model: {tuned_with_tokenizer}, parameters: {{density: 0.5, weight: 1}}}}]\n"
    )

    assert main(["sweep", str(config), "--vary", "density=0.3,0.6"]) == 2
    assert "set density themselves, so the global value would change nothing; vary models[I].density" in (
        capsys.readouterr().err
    )


def test_a_candidate_is_the_template_with_only_the_swept_values_changed(tmp_path, llama_base, tuned_with_tokenizer):
    """``sweep -o best.yaml`` keeps what a person wrote: the template's comments and its line per layer."""
    from tui_merge.config.loading import load_config
    from tui_merge.search.sweep import candidates, parse_variation

    template = tmp_path / "merge.yaml"
    assert main(["template", str(llama_base), str(tuned_with_tokenizer), "--method", "ties", "-o", str(template)]) == 0
    loaded = load_config(template)
    variations = [parse_variation("models[1].density=0.3", loaded), parse_variation("lambda=0.5", loaded)]

    (candidate,) = candidates(loaded, variations)

    before, after = template.read_text().splitlines(), candidate.text.splitlines()
    assert after[0] == "# sweep candidate 1: models[1].density=0.3, lambda=0.5"
    assert [line for line in after[1:] if line not in before] == [
        "      density: 0.3",
        "  lambda: 0.5  # scale of the merged task vector added to the base",
    ]
    assert len(after) == len(before) + 1
    data = yaml.safe_load(candidate.text)
    assert data["models"][1]["parameters"]["density"] == 0.3 and data["parameters"]["lambda"] == 0.5
