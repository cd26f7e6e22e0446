"""A search's settings from what a person wrote (the command line, or the wizard's Search screen), every part
checked before the first merge: the space against the method, each objective, the workers against the cores, the
disk and the memory one merge needs."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from tui_merge.config.loading import LoadedConfig, parse_config
from tui_merge.errors import BadInputError
from tui_merge.search.objectives import parse_objective
from tui_merge.search.space import parse_dimension
from tui_merge.search.study import SearchSettings, check_space, recipe_of
from tui_merge.units import human_bytes


def build_settings(
    loaded: LoadedConfig,
    spaces: list[str],
    objectives_written: list[str],
    study: Path,
    *,
    workers: int | None = None,
    **options,
) -> SearchSettings:
    """The checked settings; ``options`` are ``SearchSettings``'s own (trials, sampler, seed, ...)."""
    if not spaces:
        raise BadInputError("Give at least one --space NAME=SPEC (for example --space t=0..1).")
    depth = _depth(loaded) if any("@" in text for text in spaces) else None
    dimensions = [parse_dimension(text, loaded, depth) for text in spaces]
    names = [dimension.name for dimension in dimensions]
    if len(set(names)) < len(names):
        raise BadInputError("--space names the same parameter twice; give each one once.")
    objectives = [parse_objective(text) for text in objectives_written or ["perplexity"]]
    labels = [objective.label for objective in objectives]
    if len(set(labels)) < len(labels):  # two columns of one name: numbered
        objectives = [replace(objective, label=f"{index + 1}: {objective.label}")
                      for index, objective in enumerate(objectives)]  # fmt: skip
    for flag, value in (("--trials", options.get("trials")), ("--workers", workers),
                        ("--grid-steps", options.get("grid_steps"))):  # fmt: skip
        if value is not None and value < 1:
            raise BadInputError(f"{flag} must be at least 1.")
    if options.get("sampler") == "grid" and options.get("grid_steps", 5) < 2:
        raise BadInputError("--grid-steps must be at least 2 (a range's two ends).")
    settings = SearchSettings(loaded, dimensions, objectives, study, **options)
    check_space(settings)
    settings.workers = _workers(settings, workers)
    return settings


def _depth(loaded) -> int | None:
    """The layer count of the recipe's base (else first) model, for ``@layers``."""
    from tui_merge.models.info import load_model_info

    config = loaded.config
    name = config.base_model or next((entry.model for entry in config.models or []), None)
    if name is None:
        return None
    return load_model_info(name.partition("+")[0]).depth or None


def _workers(settings: SearchSettings, asked: int | None) -> int:
    """Trials at once: as asked, or as many as half the cores, the disk and the memory allow one merge each;
    more than the disk holds is refused before the first merge."""
    from tui_merge.engine.disk import free_space
    from tui_merge.engine.job import MergeJob, plan_job
    from tui_merge.engine.preflight import DISK_MARGIN

    if settings.ray_address:
        return asked or 4  # the cluster's own scheduler places them; four in flight keeps a small cluster busy
    first = {dimension.name: dimension.suggest(_Lowest()) for dimension in settings.dimensions}
    loaded = parse_config(recipe_of(settings, first, 0), str(settings.loaded.source))
    settings.trials_folder.mkdir(parents=True, exist_ok=True)
    plan = plan_job(MergeJob(loaded, settings.trials_folder / "trial-0"))
    where, free = free_space(settings.trials_folder)
    one_merge = int(plan.bytes_to_write * DISK_MARGIN) or 1
    by_disk = free // one_merge
    if by_disk < 1:
        raise BadInputError(
            f"One trial's merge needs about {human_bytes(one_merge)} on {where}, which has {human_bytes(free)} "
            "free; make room, or give --study a file on another disk."
        )
    by_memory = _available_memory() // max(plan.peak_bytes + 2**30, 1)  # a worker's own Python and torch: ~1 GiB
    by_cores = max((os.cpu_count() or 1) // 2, 1)
    if asked is not None:
        if asked > by_disk:
            raise BadInputError(
                f"--workers {asked}: {where} has room for {by_disk} merges at once ({human_bytes(free)} free, "
                f"{human_bytes(one_merge)} each); ask for fewer."
            )
        return asked
    return max(1, min(by_cores, by_disk, by_memory))


class _Lowest:
    """Stands in for an Optuna trial: every dimension at its first value (for sizing one merge)."""

    def suggest_float(self, name, low, high, **options):
        return low

    def suggest_int(self, name, low, high, **options):
        return low

    def suggest_categorical(self, name, choices):
        return choices[0]


def _available_memory() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30  # unknown: room for a few small merges
