"""Hub repositories read before, or instead of, downloading them: file list, metadata files, headers, byte ranges.

A hub id whose weights the local cache does not hold is looked up on the Hub (``HF_ENDPOINT``, default
huggingface.co): its commit and file list with sizes and LFS sha256 (``model_info(files_metadata=True)``),
then its small metadata files (config, generation config, tokenizer, weight index) are fetched into the
standard Hugging Face cache with ``hf_hub_download``, and each safetensors shard's header is read with two
HTTP range requests at most. Every finding ``inspect`` makes for a folder is then made for the repository
with nothing of its weights downloaded; the lineage probe reads its few small tensors by range too.

The headers are read here, not with huggingface_hub's ``get_safetensors_metadata``, because that keeps
each tensor's offsets relative to the end of a header whose length it drops, and a ranged read of one
tensor needs absolute offsets; the parsing and its damage checks are the local reader's
(``safetensors_header.parse_header``), so a damaged remote file reads as the same sentence.

The token is huggingface_hub's own (``hf auth login`` or ``HF_TOKEN``), sent by its header builder and
never printed or written anywhere. ``HF_HUB_OFFLINE=1`` keeps every lookup in the local cache.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tui_merge.errors import BadInputError, TuiMergeError
from tui_merge.models.safetensors_header import HeaderEntry, header_length, parse_header

METADATA_SUFFIXES = (".json", ".txt", ".model", ".jinja", ".tiktoken")
"""Files at a repository's root that preflight fetches: config, generation config, tokenizer, weight index."""
MAX_METADATA_BYTES = 64 << 20
"""The largest metadata file fetched (a 256k-token ``tokenizer.json`` is about 35 MB)."""
HEADER_PROBE_BYTES = 100_000
"""Bytes asked for in a header's first request; a larger header takes one more request for the rest."""
HEADER_THREADS = 8
"""Shard headers read at once: a 60-shard checkpoint is read in a second, not sixty round trips."""


class HubUnavailable(TuiMergeError):
    """The Hub could not be reached or kept failing: nothing is wrong with the input, try again later."""

    exit_code = 1


@dataclass(frozen=True)
class HubFile:
    """One file of a repository at a commit, as the Hub lists it."""

    name: str
    """Path in the repository (``model-00001-of-00002.safetensors``)."""
    size: int
    sha256: str | None
    """The LFS sha256 (weights and other large files); None for a small file kept in git."""


class HubRepo:
    """A model repository on the Hub, pinned to one commit, and the bytes read from it so far."""

    def __init__(self, repo_id: str, commit: str, files: dict[str, HubFile], snapshot: Path) -> None:
        self.repo_id = repo_id
        self.commit = commit
        """The commit hash every file is read at, whatever branch or tag was asked for."""
        self.files = files
        self.snapshot = snapshot
        """The cache folder of this commit (``.../models--org--name/snapshots/<commit>``): its metadata files are
        there; a weight file is there once downloaded."""
        self.fetched = 0
        """Bytes of weight files read by range (headers and probe tensors)."""
        self._lock = threading.Lock()

    @property
    def cache_folder(self) -> Path:
        """The repository's folder in the cache (``models--org--name``), where huggingface_hub keeps its blobs."""
        return self.snapshot.parent.parent

    def missing(self, paths: set[Path]) -> list[str]:
        """The repository paths of those of ``paths`` (snapshot paths) not in the cache yet, each checked once."""
        return sorted(file_name(self, path) for path in paths if not path.is_file())

    @property
    def pinned(self) -> str:
        """``org/name@commit``: the reference that a replay resolves to exactly these files."""
        return f"{self.repo_id}@{self.commit}"

    def read_range(self, name: str, begin: int, end: int) -> bytes:
        """Bytes ``begin`` to ``end`` (exclusive) of file ``name``, with one range request."""
        from huggingface_hub import get_session, hf_hub_url
        from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

        if end <= begin:
            return b""
        url = hf_hub_url(self.repo_id, name, revision=self.commit)
        with hub_errors(self.repo_id, self.commit):
            response = get_session().get(url, headers={**build_hf_headers(), "Range": f"bytes={begin}-{end - 1}"})
            hf_raise_for_status(response)
        data = response.content
        if response.status_code == 200 and len(data) >= end:  # a mirror that ignores ranges sends it all
            data = data[begin:end]
        if len(data) != end - begin:
            raise HubUnavailable(
                f"The Hub sent {len(data)} bytes of {self.repo_id}/{name} where bytes {begin}-{end - 1} were asked "
                "for; the transfer broke: try again."
            )
        with self._lock:
            self.fetched += len(data)
        return data

    def header(self, name: str) -> dict[str, HeaderEntry]:
        """The safetensors header of file ``name``: the first request usually holds it whole."""
        size = self.files[name].size
        where = f"{self.repo_id}/{name}"
        first = self.read_range(name, 0, min(size, HEADER_PROBE_BYTES))
        length = header_length(where, first, size)
        raw = first[8 : 8 + length]
        if len(raw) < length:
            raw += self.read_range(name, len(first), 8 + length)
        return parse_header(where, length, raw, size)

    def headers(self, names: list[str]) -> dict[str, dict[str, HeaderEntry]]:
        """The headers of several files, read at once."""
        with ThreadPoolExecutor(max_workers=HEADER_THREADS) as pool:
            return dict(zip(names, pool.map(self.header, names)))


