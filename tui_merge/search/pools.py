"""Where trials run: worker processes on this machine, or Ray tasks on a cluster (``--ray ADDRESS``).

Both take a ``TrialJob`` and give back a ``TrialOutcome`` (``search.trial.evaluate``), so the study loop does
not know which one it drives. Ray is imported only here and only with ``--ray``; it is the optional extra
``tui-merge[ray]``. A Ray task whose worker dies (a node lost, a process killed) is retried by Ray on another
worker, up to ``RAY_RETRIES`` times; a trial that fails by itself (its merge or its objective) is not retried.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import signal
import sys
from typing import Any

from tui_merge.errors import BadInputError
from tui_merge.search.trial import TrialJob, TrialOutcome, evaluate

RAY_RETRIES = 3


def open_pool(settings: Any) -> LocalPool | RayPool:
    if settings.ray_address:
        return RayPool(settings.ray_address, settings.workers)
    return LocalPool(settings.workers)


def _die_with_parent() -> None:
    """A worker ends when the search that started it is killed (Linux), instead of merging on for nobody."""
    if sys.platform.startswith("linux"):
        import ctypes

        with_parent = 1  # PR_SET_PDEATHSIG
        ctypes.CDLL(None, use_errno=True).prctl(with_parent, signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the search's to handle; it ends the workers


class LocalPool:
    """Worker processes here, started fresh (spawn: no thread or CUDA state copied from the search)."""

    def __init__(self, workers: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.executor = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context,
                                                               initializer=_die_with_parent)  # fmt: skip

    def submit(self, job: TrialJob) -> Any:
        return self.executor.submit(evaluate, job)

    def wait_any(self, handles: list[Any]) -> list[tuple[Any, TrialOutcome]]:
        done, _ = concurrent.futures.wait(handles, return_when=concurrent.futures.FIRST_COMPLETED)
        return [(handle, _outcome_of(handle)) for handle in done]

    def close(self, *, cancel: bool) -> None:
        if cancel:
            for process in list(getattr(self.executor, "_processes", {}).values()):
                process.terminate()  # a merge in flight stops; its .partial is cleared on the next start
        self.executor.shutdown(wait=True, cancel_futures=cancel)


def _outcome_of(future: concurrent.futures.Future) -> TrialOutcome:
    try:
        return future.result()
    except concurrent.futures.process.BrokenProcessPool:
        raise BadInputError("A search worker process died (out of memory?); run the search again to go on.") from None


class RayPool:
    """Ray tasks on the cluster at ``address``, a GPU asked for each trial when the cluster has GPUs."""

    def __init__(self, address: str, workers: int) -> None:
        try:
            import ray
        except ImportError:
            raise BadInputError("--ray needs Ray: pip install 'tui-merge[ray]' (on every node).") from None
        self.ray = ray
        try:
            ray.init(address=address, ignore_reinit_error=True, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise BadInputError(f"--ray {address}: cannot join the Ray cluster ({error}); start it with ray start "
                                "--head, or give the address ray start printed.") from None  # fmt: skip
        gpus = ray.cluster_resources().get("GPU", 0)
        options: dict[str, Any] = {"max_retries": RAY_RETRIES, "retry_exceptions": False}
        if gpus:
            options["num_gpus"] = 1
        self.remote = ray.remote(**options)(evaluate)

    def submit(self, job: TrialJob) -> Any:
        return self.remote.remote(job)

    def wait_any(self, handles: list[Any]) -> list[tuple[Any, TrialOutcome]]:
        done, _ = self.ray.wait(handles, num_returns=1)
        results = []
        for handle in done:
            try:
                results.append((handle, self.ray.get(handle)))
            except self.ray.exceptions.RayError as error:
                results.append((handle, TrialOutcome(-1, None, f"the Ray task failed: {error}", 0.0)))
        return results

    def close(self, *, cancel: bool) -> None:
        self.ray.shutdown()
