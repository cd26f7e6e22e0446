"""``tui-merge verify``: check a merged model folder, one line per check."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tui_merge.errors import BadInputError
from tui_merge.verification import Check, VerifyReport, verify_output

_MARKS = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip", "info": "info"}


def run(args: argparse.Namespace) -> int:
    """Verify the folder; exit 1 when a check fails."""
    folder = Path(args.folder)
    if not folder.is_dir():
        raise BadInputError(f"{folder} is not a folder; give the merged model's folder.")
    if args.json:
        report = verify_output(folder, probe=args.probe)
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.ok else 1
    return print_verification(folder, probe=args.probe)


def print_verification(folder: Path, *, probe: bool = False) -> int:
    """Verify ``folder``, printing each check as it finishes; the exit status."""
    print(f"Verifying {folder}", flush=True)
    report = verify_output(folder, probe=probe, on_check=_print_check)
    print(verdict(report))
    return 0 if report.ok else 1


def verdict(report: VerifyReport) -> str:
    """One sentence on the whole report."""
    failed = [check.name for check in report.checks if check.outcome == "failed"]
    if not failed:
        return f"{report.folder} passed verification."
    return f"{report.folder} failed verification: {', '.join(failed)} (see above)."


def _print_check(check: Check) -> None:
    print(f"  {_MARKS[check.outcome]}  {check.name:<13} {check.detail}", file=sys.stdout, flush=True)
