"""A merge leaves a core to the thread that writes the output, and gives torch its thread count back."""

from __future__ import annotations

import torch
from test_engine import merge

from tui_merge.engine import threads


def test_a_merge_uses_one_torch_thread_fewer_than_the_cores_and_restores_the_count(monkeypatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        monkeypatch.setattr(threads, "usable_cores", lambda: 3)
        with threads.threads_for_merging() as count:
            assert count == torch.get_num_threads() == 2
        assert torch.get_num_threads() == 3
        monkeypatch.setattr(threads, "usable_cores", lambda: 1)
        with threads.threads_for_merging() as count:
            assert count == torch.get_num_threads() == 1  # never none
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(previous)


def test_a_users_omp_num_threads_is_left_as_it_is(monkeypatch) -> None:
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        monkeypatch.setattr(threads, "usable_cores", lambda: 2)  # without the rule: 1 thread
        with threads.threads_for_merging() as count:
            assert count == torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(previous)


def test_the_merge_kernels_run_with_the_reduced_count(tmp_path, monkeypatch, llama_base, llama_finetune) -> None:
    from tui_merge.methods import linear

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    previous = torch.get_num_threads()
    seen = []
    real = linear.linear

    def counting(inputs):
        seen.append(torch.get_num_threads())
        return real(inputs)

    monkeypatch.setattr(linear, "linear", counting)
    monkeypatch.setattr(threads, "usable_cores", lambda: previous)
    merge(tmp_path, "merge_method: linear\nmodels: [{{model: {a}}}, {{model: {b}}}]\n", a=llama_base, b=llama_finetune)
    assert seen and set(seen) == {max(1, previous - 1)}
    assert torch.get_num_threads() == previous
