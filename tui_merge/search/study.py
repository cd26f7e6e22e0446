"""The search's study: Optuna samples, a SQLite file keeps every trial, workers merge and score.

The study file (``--study``, default ``RECIPE.search.db`` beside the recipe) may hold several studies: one per
recipe text, space, objectives and sampler (its name is their fingerprint), so the same command always finds its
own and another space never mixes with it. One search at a time drives a study file (a lock beside it). A trial
left running by a search that was killed (Ctrl-C, a crash, a reboot) is marked failed and its values are asked
again first, so it is redone; finished trials are never merged again. ``--trials N`` is the number of finished
trials the study should hold: the same command run again after it is reached does nothing but show the table.

Each trial's recipe is saved as ``trial-N.yaml`` in the study's trials folder (``RECIPE.search.trials/STUDY``:
the study file's name with ``.trials`` for ``.db``, then the study's name); ``tui-merge run trial-N.yaml OUT``
replays it to the bytes that trial merged.
Its merge goes to ``trial-N`` there and is removed once scored, unless it is among the ``--keep-best K`` best.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import math
import shutil
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tui_merge.config.editing import with_values
from tui_merge.config.loading import LoadedConfig, parse_config
from tui_merge.errors import BadInputError
from tui_merge.search.objectives import Objective
from tui_merge.search.space import Dimension, values_of
from tui_merge.search.trial import TrialJob, TrialOutcome

SAMPLERS = ("tpe", "cmaes", "random", "grid")
INTERRUPTED = "interrupted"
"""User attribute of a trial a killed search left running: it does not count as finished."""


@dataclass
class SearchSettings:
    """Everything one search needs, as the command line gave it."""

    loaded: LoadedConfig
    dimensions: list[Dimension]
    objectives: list[Objective]
    study: Path
    trials: int | None = None
    """Finished trials the study should hold; None: 20, or every point of a grid."""
    sampler: str = "tpe"
    seed: int = 0
    workers: int = 1
    keep_best: int = 0
    device: str = "auto"
    grid_steps: int = 5
    ray_address: str | None = None

    @property
    def trials_folder(self) -> Path:
        """This study's recipes and merges: a folder of its own, named as the study, in ``RECIPE.search.trials``
        beside the study file, so another study in the same file never overwrites its ``trial-N`` or removes its
        kept merges."""
        return self.study.with_suffix(".trials") / study_name(self)


@dataclass
class TrialRow:
    """A trial as the table shows it."""

    number: int
    values: dict[str, Any]
    state: str
    """``running``, ``done``, ``failed`` or ``redo`` (left by a killed search; asked again)."""
    scores: tuple[float, ...] | None = None
    error: str | None = None
    seconds: float | None = None
    recipe: str = ""


@dataclass
class SearchResult:
    """The study after the search: every trial, and the best ones."""

    rows: list[TrialRow]
    best: list[int]
    """Numbers of the best trials: one for one objective, the Pareto front (non-dominated) for several."""
    directions: list[str]
    study_name: str
    kept: list[str] = field(default_factory=list)


def study_name(settings: SearchSettings) -> str:
    """The study's name in the file: the fingerprint of what makes its trials comparable."""
    digest = hashlib.sha256(settings.loaded.text.encode())
    space = [[d.name, d.low, d.high, list(d.choices), d.anchors] for d in settings.dimensions]
    aims = [[o.kind, o.direction, o.argument, hashlib.sha256((o.text or "").encode()).hexdigest()]
            for o in settings.objectives]  # fmt: skip
    digest.update(json.dumps([space, aims, settings.sampler, settings.seed, settings.grid_steps]).encode())
    return "search-" + digest.hexdigest()[:12]


def recipe_of(settings: SearchSettings, values: dict[str, Any], number: int) -> str:
    """The trial's recipe: the searched recipe with only the searched values changed (comments and layout kept)."""
    changes = {dimension.path: values[dimension.name] for dimension in settings.dimensions}
    words = ", ".join(f"{name}={json.dumps(value)}" for name, value in values.items())
    return f"# search trial {number}: {words}\n" + with_values(settings.loaded.text, changes)


def check_space(settings: SearchSettings) -> None:
    """Refuse before the first merge a space whose ends make a recipe that would not run."""
    for dimension in settings.dimensions:
        for end in _ends(dimension):
            values = {other.name: _first(other) for other in settings.dimensions} | {dimension.name: end}
            text = recipe_of(settings, values, 0)
            try:
                parse_config(text, "trial")
            except BadInputError as error:
                detail = error.message.removeprefix("trial").lstrip(":0123456789 ")
                raise BadInputError(f"--space {dimension.describe()}: {detail} No merge was started.") from None


