"""How a merge ends without its output, each with its exit code.

The front ends say them as they are; those that keep ``OUT.partial`` (``MergeInterrupted`` and its kinds) can
be continued with ``--resume``.
"""

from __future__ import annotations

from tui_merge.errors import TuiMergeError


class MergeError(TuiMergeError):
    """The merge could not finish; nothing was written at the output path."""

    exit_code = 1


class MergeCancelled(TuiMergeError):
    """The user cancelled; nothing was written at the output path."""

    exit_code = 130


class MergeInterrupted(TuiMergeError):
    """Stopped by a signal or a cancel; ``OUT.partial`` and its journal are kept for ``--resume``."""

    exit_code = 130


class MergeWriteFailed(MergeInterrupted):
    """An I/O error stopped the merge (a full disk, a lost mount); ``OUT.partial`` is kept for ``--resume``."""

    exit_code = 1


class MergeInputChanged(MergeInterrupted):
    """An input file changed under the merge; ``OUT.partial`` is kept for ``--resume`` once it is restored."""

    exit_code = 2
