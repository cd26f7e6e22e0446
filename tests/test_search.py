"""``tui-merge search``: Optuna finds a known optimum, a Pareto front is the non-dominated trials, a killed search
resumes redoing only the killed trial, and bad spaces and objectives are refused or fail only their trial."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from tui_merge.cli import main

# The objective reads t back from the trial's saved recipe: a scalar, or a list of anchors (each scored).
OBJECTIVE = textwrap.dedent("""\
    import sys, yaml
    t = yaml.safe_load(open(sys.argv[1]))["parameters"]["t"]
    values = t if isinstance(t, list) else [t]
    print(sum((value - 0.3) ** 2 for value in values))
""")


@pytest.fixture()
def recipe(tmp_path, llama_base, llama_finetune) -> Path:
    path = tmp_path / "slerp.yaml"
    path.write_text(f"merge_method: slerp\nbase_model: {llama_base}\nmodels:\n  - model: {llama_base}\n"
                    f"  - model: {llama_finetune}\nparameters:\n  t: 0.5\ndtype: float32\n")  # fmt: skip
    (tmp_path / "score.py").write_text(OBJECTIVE)
    return path


def command(tmp_path: Path, script: str = "score.py") -> str:
    return f"command:{sys.executable} {tmp_path / script} $RECIPE"


def trials_folder(tmp_path: Path) -> Path:
    """The one study's trials folder in ``slerp.search.trials`` (a folder per study, named as the study)."""
    (folder,) = (tmp_path / "slerp.search.trials").iterdir()
    assert folder.name.startswith("search-")
    return folder


def trial_values(tmp_path: Path, folder: Path | None = None) -> dict[int, object]:
    """Each saved trial recipe's t, by trial number."""
    folder = folder or trials_folder(tmp_path)
    return {int(re.search(r"\d+", path.name)[0]): yaml.safe_load(path.read_text())["parameters"]["t"]
            for path in folder.glob("trial-*.yaml")}  # fmt: skip


def reported_best(out: str) -> list[int]:
    found = re.search(r"the best trial is trial (\d+)", out)
    if found:
        return [int(found[1])]
    return json.loads(re.search(r"the Pareto front: trials (\[[\d, ]+\])", " ".join(out.split()))[1])


def loss(t: object) -> float:
    values = t if isinstance(t, list) else [t]
    return sum((value - 0.3) ** 2 for value in values)


@pytest.mark.parametrize(
    ("sampler", "space", "trials", "tolerance"),
    [
        ("tpe", "t=0..1", 12, 0.1),
        ("random", "t=0..1", 12, 0.1),
        ("grid", "t=0..1", None, 0.25 / 2),  # five points 0.25 apart: the nearest is at most half a step away
        ("cmaes", "t=0..1@2", 16, 0.15),  # two anchors: CMA-ES needs two dimensions or more
    ],
)
def test_each_sampler_finds_the_optimum_of_a_known_objective(
    capsys, tmp_path, recipe, sampler, space, trials, tolerance
) -> None:
    args = ["search", str(recipe), "--space", space, "--objective", command(tmp_path), "--sampler", sampler,
            "-o", str(tmp_path / "best.yaml")]  # fmt: skip
    assert main(args + (["--trials", str(trials)] if trials else [])) == 0
    out = capsys.readouterr().out
    values = trial_values(tmp_path)
    assert len(values) == (trials or 5)
    best = min(values, key=lambda number: (loss(values[number]), number))  # computed here, from the recipes
    assert reported_best(out) == [best]
    best_t = values[best]
    assert all(abs(value - 0.3) <= tolerance for value in (best_t if isinstance(best_t, list) else [best_t]))
    assert yaml.safe_load((tmp_path / "best.yaml").read_text())["parameters"]["t"] == best_t
    # the best recipe replays: it is an ordinary merge config
    assert main(["run", str(tmp_path / "best.yaml"), str(tmp_path / "replayed")]) == 0


