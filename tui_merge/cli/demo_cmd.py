"""``tui-merge demo``: tiny sample models built offline, then shown the way a user's models would be."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from tui_merge.cli import inspect_cmd
from tui_merge.errors import BadInputError
from tui_merge.user_cache import cache_folder

DEMO_MODEL_NAMES = ("demo-base", "demo-chat", "demo-unrelated")


def default_demo_folder() -> Path:
    """``demo`` in the user cache folder (``user_cache.cache_folder``)."""
    return cache_folder() / "demo"


def ensure_demo_models(folder: Path, rebuild: bool = False) -> list[Path]:
    """Build the demo models in ``folder`` unless they are already there; return their paths."""
    from tui_merge.samples import build_demo_models, is_sample_model

    paths = [folder / name for name in DEMO_MODEL_NAMES]
    if not rebuild and all((path / "config.json").is_file() and is_sample_model(path) for path in paths):
        return paths  # (models of an earlier version, without the card that says they are samples, are rebuilt)

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        # Built beside the destination and renamed into place, so an interrupted
        # build never leaves half a demo that later runs would trust.
        staging = Path(tempfile.mkdtemp(prefix=".demo-", dir=folder.parent))
        build_demo_models(staging)
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    except OSError as error:
        raise BadInputError(f"Cannot build the demo models in {folder}: {error.strerror or error}.") from error
    return paths


def run(args: argparse.Namespace) -> int:
    """Build the demo models if needed; open the wizard on a terminal, else print their inspection."""
    from tui_merge.cli.wizard_cmd import has_terminal, open_wizard, wizard_state

    folder = Path(args.dir).expanduser() if args.dir else default_demo_folder()
    base, chat, unrelated = (str(path) for path in ensure_demo_models(folder, rebuild=args.rebuild))
    hint = f"To see the lineage check, add {unrelated}: it does not share a base with the others."
    if has_terminal() and not args.no_wizard:
        return open_wizard(wizard_state([base, chat], None), hint=hint)
    print(f"Demo models in {folder}:\n  {base}\n  {chat}\n  {unrelated} (unrelated)\n")
    inspect_args = argparse.Namespace(models=[base, chat], base=None, method=None, json=False)
    status = inspect_cmd.run(inspect_args)
    print(f"\n{hint}\nOpen the wizard on them: run tui-merge demo in a terminal.")
    return status
