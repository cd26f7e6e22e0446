"""The allocator setting that lets merges reuse freed memory for large tensors."""

import platform
import sys

import pytest
import torch

from tui_merge.engine.memory import keep_freed_memory


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only"
)
def test_glibc_agrees_to_reuse_freed_memory_and_tensors_still_work() -> None:
    assert keep_freed_memory()
    assert keep_freed_memory()  # a second call changes nothing and still reports success

    for _ in range(3):  # allocations beyond glibc's mmap threshold, now served from the heap
        tensor = torch.full((16 << 20,), 2.0)
        assert float(tensor.sum()) == 2.0 * (16 << 20)
        del tensor
