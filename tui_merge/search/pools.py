"""Where trials run: worker processes here (``search.worker``), or Ray tasks on a cluster (``--ray ADDRESS``).

Both take a ``TrialJob`` and give back a ``TrialOutcome`` (``search.trial.evaluate``), so the study loop does
not know which one it drives. Ray is imported only here and only with ``--ray``; it is the optional extra
``tui-merge[ray]``. A Ray task whose worker dies (a node lost, a process killed) is retried by Ray on another
worker, up to ``RAY_RETRIES`` times; a trial that fails by itself (its merge or its objective) is not retried.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from tui_merge.errors import BadInputError
from tui_merge.search.trial import TrialJob, TrialOutcome, evaluate
from tui_merge.search.worker import job_to_line, outcome_from_line

RAY_RETRIES = 3


def open_pool(settings: Any) -> LocalPool | RayPool:
    if settings.ray_address:
        return RayPool(settings.ray_address, settings.workers)
    return LocalPool(settings.workers, settings.trials_folder)


class WorkerDied(Exception):
    """The worker process ended in the middle of a trial."""


class WorkerProcess:
    """One ``search.worker`` child: a trial in on its stdin, its outcome out on its stdout."""

    def __init__(self, log: Path) -> None:
        environment = {**os.environ, "TUI_MERGE_SEARCH_PARENT": str(os.getpid())}
        with log.open("a", encoding="utf-8") as errors:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tui_merge.search.worker"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=errors, text=True, bufsize=1, env=environment,
            )  # fmt: skip
        self.log = log

    def run(self, job: TrialJob) -> TrialOutcome:
        try:
            self.process.stdin.write(job_to_line(job))
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            code = self.process.wait()
            raise WorkerDied(f"the worker process ended (exit status {code}; its log: {self.log})")
        return outcome_from_line(line)

    def close(self, *, kill: bool = False) -> None:
        if kill:
            self.process.terminate()
        else:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class LocalPool:
    """Worker processes on this machine, each running one trial at a time; a thread per worker waits on it."""

    def __init__(self, workers: int, folder: Path) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="search-worker")
        self.folder = folder
        self.idle: queue.SimpleQueue[WorkerProcess] = queue.SimpleQueue()
        self.started: list[WorkerProcess] = []
        self.lock = threading.Lock()

    def submit(self, job: TrialJob) -> Any:
        return self.executor.submit(self._run, job)

    def _run(self, job: TrialJob) -> TrialOutcome:
        try:
            worker = self.idle.get_nowait()
        except queue.Empty:
            with self.lock:
                worker = WorkerProcess(self.folder / f"worker-{len(self.started)}.log")
                self.started.append(worker)
        try:
            outcome = worker.run(job)
        except WorkerDied as died:
            return TrialOutcome(job.number, None, str(died), 0.0)
        self.idle.put(worker)
        return outcome

    def wait_any(self, handles: list[Any], timeout: float | None = None) -> list[tuple[Any, TrialOutcome]]:
        """The trials that ended, waiting for one at most ``timeout`` seconds (none: as long as it takes)."""
        done, _ = concurrent.futures.wait(handles, timeout=timeout, return_when=concurrent.futures.FIRST_COMPLETED)
        return [(handle, handle.result()) for handle in done]

    def close(self, *, cancel: bool) -> None:
        """End the workers: at once when ``cancel`` (a merge in flight stops; its folder is cleared on the next
        start), else once their stdin closes."""
        for worker in list(self.started):
            worker.close(kill=cancel)
        self.executor.shutdown(wait=True, cancel_futures=cancel)


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

    def wait_any(self, handles: list[Any], timeout: float | None = None) -> list[tuple[Any, TrialOutcome]]:
        done, _ = self.ray.wait(handles, num_returns=1, timeout=timeout)
        results = []
        for handle in done:
            try:
                results.append((handle, self.ray.get(handle)))
            except self.ray.exceptions.RayError as error:
                results.append((handle, TrialOutcome(-1, None, f"the Ray task failed: {error}", 0.0)))
        return results

    def close(self, *, cancel: bool) -> None:
        self.ray.shutdown()
