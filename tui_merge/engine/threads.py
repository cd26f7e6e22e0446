"""While a merge runs, leave one core to the thread that writes and hashes the output.

torch starts one intra-op thread per core, and the writer thread
(``engine.writer``) needs a core of its own while it hashes and writes a
shard. With both, one more thread is runnable than there are cores, and
every parallel torch operation waits for whichever of its threads the
scheduler set aside for the writer. One fewer torch thread removes that
wait. Measured 2026-11-30 on a 2-core machine, 1b preset, inside the
process (two runs each): linear 4.0-4.2 s with 2 torch threads against
2.4-2.9 s with 1, slerp 7.5 against 4.9, ties with two fine-tunes 26.5
against 23.7, dare_ties 24.0 against 22.5, della 31.2 against 27.9;
arcee_fusion and model_stock the same within the noise.

The count applies to the thread that runs the merge (the wizard merges in
a worker thread) and comes back when the merge ends. A user's
``OMP_NUM_THREADS`` is left as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextmanager
def threads_for_merging() -> Iterator[int]:
    """Inside the ``with``, torch uses one thread fewer than there are cores (at least one); yields the count."""
    previous = torch.get_num_threads()
    if os.environ.get("OMP_NUM_THREADS"):
        yield previous
        return
    wanted = max(1, min(previous, usable_cores() - 1))
    torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        torch.set_num_threads(previous)
