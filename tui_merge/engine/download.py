"""Download from the Hub what a planned merge reads, and nothing else, into the standard cache, checked.

A merge of Hub models is planned from their metadata and headers (``models.hub``); its plan names every
stored tensor it reads, so the files to fetch are exactly the weight files holding them: the shards of
layers 0-15 for a passthrough of those layers, never a ``.bin`` copy, ``onnx``, ``gguf``, ``original/`` or
an image. huggingface_hub's ``hf_hub_download`` fetches each into the standard cache (so ``hf``,
transformers and a later run find it, and a stopped download resumes from its ``.incomplete`` blob),
while this module adds what a merge on a shared server needs around it:

- the disk checked first: downloads plus the output must fit, each on its own filesystem;
- progress per file and overall, read from the growing ``.incomplete`` blob (so it works with every
  huggingface_hub version, with or without its own progress bars);
- a dropped connection or a 429/5xx answer retried with backoff (``Retry-After`` honoured), then one
  sentence;
- each file checked against the Hub's size and LFS sha256 before the merge reads it; a damaged one is
  removed from the cache so the next run fetches it again;
- a stop (Ctrl-C, the wizard's cancel) returns at once, leaving the cache as huggingface_hub resumes it.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tui_merge.engine.control import MergeControl
from tui_merge.engine.events import DownloadProgress, EventCallback, FileDownloaded, Log
from tui_merge.errors import BadInputError, TuiMergeError
from tui_merge.models.hub import HubFile, HubRepo, hub_errors, own_progress
from tui_merge.units import human_bytes

ATTEMPTS = 6
"""Tries per file before giving up: a dropped connection or a busy Hub (429, 5xx) is tried again."""
BACKOFF_SECONDS = (1, 2, 4, 8, 16)
"""Waits between tries when the Hub gives no ``Retry-After``."""
MAX_RETRY_AFTER = 300
"""The longest ``Retry-After`` waited for; a longer one is cut to this."""
POLL_SECONDS = 0.25
"""How often a file's progress is read from its growing blob."""
_RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_HASH_CHUNK = 8 << 20


class DownloadStopped(TuiMergeError):
    """A stop came while downloading: the cache keeps what arrived, and huggingface_hub resumes it."""

    exit_code = 130


@dataclass(frozen=True)
class NeededFiles:
    """The files of one Hub repository that a merge reads and the cache lacks."""

    repo: HubRepo
    files: tuple[HubFile, ...]

    @property
    def nbytes(self) -> int:
        return sum(file.size for file in self.files)


def needed_files(entries) -> list[NeededFiles]:
    """The weight files to download for ``entries`` (the stored tensors a plan reads), by repository."""
    read: dict[HubRepo, set[Path]] = {}
    for entry in entries:
        for part in (entry, entry.scale.entry if entry.scale is not None else None):
            if part is not None and part.hub is not None:
                read.setdefault(part.hub, set()).add(part.file)
    needed = [(repo, repo.missing(paths)) for repo, paths in read.items()]  # one look per file, not per tensor
    return [NeededFiles(repo, tuple(repo.files[name] for name in names)) for repo, names in needed if names]


def refusal(needed: list[NeededFiles]) -> str:
    """Why a merge of Hub models does not start without ``--download``, and what it would fetch."""
    count = sum(len(group.files) for group in needed)
    total = sum(group.nbytes for group in needed)
    repos = ", ".join(f"{group.repo.repo_id} ({len(group.files)} of its files)" for group in needed)
    return (
        f"The merge reads weights that are on the Hub, not in the cache: {count} files, {human_bytes(total)}, "
        f"from {repos}; rerun with --download to fetch only those into the Hugging Face cache."
    )


def check_download_space(needed: list[NeededFiles], output: Path, output_bytes: int) -> None:
    """Refuse before the first byte when the downloads and the output do not fit on their disks."""
    from tui_merge.engine.disk import free_space

    wants: dict[int, list] = {}
    for group in needed:
        blobs = group.repo.cache_folder / "blobs"
        folder = next(parent for parent in (blobs, *blobs.parents) if parent.exists())
        partial = sum(_partial_size(group.repo, file) for file in group.files)
        device = folder.stat().st_dev
        wants.setdefault(device, [folder, free_bytes(folder), 0])[2] += group.nbytes - partial
    parent, free = free_space(output)
    wants.setdefault(parent.stat().st_dev, [parent, free, 0])[2] += output_bytes
    for folder, free, wanted in wants.values():
        if wanted > free:
            raise BadInputError(
                f"Not enough disk space to download and merge: {folder} needs {human_bytes(wanted)} (the "
                f"downloaded weights{' and the output' if folder == parent else ''}) and has {human_bytes(free)} "
                "free; free some, or set HF_HUB_CACHE to a larger disk."
            )


def free_bytes(folder: Path) -> int:
    """Bytes free on the filesystem of ``folder``."""
    return shutil.disk_usage(folder).free


