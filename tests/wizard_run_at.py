"""Open the real wizard on a saved config at its Run step, with the merge held after its first tensor.

    python tests/wizard_run_at.py FOLDER merge.yaml OUT

The wizard starts merging ``merge.yaml`` into OUT at once, as ctrl+n on the
Review step does; ``pause_at.py`` holds the merge until ``FOLDER/go`` exists,
so a test can close the wizard's terminal while it is merging.
"""

from __future__ import annotations

import faulthandler
import sys
from pathlib import Path

from pause_at import hold_after_first_tensor

from tui_merge.cli.wizard_cmd import open_wizard
from tui_merge.tui.step import STEP_NAMES
from tui_merge.wizard.reopening import load_state

if __name__ == "__main__":
    folder, config, output = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    # Still running after a minute is a hang: every thread's stack goes to FOLDER/stacks.txt for the test to show.
    stacks = (folder / "stacks.txt").open("w")
    faulthandler.dump_traceback_later(60, file=stacks)
    hold_after_first_tensor(folder)
    state = load_state(config)
    state.output = output
    sys.exit(open_wizard(state, start_step=len(STEP_NAMES) - 1))
