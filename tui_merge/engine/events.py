"""What a merge job reports while it runs: one callback receives these, in order.

The CLI turns them into a progress bar or log lines, the wizard into Textual
messages, the tests collect them. ``can_replace`` lets a consumer that queues
events drop an older progress event when a newer one arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from tui_merge.engine.plan import Plan
    from tui_merge.engine.verification import Check, VerifyReport


@dataclass(frozen=True)
class MergeStarted:
    """The plan is fixed and writing begins."""

    plan: Plan


@dataclass(frozen=True)
class TensorMerged:
    """One output tensor is merged and written."""

    index: int
    """1-based count of tensors done."""
    total: int
    name: str
    bytes_written: int
    bytes_done: int
    """Output bytes written so far."""

    def can_replace(self, older: object) -> bool:
        """A newer progress event makes an older queued one redundant."""
        return isinstance(older, TensorMerged)


@dataclass(frozen=True)
class ShardWritten:
    """One shard file is complete."""

    path: Path
    size: int


@dataclass(frozen=True)
class Log:
    """A line for the log."""

    level: Literal["info", "warning"]
    text: str


@dataclass(frozen=True)
class MergeSummary:
    """What a finished merge produced."""

    output: Path
    tensors: int
    bytes_written: int
    bytes_read: int
    seconds: float


@dataclass(frozen=True)
class MergeFinished:
    """The output folder is complete and in place."""

    summary: MergeSummary


@dataclass(frozen=True)
class MergeFailed:
    """The merge stopped; nothing was left at the output path."""

    message: str


@dataclass(frozen=True)
class VerificationStarted:
    """The merged folder is being checked (``tui-merge verify``)."""

    folder: Path


@dataclass(frozen=True)
class CheckDone:
    """One verification check finished."""

    check: Check


@dataclass(frozen=True)
class Verified:
    """Every verification check finished."""

    report: VerifyReport


@dataclass(frozen=True)
class DownloadProgress:
    """Bytes of one file from the Hub so far, and of every file the merge needs (``engine.download``)."""

    repo_id: str
    file: str
    index: int
    """1-based number of the file among those downloaded."""
    count: int
    received: int
    size: int
    bytes_done: int
    """Bytes of every file so far."""
    bytes_total: int

    def can_replace(self, older: object) -> bool:
        """A newer progress event makes an older queued one redundant."""
        return isinstance(older, DownloadProgress)


@dataclass(frozen=True)
class FileDownloaded:
    """One file from the Hub is in the cache, its size and sha256 checked."""

    repo_id: str
    file: str
    size: int


MergeEvent = (
    MergeStarted | TensorMerged | ShardWritten | Log | MergeFinished | MergeFailed | VerificationStarted | CheckDone
    | Verified | DownloadProgress | FileDownloaded
)  # fmt: skip
EventCallback = Callable[[MergeEvent], None]