def download(needed: list[NeededFiles], *, emit: EventCallback, control: MergeControl | None = None) -> None:
    """Fetch every needed file into the cache, checked against the Hub's size and sha256."""
    total = sum(group.nbytes for group in needed)
    count = sum(len(group.files) for group in needed)
    emit(Log("info", f"downloading {count} files ({human_bytes(total)}) from the Hub"))
    with own_progress():
        _download_all(needed, total, count, emit, control)
    emit(Log("info", f"downloaded and checked {count} files ({human_bytes(total)})"))


def _download_all(
    needed: list[NeededFiles], total: int, count: int, emit: EventCallback, control: MergeControl | None
) -> None:
    done = 0
    index = 0
    for group in needed:
        for file in group.files:
            index += 1

            def report(received: int, file=file, group=group, before=done, index=index) -> None:
                emit(DownloadProgress(group.repo.repo_id, file.name, index, count, received, file.size,
                                      before + received, total))  # fmt: skip

            path = _fetch(group.repo, file, report, control)
            _check(group.repo, file, path)
            done += file.size
            emit(FileDownloaded(group.repo.repo_id, file.name, file.size))


def _fetch(repo: HubRepo, file: HubFile, report: Callable[[int], None], control: MergeControl | None) -> Path:
    """One file into the cache, tried again on a dropped connection or a busy Hub; progress while it comes."""
    for attempt in range(ATTEMPTS):
        _stop_if_asked(repo, file, control)  # a stop that came while the previous file finished
        outcome: dict = {}
        worker = threading.Thread(target=_hub_download, args=(repo, file, outcome), daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(POLL_SECONDS)
            report(_partial_size(repo, file))
            _stop_if_asked(repo, file, control)
        if "path" in outcome:
            report(file.size)
            _stop_if_asked(repo, file, control)
            return outcome["path"]
        error = outcome["error"]
        wait = _retry_wait(error, attempt)
        if wait is None or attempt == ATTEMPTS - 1:
            with hub_errors(repo.repo_id, repo.commit):
                raise error
        _sleep(wait, control)
    raise AssertionError("unreachable")


def _stop_if_asked(repo: HubRepo, file: HubFile, control: MergeControl | None) -> None:
    if control is not None and control.stopped:
        raise DownloadStopped(
            f"Download stopped at {repo.repo_id}/{file.name}; the cache keeps what arrived and the next run "
            "resumes it: run the same command again."
        )


def _hub_download(repo: HubRepo, file: HubFile, outcome: dict) -> None:
    from huggingface_hub import hf_hub_download

    cache = repo.cache_folder.parent
    try:
        outcome["path"] = Path(hf_hub_download(repo.repo_id, file.name, revision=repo.commit, cache_dir=cache))
    except Exception as error:  # handed to the waiting thread, which says it
        outcome["error"] = error


def _retry_wait(error: Exception, attempt: int) -> float | None:
    """Seconds to wait before trying again, or None when trying again cannot help (gated, missing)."""
    from huggingface_hub.errors import HfHubHTTPError

    backoff = BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)]
    if isinstance(error, HfHubHTTPError):
        response = error.response
        if response is None or response.status_code not in _RETRIED_STATUSES:
            return None
        after = response.headers.get("Retry-After", "")
        return min(float(after), MAX_RETRY_AFTER) if after.strip().isdigit() else backoff
    if isinstance(error, (BadInputError, ValueError, KeyError)):
        return None
    return backoff  # the connection: refused, reset, timed out


def _sleep(seconds: float, control: MergeControl | None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if control is not None and control.stopped:
            raise DownloadStopped("Download stopped while waiting to try again; run the same command again.")
        time.sleep(min(POLL_SECONDS, max(deadline - time.monotonic(), 0)))


def _blob(repo: HubRepo, file: HubFile) -> Path:
    return repo.cache_folder / "blobs" / (file.sha256 or "")


def _partial_size(repo: HubRepo, file: HubFile) -> int:
    """Bytes of ``file`` in the cache so far: its finished blob, or the ``.incomplete`` one growing."""
    blob = _blob(repo, file)
    for path in (blob, blob.with_name(blob.name + ".incomplete")):
        try:
            return path.stat().st_size
        except OSError:
            continue
    return 0


def _check(repo: HubRepo, file: HubFile, path: Path) -> None:
    """The downloaded file has the Hub's size and sha256, or it leaves the cache and the merge does not start."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    if file.sha256 is not None and size == file.size:
        with path.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    if size == file.size and (file.sha256 is None or digest.hexdigest() == file.sha256):
        return
    found = f"{human_bytes(size)}" if size != file.size else f"sha256 {digest.hexdigest()[:16]}..."
    wanted = f"{human_bytes(file.size)}" if size != file.size else f"{file.sha256[:16]}..."
    blob = path.resolve()
    path.unlink(missing_ok=True)
    blob.unlink(missing_ok=True)
    raise BadInputError(
        f"{repo.repo_id}/{file.name} arrived as {found} where the Hub lists {wanted}: the download is damaged, "
        "so it was removed from the cache; run again to fetch it anew."
    )
