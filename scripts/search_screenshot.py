"""Write ``screenshots/search.svg``: the table and Pareto plot of a two-objective search on the demo models.

Run from the repository root: ``.venv/bin/python scripts/search_screenshot.py``. The objectives are two made-up
functions of ``t`` (read back from each trial's recipe) pulling against each other, so the front has several
trials; the picture is the SVG ``tui-merge search`` writes beside its study. The time column is measured, so it
differs from one run to the next.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

from tui_merge.cli import main as tui_merge
from tui_merge.samples import build_demo_models

OUTPUT = Path(__file__).resolve().parent.parent / "screenshots" / "search.svg"
SCORE = """\
import math, sys, yaml
t = yaml.safe_load(open(sys.argv[1]))["parameters"]["t"]
print({formula})
"""


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        build_demo_models(Path(folder))
        Path("slerp.yaml").write_text(
            textwrap.dedent("""\
            merge_method: slerp
            base_model: demo-base
            models:
              - model: demo-base
              - model: demo-chat
            parameters:
              t: 0.5
            dtype: bfloat16
        """)
        )
        Path("distance.py").write_text(SCORE.format(formula="(t - 0.3) ** 2"))
        Path("wave.py").write_text(SCORE.format(formula="math.sin(7 * t) + t"))
        status = tui_merge([
            "search", "slerp.yaml", "--space", "t=0..1", "--sampler", "random", "--trials", "14",
            "--objective", f"command:{sys.executable} distance.py $RECIPE",
            "--objective", f"max:command:{sys.executable} wave.py $RECIPE",
        ])  # fmt: skip
        if status:
            return status
        shutil.copyfile("slerp.search.pareto.svg", OUTPUT)
    print(f"screenshots/{OUTPUT.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