def test_a_second_run_of_the_same_command_merges_nothing_again(capsys, tmp_path, recipe) -> None:
    args = ["search", str(recipe), "--space", "t=0..1", "--objective", command(tmp_path), "--trials", "3"]
    assert main(args) == 0
    first = trial_values(tmp_path)
    capsys.readouterr()
    assert main(args) == 0
    assert trial_values(tmp_path) == first
    assert "trial 0:" not in capsys.readouterr().err  # no trial ran again
    assert main([*args[:-1], "5"]) == 0  # more trials: only the new ones run
    assert len(trial_values(tmp_path)) == 5 and {n: trial_values(tmp_path)[n] for n in first} == first


def test_two_objectives_give_exactly_the_non_dominated_trials(capsys, tmp_path, recipe) -> None:
    (tmp_path / "wave.py").write_text(
        textwrap.dedent("""\
        import math, sys, yaml
        t = yaml.safe_load(open(sys.argv[1]))["parameters"]["t"]
        print(math.sin(7 * t) + t)
    """)
    )
    args = ["search", str(recipe), "--space", "t=0..1", "--objective", command(tmp_path),
            "--objective", "max:" + command(tmp_path, "wave.py"), "--sampler", "random", "--trials", "12"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    values = trial_values(tmp_path)
    points = {number: (loss(t), math.sin(7 * t) + t) for number, t in values.items()}

    def dominated(number: int) -> bool:
        low, high = points[number]
        return any(other_low <= low and other_high >= high and (other_low, other_high) != (low, high)
                   for other, (other_low, other_high) in points.items() if other != number)  # fmt: skip

    front = sorted(number for number in points if not dominated(number))
    assert reported_best(out) == front and 1 < len(front) < len(points)
    assert (tmp_path / "slerp.search.pareto.svg").read_text().startswith("<svg")


def test_a_killed_search_resumes_redoing_only_the_killed_trial(tmp_path, recipe) -> None:
    # The objective logs each t it scores; on its third call it stops for good, as a trial caught by a crash.
    (tmp_path / "stall.py").write_text(
        textwrap.dedent(f"""\
        import pathlib, sys, time, yaml
        t = yaml.safe_load(open(sys.argv[1]))["parameters"]["t"]
        log = pathlib.Path({str(tmp_path / "calls.log")!r})
        calls = log.read_text().splitlines() if log.exists() else []
        log.write_text("".join(line + "\\n" for line in calls + [repr(t)]))
        if len(calls) == 2 and not pathlib.Path({str(tmp_path / "stalled")!r}).exists():
            pathlib.Path({str(tmp_path / "stalled")!r}).write_text("")
            time.sleep(600)
        print((t - 0.3) ** 2)
    """)
    )
    search = [sys.executable, "-m", "tui_merge", "search", str(recipe), "--space", "t=0..1", "--objective",
              command(tmp_path, "stall.py"), "--trials", "5"]  # fmt: skip
    process = subprocess.Popen(search, cwd=tmp_path, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not (tmp_path / "stalled").exists():
            assert process.poll() is None and time.monotonic() < deadline, "the search never reached trial 2"
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the search, its worker and the objective: a crash
        process.wait()
    killed = (tmp_path / "calls.log").read_text().splitlines()
    assert len(killed) == 3

    done = subprocess.run(search, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert calls[:3] == killed
    assert calls[3] == killed[2]  # the killed trial first, with its values
    assert len(calls) == 3 + 1 + 2  # then the two trials still missing; trials 0 and 1 never again
    assert calls.count(killed[0]) == 1 and calls.count(killed[1]) == 1
    assert "was interrupted; it runs again" in done.stderr
    assert not list(trials_folder(tmp_path).glob("*.partial"))


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ("t=0..2", "t must be between 0 and 1"),
        ("lambda=0..1", "slerp has no parameter lambda"),
        ("t", "write it as NAME=LO..HI"),
        ("t=1..0", "low end must be below"),
        ("models[5].weight=0..1", "the config has 2 models"),
        ("t=0..1@1", "at least 2 anchors"),
    ],
)
def test_a_bad_space_is_refused_before_the_first_merge(capsys, tmp_path, recipe, space, message) -> None:
    assert main(["search", str(recipe), "--space", space, "--objective", command(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "slerp.search.db").exists() and not (tmp_path / "slerp.search.trials").exists()


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        ("command:no-such-scorer --x", "no-such-scorer is not a program here"),
        ("command:", "write the command after 'command:'"),
        ("accuracy", "say perplexity, perplexity:FILE or command"),
        ("perplexity:missing.txt", "missing.txt"),
    ],
)
def test_a_bad_objective_is_refused_before_the_first_merge(capsys, tmp_path, recipe, objective, message) -> None:
    assert main(["search", str(recipe), "--space", "t=0..1", "--objective", objective]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "slerp.search.db").exists()


def test_a_trial_whose_objective_prints_no_number_fails_alone_and_the_search_goes_on(capsys, tmp_path, recipe):
    (tmp_path / "picky.py").write_text(
        textwrap.dedent("""\
        import sys, yaml
        t = yaml.safe_load(open(sys.argv[1]))["parameters"]["t"]
        if t > 0.5:
            print("no score for this one", file=sys.stderr)
            print("n/a")
        else:
            print(t)
    """)
    )
    args = ["search", str(recipe), "--space", "t=0..1", "--objective", command(tmp_path, "picky.py"),
            "--sampler", "random", "--trials", "6"]  # fmt: skip
    assert main(args) == 0
    captured = capsys.readouterr()
    values = trial_values(tmp_path)
    assert len(values) == 6 and any(t > 0.5 for t in values.values()) and any(t <= 0.5 for t in values.values())
    assert "printed no number on its last line (it printed 'n/a'): no score for this one" in captured.err
    best = min((number for number, t in values.items() if t <= 0.5), key=lambda number: values[number])
    assert reported_best(captured.out) == [best]


def test_keep_best_keeps_only_the_best_trials_merges(capsys, tmp_path, recipe) -> None:
    args = ["search", str(recipe), "--space", "t=0..1", "--objective", command(tmp_path), "--sampler", "random",
            "--trials", "4", "--keep-best", "2"]  # fmt: skip
    assert main(args) == 0
    values = trial_values(tmp_path)
    ranked = sorted(values, key=lambda number: (loss(values[number]), number))
    kept = sorted(path.name for path in trials_folder(tmp_path).iterdir() if path.is_dir())
    assert kept == sorted(f"trial-{number}" for number in ranked[:2])
    for name in kept:  # a whole merge, ready to use
        assert (trials_folder(tmp_path) / name / "model.safetensors").is_file()
    assert "kept merges:" in capsys.readouterr().out


def test_two_studies_in_one_study_file_keep_their_own_trials_and_merges(capsys, tmp_path, recipe) -> None:
    first = ["search", str(recipe), "--space", "t=0..1", "--objective", command(tmp_path), "--sampler", "random",
             "--trials", "2", "--keep-best", "1"]  # fmt: skip
    assert main(first) == 0
    (first_folder,) = (tmp_path / "slerp.search.trials").iterdir()
    first_recipes = {path.name: path.read_text() for path in first_folder.glob("trial-*.yaml")}
    (first_kept,) = (path for path in first_folder.iterdir() if path.is_dir())

    second = ["search", str(recipe), "--space", "t=0.2,0.4", "--objective", command(tmp_path), "--sampler", "grid",
              "--keep-best", "1"]  # fmt: skip
    assert main(second) == 0

    folders = sorted((tmp_path / "slerp.search.trials").iterdir())
    assert len(folders) == 2 and first_folder in folders
    assert {path.name: path.read_text() for path in first_folder.glob("trial-*.yaml")} == first_recipes
    assert (first_kept / "model.safetensors").is_file()
    (second_folder,) = (folder for folder in folders if folder != first_folder)
    assert sorted(trial_values(tmp_path, second_folder).values()) == [0.2, 0.4]
    assert len([path for path in second_folder.iterdir() if path.is_dir()]) == 1
