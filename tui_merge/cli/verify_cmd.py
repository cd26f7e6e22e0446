"""``tui-merge verify``: check a merged model folder, one line per check."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tui_merge.engine.verification import verify_output
from tui_merge.errors import BadInputError
from tui_merge.headless import print_check, verdict


def run(args: argparse.Namespace) -> int:
    """Verify the folder; exit 1 when a check fails."""
    folder = Path(args.folder)
    if not folder.is_dir():
        raise BadInputError(f"{folder} is not a folder; give the merged model's folder.")
    if not is_model_folder(folder):
        raise BadInputError(
            f"{folder} is not a model folder (it has neither config.json nor weight files); give the merged "
            "model's folder."
        )
    if args.json:
        report = verify_output(folder, probe=args.probe)
        print(json.dumps(report.to_dict(), indent=2))
        return 0 if report.ok else 1
    return print_verification(folder, probe=args.probe)


def is_model_folder(folder: Path) -> bool:
    """True when ``folder`` holds a config.json or weights: a model, whole or damaged, rather than anything else.

    A damaged model fails verification (exit 1); a folder that was never a model is bad input (exit 2).
    """
    weights = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "pytorch_model.bin.index.json")
    return (folder / "config.json").is_file() or any(next(folder.glob(pattern), None) for pattern in weights)


def print_verification(folder: Path, *, probe: bool = False) -> int:
    """Verify ``folder``, printing each check as it finishes; the exit status."""
    print(f"Verifying {folder}", flush=True)
    report = verify_output(folder, probe=probe, on_check=print_check)
    print(verdict(report))
    return 0 if report.ok else 1
