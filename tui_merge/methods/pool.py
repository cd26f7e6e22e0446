"""The few threads merge kernels share for work whose bytes cannot depend on them.

A kernel hands the pool pieces that each give the same result on any
thread (one model's sparsified task vector, one part of a sign election)
and combines the results in a fixed order, so the output bytes do not
depend on the number of cores or on timing.

The Gram products of the spherical methods stay on the merging thread:
measured on the 1b preset (2 cores), slerp took 6.3-6.8 s with its float64
copies and dot products on the pool against 5.9-6.2 s without; the
hand-offs cost more than the second core gave.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

POOL_THREADS = min(4, os.cpu_count() or 1)
"""One thread per core, up to four."""


@functools.cache
def method_pool() -> ThreadPoolExecutor:
    """The shared pool (started on first use)."""
    return ThreadPoolExecutor(max_workers=POOL_THREADS, thread_name_prefix="merge-part")
