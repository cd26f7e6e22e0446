"""``tui-merge doctor``: what a person on a shared server needs to know before an hour-long merge, on one screen.

Python and each package the merge leans on (torch, transformers, huggingface_hub, safetensors, tokenizers,
textual), against the range this installation of tui-merge declares (read from its own metadata, so the doctor
and ``pip`` never disagree); whether torch sees CUDA, with each device's name and memory and the CUDA version
torch was built for; where the Hugging Face cache is and how much disk is free there; whether a Hub token is
present (never its value) and whether ``HF_HUB_OFFLINE`` is set; the terminal's size and whether the wizard can
draw in it. Exit status 0 when everything is within range, 1 with one line per problem otherwise; ``--json``
prints the same facts for scripts.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

CHECKED = ("torch", "transformers", "huggingface_hub", "safetensors", "tokenizers", "textual")
"""The packages a merge's correctness or the wizard depends on most; all are declared by tui-merge."""
SMALLEST_TERMINAL = (80, 24)
LOW_DISK = 20 * 2**30
"""Less free than this in the Hugging Face cache is said: a 7B model alone takes 14 GiB."""


@dataclass
class Fact:
    """One line of the doctor's table."""

    name: str
    value: str
    ok: bool = True
    problem: str | None = None
    """What to do about it, when it is not ok."""


@dataclass
class Report:
    facts: list[Fact] = field(default_factory=list)

    def add(self, name: str, value: str, problem: str | None = None) -> None:
        self.facts.append(Fact(name, value, problem is None, problem))

    @property
    def problems(self) -> list[str]:
        return [fact.problem for fact in self.facts if fact.problem]


def declared_ranges() -> dict[str, str]:
    """Each dependency's version range as this installation of tui-merge declares it (extras left out)."""
    from packaging.requirements import Requirement

    ranges = {}
    for line in importlib.metadata.requires("tui-merge") or []:
        requirement = Requirement(line)
        if requirement.marker is None:
            ranges[_normal(requirement.name)] = str(requirement.specifier)
    return ranges


def _normal(name: str) -> str:
    return name.lower().replace("-", "_")


def check_packages(report: Report, ranges: dict[str, str]) -> None:
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    python = ".".join(map(str, sys.version_info[:3]))
    wanted = importlib.metadata.metadata("tui-merge").get("Requires-Python") or ""
    report.add("python", python, None if Version(python) in SpecifierSet(wanted) else
               f"Python {python} is outside tui-merge's range {wanted}; use a Python in it.")  # fmt: skip
    for name in CHECKED:
        supported = ranges.get(_normal(name), "")
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            report.add(name, "missing", f"{name} is not installed; reinstall tui-merge (pip install tui-merge).")
            continue
        shown = f"{installed}  (supported {supported or 'any'})"
        within = not supported or Version(installed) in SpecifierSet(supported, prereleases=True)
        problem = (f"{name} {installed} is outside the supported range {supported}; install a version in it in "
                   "tui-merge's own environment (its venv, pipx or uv tool), not in your serving stack.")  # fmt: skip
        report.add(name, shown, None if within else problem)


def check_torch_devices(report: Report) -> None:
    try:
        import torch
    except ImportError:
        return  # said as missing above
    if not torch.cuda.is_available():
        built = torch.version.cuda
        why = f"this torch is built for CUDA {built} but sees no device" if built else "this torch is a CPU build"
        report.add("CUDA", f"none ({why}); merges run on the CPU")
        return
    report.add("CUDA", f"{torch.cuda.device_count()} device(s), torch built for CUDA {torch.version.cuda}")
    for index in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(index)
        report.add(f"cuda:{index}", f"{torch.cuda.get_device_name(index)}, {free / 2**30:.0f} of "
                   f"{total / 2**30:.0f} GiB free")  # fmt: skip


def check_hub(report: Report) -> None:
    from huggingface_hub import constants, get_token

    cache = Path(constants.HF_HUB_CACHE)
    where = next((folder for folder in (cache, *cache.parents) if folder.exists()), Path("/"))
    free = shutil.disk_usage(where).free
    report.add("Hugging Face cache", f"{cache}  ({free / 2**30:.0f} GiB free)", None if free >= LOW_DISK else
               f"The Hugging Face cache {cache} has {free / 2**30:.1f} GiB free; a 7B model takes 14 GiB: make "
               "room, or point HF_HOME at a larger disk.")  # fmt: skip
    report.add("Hub token", "present (not shown)" if get_token() else "none (public models only)")
    offline = os.environ.get("HF_HUB_OFFLINE")
    report.add("HF_HUB_OFFLINE", f"set ({offline}): only the local cache is used" if offline else "not set")


def check_terminal(report: Report) -> None:
    if not sys.stdout.isatty():
        report.add("terminal", "not a terminal: the commands run, the wizard needs one (or use tui-merge plain)")
        return
    size = shutil.get_terminal_size()
    small = size.columns < SMALLEST_TERMINAL[0] or size.lines < SMALLEST_TERMINAL[1]
    dumb = os.environ.get("TERM", "") in ("", "dumb")
    if dumb:
        report.add("terminal", f"{size.columns}x{size.lines}, TERM={os.environ.get('TERM', '')!r}: tui-merge "
                   "opens the plain wizard")  # fmt: skip
    else:
        report.add("terminal", f"{size.columns}x{size.lines}", None if not small else
                   f"The terminal is {size.columns}x{size.lines}; the wizard needs 80x24: enlarge it, or use "
                   "tui-merge plain.")  # fmt: skip


def diagnose() -> Report:
    report = Report()
    check_packages(report, declared_ranges())
    check_torch_devices(report)
    check_hub(report)
    check_terminal(report)
    return report


def run(args: argparse.Namespace) -> int:
    report = diagnose()
    if args.json:
        print(json.dumps({"ok": not report.problems, "facts": [asdict(fact) for fact in report.facts]}, indent=2))
        return 1 if report.problems else 0
    console = Console(highlight=False)
    table = Table(box=None, padding=(0, 2, 0, 0), show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for fact in report.facts:
        table.add_row(fact.name, Text(fact.value, style="" if fact.ok else "bold red"))
    console.print(table)
    for problem in report.problems:
        console.print(Text(f"problem: {problem}", style="red"), soft_wrap=True)
    if not report.problems:
        console.print("All within range.")
    return 1 if report.problems else 0
