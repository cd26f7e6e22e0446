"""Do tui-merge and mergekit agree on the families of the support table? (Not a test: mergekit is no dependency.)

Run from the repository root with a Python whose environment has mergekit 0.1.5:

    .venv/bin/python benchmarks/families_against_mergekit.py ~/mergekit-venv/bin/python [families...]

For each family of ``scripts/support_table.py`` (or those named) it builds the same tiny pair, runs linear,
slerp, ties and the layer stacking with tui-merge and with ``mergekit-yaml`` on the same config, and compares
every tensor both wrote (float32 both ways, to 1e-5). A config mergekit refuses is shown with the last line it
printed; a tensor only one tool wrote is counted, never hidden (mergekit 0.1.5 leaves out the experts of a
checkpoint whose names its architecture file does not list).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

import support_table  # noqa: E402 - the builders and recipes of the support table

LINEAR = (
    "merge_method: linear\nmodels:\n  - model: {a}\n    parameters: {{weight: 0.5}}\n"
    "  - model: {b}\n    parameters: {{weight: 0.5}}\n"
)
"""mergekit's linear needs every weight spelled out; the support table's leaves them to the default."""


def load(folder: Path) -> dict:
    from safetensors.torch import load_file

    tensors = {}
    for path in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(path))
    return tensors


def compare(ours: Path, theirs: Path) -> str:
    import torch

    mine, other = load(ours), load(theirs)
    shared = set(mine) & set(other)
    differ = [name for name in sorted(shared) if mine[name].shape != other[name].shape
              or not torch.allclose(mine[name].float(), other[name].float(), atol=1e-5, rtol=1e-5)]  # fmt: skip
    only = len(set(mine) ^ set(other))
    if not differ and not only:
        return f"equal ({len(shared)} tensors)"
    return f"{len(differ)} differ ({', '.join(differ[:2])}), {only} in one only"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mergekit_python", help="a Python with mergekit installed")
    parser.add_argument("families", nargs="*")
    args = parser.parse_args()
    from transformers.utils import logging

    logging.set_verbosity_error()
    builders = {name: support_table.causal(name) for name in support_table.CAUSAL} | support_table.others()
    yaml_tool = str(Path(args.mergekit_python).parent / "mergekit-yaml")
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.families or list(builders):
            folder = Path(scratch) / name
            import torch

            torch.manual_seed(0)
            try:
                a, b = support_table.save_pair(builders[name](), folder)
            except Exception as error:  # noqa: BLE001 - a family this transformers cannot build is reported
                print(f"{name}: not built ({type(error).__name__})")
                continue
            cells = []
            recipes = support_table.RECIPES | {"linear": LINEAR}
            for kind, recipe in recipes.items():
                config = folder / f"{kind}.yaml"
                config.write_text(recipe.format(a=a, b=b) + "dtype: float32\n")
                command = [sys.executable, "-m", "tui_merge", "run", str(config), str(folder / f"o-{kind}")]
                ours = subprocess.run(command, capture_output=True, text=True)
                theirs = subprocess.run([yaml_tool, str(config), str(folder / f"m-{kind}")],
                                        capture_output=True, text=True)  # fmt: skip
                if theirs.returncode != 0:
                    last = (theirs.stderr.strip().splitlines() or ["?"])[-1][:60]
                    cells.append(f"{kind}: mergekit refuses ({last})")
                elif ours.returncode != 0:
                    cells.append(f"{kind}: tui-merge refuses")
                else:
                    cells.append(f"{kind}: {compare(folder / f'o-{kind}', folder / f'm-{kind}')}")
            print(f"{name}: " + "; ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