def _ends(dimension: Dimension) -> list[Any]:
    if dimension.choices:
        return list(dimension.choices)
    ends = [int(dimension.low), int(dimension.high)] if dimension.integer else [dimension.low, dimension.high]
    return [[end] * dimension.anchors for end in ends] if dimension.anchors else ends


def _first(dimension: Dimension) -> Any:
    return _ends(dimension)[0]


@contextmanager
def driving(study: Path) -> Iterator[None]:
    """Hold the study file's lock while this search drives it; a second search on it is refused."""
    study.parent.mkdir(parents=True, exist_ok=True)
    lock_path = study.with_name(study.name + ".lock")
    with lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BadInputError(
                f"Another search is running on {study} now; wait for it, or give this one --study OTHER.db."
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def open_study(settings: SearchSettings) -> Any:
    """The Optuna study in the study file, created or loaded."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{settings.study.resolve()}", engine_kwargs={"connect_args": {"timeout": 60}}
    )
    directions = [objective.direction for objective in settings.objectives]
    study = optuna.create_study(storage=storage, study_name=study_name(settings), directions=directions,
                                sampler=make_sampler(settings), load_if_exists=True)  # fmt: skip
    held = len(study.get_trials(deepcopy=False))
    if held:
        study.sampler = make_sampler(settings, offset=held)
    return study


def make_sampler(settings: SearchSettings, offset: int = 0) -> Any:
    """The sampler the person chose, seeded. A resumed study's is seeded ``offset`` (the trials it holds) further,
    so it does not ask again the values it asked before the stop; an uninterrupted search replays exactly."""
    import optuna

    several = len(settings.objectives) > 1
    seed = settings.seed + offset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if settings.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed, multivariate=not several)
        if settings.sampler == "cmaes":
            if several:
                raise BadInputError("--sampler cmaes scores one objective; use tpe or random for several.")
            return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if settings.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if settings.sampler == "grid":
            # Every grid point is queued when the study starts (``queue_grid``); Optuna's GridSampler stops the
            # study from inside ``tell``, which only its own optimize loop allows.
            return optuna.samplers.RandomSampler(seed=seed)
    raise BadInputError(f"--sampler {settings.sampler}: choose one of {', '.join(SAMPLERS)}.")


GRID_LIMIT = 10_000


def grid_space(settings: SearchSettings) -> dict[str, list[Any]]:
    """Every key's grid points; a grid of more than ``GRID_LIMIT`` points is refused."""
    space: dict[str, list[Any]] = {}
    for dimension in settings.dimensions:
        space.update(dimension.grid(settings.grid_steps))
    size = math.prod(len(points) for points in space.values())
    if size > GRID_LIMIT:
        raise BadInputError(f"--sampler grid: the space has {size} points (more than {GRID_LIMIT}); search it "
                            "with tpe or cmaes, or take fewer --grid-steps or anchors.")  # fmt: skip
    return space


def grid_size(settings: SearchSettings) -> int:
    return math.prod(len(points) for points in grid_space(settings).values())


def queue_grid(study: Any, settings: SearchSettings) -> None:
    """Queue every point of the grid, in order, when the study is new (a resumed study keeps its queue)."""
    if study.get_trials(deepcopy=False):
        return
    space = grid_space(settings)
    for point in itertools.product(*space.values()):
        study.enqueue_trial(dict(zip(space, point)))


def recover_interrupted(study: Any, say: Callable[[str], None]) -> None:
    """Trials a killed search left running: marked failed (and interrupted), their values asked again first."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"redo_of": trial.number}, skip_if_exists=False)
        say(f"trial {trial.number} was interrupted; it runs again")


def finished_count(study: Any) -> int:
    """Trials that ran to an end (scored or failed), not those a killed search interrupted."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.FAIL)
    return sum(1 for trial in study.get_trials(deepcopy=False, states=states)
               if not trial.user_attrs.get(INTERRUPTED))  # fmt: skip


def rows_of(study: Any, settings: SearchSettings) -> list[TrialRow]:
    """Every trial of the study as the table shows it (interrupted ones left out: their redo stands for them)."""
    from optuna.trial import TrialState

    rows = []
    for trial in study.get_trials(deepcopy=False):
        if trial.user_attrs.get(INTERRUPTED):
            continue
        state = {TrialState.COMPLETE: "done", TrialState.FAIL: "failed", TrialState.RUNNING: "running"}.get(
            trial.state, trial.state.name.lower()
        )
        try:
            values = values_of(settings.dimensions, trial.params)
        except KeyError:
            values = {}
        scores = tuple(trial.values) if trial.values is not None else None
        rows.append(TrialRow(trial.number, values, state, scores, trial.user_attrs.get("error"),
                             trial.user_attrs.get("seconds"), trial.user_attrs.get("recipe", "")))  # fmt: skip
    return rows


def best_numbers(study: Any) -> list[int]:
    """The best trial's number (one objective) or the Pareto front's (several), as Optuna finds them."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    if len(study.directions) == 1:
        return [study.best_trial.number]
    return sorted(trial.number for trial in study.best_trials)


def run_search(
    settings: SearchSettings,
    on_row: Callable[[TrialRow], None],
    say: Callable[[str], None],
    stop: threading.Event | None = None,
) -> SearchResult:
    """Run trials until the study holds ``settings.trials`` finished ones; each change of a trial to ``on_row``.
    ``stop`` (the wizard's escape) ends the search as Ctrl-C does: trials in flight are stopped and run first
    next time."""
    from tui_merge.search.pools import open_pool

    with driving(settings.study):
        study = open_study(settings)
        recover_interrupted(study, say)
        if settings.sampler == "grid":
            queue_grid(study, settings)
        settings.trials_folder.mkdir(parents=True, exist_ok=True)
        _clear_leftovers(settings, study)
        wanted = settings.trials if settings.trials is not None else (
            grid_size(settings) if settings.sampler == "grid" else 20)  # fmt: skip
        pending: dict[Any, tuple[Any, TrialRow]] = {}
        pool = None
        try:
            while True:
                while (
                    len(pending) < settings.workers
                    and finished_count(study) + len(pending) < wanted
                    and not (stop is not None and stop.is_set())
                ):
                    if pool is None:
                        pool = open_pool(settings)
                    trial = study.ask()
                    values = {dimension.name: dimension.suggest(trial) for dimension in settings.dimensions}
                    text = recipe_of(settings, values, trial.number)
                    recipe = settings.trials_folder / f"trial-{trial.number}.yaml"
                    recipe.write_text(text, encoding="utf-8")
                    trial.set_user_attr("recipe", str(recipe))
                    local = None if settings.ray_address else str(settings.trials_folder / f"trial-{trial.number}")
                    job = TrialJob(trial.number, text, tuple(settings.objectives), local, settings.device,
                                   keep=settings.keep_best > 0)  # fmt: skip
                    row = TrialRow(trial.number, values, "running", recipe=str(recipe))
                    pending[pool.submit(job)] = (trial, row)
                    on_row(row)
                if not pending or (stop is not None and stop.is_set()):
                    break
                for handle, outcome in pool.wait_any(list(pending), timeout=0.5):
                    trial, row = pending.pop(handle)
                    _tell(study, trial, row, outcome)
                    on_row(row)
                    if settings.keep_best:
                        _keep_only_best(study, settings)
        finally:
            if pool is not None:
                pool.close(cancel=bool(pending))
            if pending:  # stopped (Ctrl-C, an error): the trials in flight run first next time
                recover_interrupted(study, lambda line: None)
                _clear_leftovers(settings, study)
        return SearchResult(rows_of(study, settings), best_numbers(study),
                            [direction.name.lower() for direction in study.directions], study.study_name,
                            kept=_kept(settings))  # fmt: skip


def _tell(study: Any, trial: Any, row: TrialRow, outcome: TrialOutcome) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("seconds", round(outcome.seconds, 2))
    row.seconds = outcome.seconds
    if outcome.values is None:
        trial.set_user_attr("error", outcome.error)
        study.tell(trial, state=TrialState.FAIL)
        row.state, row.error = "failed", outcome.error
        return
    if outcome.folder:
        trial.set_user_attr("folder", outcome.folder)
    study.tell(trial, list(outcome.values) if len(outcome.values) > 1 else outcome.values[0])
    row.state, row.scores = "done", outcome.values


def _keep_only_best(study: Any, settings: SearchSettings) -> None:
    """Remove the merged folders of trials no longer among the ``keep_best`` best (by the first objective)."""
    from optuna.trial import TrialState

    done = [trial for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if trial.user_attrs.get("folder")]  # fmt: skip
    sign = 1 if study.directions[0].name.lower() == "minimize" else -1
    done.sort(key=lambda trial: (sign * trial.values[0], trial.number))
    for trial in done[settings.keep_best :]:
        shutil.rmtree(trial.user_attrs["folder"], ignore_errors=True)


def _kept(settings: SearchSettings) -> list[str]:
    folder = settings.trials_folder
    return sorted(str(path) for path in folder.glob("trial-*") if path.is_dir() and not path.name.endswith(".partial"))


def _clear_leftovers(settings: SearchSettings, study: Any) -> None:
    """Merges a killed search left half done (``trial-N.partial``) or unscored go; kept best ones stay."""
    keep = {trial.user_attrs.get("folder") for trial in study.get_trials(deepcopy=False)} - {None}
    for path in settings.trials_folder.glob("trial-*"):
        if path.is_dir() and str(path) not in keep:
            shutil.rmtree(path, ignore_errors=True)