@contextmanager
def own_progress() -> Iterator[None]:
    """huggingface_hub's progress bars off while it works for us: our own progress is shown instead, and its
    bars on stderr would tear through the wizard's screen or the run's bar."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) keeps huggingface_hub off the network."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def open_hub_repo(repo_id: str, revision: str | None, cache_dir: Path | None, marker: str) -> HubRepo:
    """Look ``repo_id`` up at ``revision`` (default its main branch), pin the commit, and fetch its metadata files
    into the cache; ``marker`` is the file a usable repository must have (``config.json``)."""
    from huggingface_hub import HfApi, hf_hub_download

    with hub_errors(repo_id, revision):
        info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    files = {
        sibling.rfilename: HubFile(
            sibling.rfilename,
            sibling.lfs.size if sibling.lfs else sibling.size or 0,
            sibling.lfs.sha256 if sibling.lfs else None,
        )
        for sibling in info.siblings or []
    }
    at = f" at {revision}" if revision else ""
    if marker not in files:
        raise BadInputError(
            f"{repo_id}{at} on the Hub has no {marker}; it is not a transformers "
            f"{'adapter' if marker == 'adapter_config.json' else 'model'}: check the id."
        )
    wanted = metadata_files(files)
    if marker == "adapter_config.json":  # an adapter is megabytes, and read whole to be applied
        wanted += [file for file in files.values() if "/" not in file.name and file.name.endswith(".safetensors")]
    snapshot = None
    with hub_errors(repo_id, revision), own_progress():
        for file in wanted:
            fetched = Path(hf_hub_download(repo_id, file.name, revision=info.sha, cache_dir=cache_dir))
            if file.name == marker:
                snapshot = fetched.parent
    return HubRepo(repo_id, info.sha, files, snapshot)


def metadata_files(files: dict[str, HubFile]) -> list[HubFile]:
    """The small files at the repository's root that describe the model (never weights, never subfolders)."""
    return [
        file
        for file in files.values()
        if "/" not in file.name and file.name.endswith(METADATA_SUFFIXES) and file.size <= MAX_METADATA_BYTES
    ]


@contextmanager
def hub_errors(repo_id: str, revision: str | None) -> Iterator[None]:
    """Turn what the Hub or the network answers into one sentence naming the repository and what to do."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    endpoint = constants.ENDPOINT
    try:
        yield
    except TuiMergeError:
        raise
    except GatedRepoError:
        raise BadInputError(
            f"{repo_id} is gated: accept its licence at {endpoint}/{repo_id}, then log in with `hf auth login` "
            "(or set HF_TOKEN) and try again."
        ) from None
    except RevisionNotFoundError:
        raise BadInputError(
            f"{repo_id} has no revision {revision!r} on the Hub; give a branch, tag or commit hash it has."
        ) from None
    except RepositoryNotFoundError:
        raise BadInputError(
            f"{repo_id} is neither a folder nor a model on the Hub ({endpoint}); check the id (a private "
            "repository needs `hf auth login` or HF_TOKEN)."
        ) from None
    except LocalEntryNotFoundError as error:  # huggingface_hub's word for a file it could not reach
        cause = error.__cause__ or error
        raise HubUnavailable(
            f"Cannot reach the Hub ({endpoint}) for {repo_id}: {type(cause).__name__}: {cause}. Check the "
            "network, or set HF_HUB_OFFLINE=1 to use only the local cache."
        ) from None
    except EntryNotFoundError as error:
        raise BadInputError(f"{repo_id} on the Hub lacks a file it lists ({error}); try again later.") from None
    except OfflineModeIsEnabled:
        raise BadInputError(f"{repo_id} is needed from the Hub but HF_HUB_OFFLINE is set; unset it.") from None
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else "an error"
        raise HubUnavailable(
            f"The Hub ({endpoint}) answered {status} for {repo_id}; try again later, or give a local folder."
        ) from None
    except Exception as error:  # the network itself: refused, reset, timed out, no route, bad TLS
        raise HubUnavailable(
            f"Cannot reach the Hub ({endpoint}) for {repo_id}: {type(error).__name__}: {error}. Check the "
            "network, or set HF_HUB_OFFLINE=1 to use only the local cache."
        ) from None


def file_name(repo: HubRepo, path: Path) -> str:
    """The repository path of a file under the snapshot folder."""
    return path.relative_to(repo.snapshot).as_posix()
