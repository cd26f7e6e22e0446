"""A stand-in for the Hugging Face Hub on 127.0.0.1, for tests that must never reach the network.

It serves model folders as repositories, speaking the part of the Hub's HTTP protocol that huggingface_hub uses
to fetch files and read safetensors headers: ``HEAD`` and ``GET`` on ``/{repo}/resolve/{revision}/{file}`` with
``X-Repo-Commit``, ``ETag`` (the LFS sha256 for weight files, as the Hub's ``X-Linked-Etag``), ``X-Linked-Size``
and byte ranges (``Range: bytes=a-b`` answered with 206). A repository can be gated (401 with the Hub's
``X-Error-Code: GatedRepo``); an unknown repository or file is a 404 with the Hub's error code. A weight
file is answered as the Hub answers its LFS files: a 302 carrying its commit, sha256 and size, to
``/cdn/{repo}/{commit}/{file}`` where the bytes are served. Repository info
(``/api/models/{repo}[/revision/{rev}]``) lists the files with their sizes and LFS sha256, as ``model_info(...,
files_metadata=True)`` reads it. A repository added twice keeps both commits, so an old commit still resolves.
Every body byte sent is counted, per file, so a test can assert how much a preflight fetched; ``faults`` makes a
file fail (a status with ``Retry-After``, or a connection dropped after some bytes) a given number of times, and
``corrupt`` serves a file with a changed byte under its true sha256.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<file>.+)$")
_INFO = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+?)(/revision/(?P<revision>[^/]+))?$")
_CDN = re.compile(r"^/cdn/(?P<repo>[^/]+/[^/]+)/(?P<revision>[0-9a-f]{40})/(?P<file>.+)$")
_LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".onnx")


@dataclass
class Fault:
    """What the next ``times`` downloads of a file (GETs of all of it, or of its rest from an offset) meet:
    ``status`` (with ``Retry-After: retry_after``), or, when status is None, a connection closed after
    ``drop_after`` body bytes."""

    times: int = 1
    status: int | None = None
    retry_after: int = 0
    drop_after: int = 0


class HubServer:
    """``with HubServer() as hub: hub.add("org/a", folder)``; ``hub.url`` is the endpoint to point
    huggingface_hub at, ``hub.sent`` the body bytes sent by file name."""

    def __init__(self) -> None:
        self.refs: dict[str, dict[str, str]] = {}
        """Each repository's branches and the commit each points at."""
        self.commits: dict[str, dict[str, Path]] = {}
        """Each repository's commits and the folder each serves."""
        self.gated: set[str] = set()
        self.token = "hf_stand_in_token"
        """The one token that opens a gated repository (``Authorization: Bearer <token>``)."""
        self.sent: Counter[str] = Counter()
        self.faults: dict[str, Fault] = {}
        """File name -> the fault its next GETs meet."""
        self.requests: list[str] = []
        """Every request as ``METHOD path``, in order."""
        self.corrupt: set[str] = set()
        """File names served with their last byte changed (the listed size and sha256 stay the true ones)."""
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, repo_id: str, folder: Path, *, gated: bool = False, branch: str = "main") -> str:
        """Serve ``folder`` as ``repo_id`` at ``branch``; returns its commit hash (a digest of its files' names and
        bytes). Adding the repository again moves the branch and keeps the old commit."""
        commit = _commit(Path(folder))
        self.commits.setdefault(repo_id, {})[commit] = Path(folder)
        self.refs.setdefault(repo_id, {})[branch] = commit
        if gated:
            self.gated.add(repo_id)
        return commit

    def resolve(self, repo_id: str, revision: str) -> str | None:
        """The commit a branch or commit hash names, None when the repository has no such revision."""
        if revision in self.refs[repo_id]:
            return self.refs[repo_id][revision]
        return revision if revision in self.commits[repo_id] else None

    def take_fault(self, name: str) -> Fault | None:
        with self._lock:
            fault = self.faults.get(name)
            if fault is None or fault.times <= 0:
                return None
            fault.times -= 1
            return fault

    def count(self, name: str, size: int) -> None:
        with self._lock:
            self.sent[name] += size

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet: the tests read the counters instead
            pass

        def do_HEAD(self) -> None:  # noqa: N802 - http.server's naming
            self._answer(body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._answer(body=True)

        def _error(self, status: int, code: str, message: str) -> None:
            payload = f'{{"error": "{message}"}}'.encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def _answer(self, *, body: bool) -> None:
            hub.requests.append(f"{self.command} {self.path}")
            target = unquote(self.path.split("?")[0])
            cdn = _CDN.match(target)
            match = cdn or _RESOLVE.match(target) or _INFO.match(target)
            if match is None or match["repo"] not in hub.refs:
                self._error(404, "RepoNotFound", "Repository not found")
                return
            repo = match["repo"]
            if repo in hub.gated and not cdn and self.headers.get("Authorization") != f"Bearer {hub.token}":
                self._error(401, "GatedRepo", "Access to this repository is restricted")
                return
            commit = hub.resolve(repo, match["revision"] or "main")
            if commit is None:
                self._error(404, "RevisionNotFound", "Invalid rev id")
                return
            folder = hub.commits[repo][commit]
            if "file" not in match.groupdict():
                self._info(repo, commit, folder)
                return
            path = folder / match["file"]
            if not path.is_file():
                self._error(404, "EntryNotFound", "Entry not found")
                return
            if not cdn and path.name.endswith(_LFS_SUFFIXES):
                self._redirect(repo, commit, match["file"], path)
                return
            # A fault meets downloads (the whole file, or its rest from an offset), never a header's closed range.
            whole = re.fullmatch(r"(bytes=\d+-)?", self.headers.get("Range", "")) is not None
            fault = hub.take_fault(match["file"]) if body and whole else None
            if fault is not None and fault.status is not None:
                self.send_response(fault.status)
                self.send_header("Retry-After", str(fault.retry_after))
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = path.read_bytes()
            etag_data = data
            if match["file"] in hub.corrupt and whole and data:
                data = data[:-1] + bytes([data[-1] ^ 0xFF])
            start, stop = 0, len(data)
            wanted = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
            if wanted:
                start = int(wanted[1])
                stop = min(len(data), int(wanted[2]) + 1) if wanted[2] else len(data)
            self.send_response(206 if wanted else 200)
            self.send_header("X-Repo-Commit", commit)
            etag = (
                hashlib.sha256(etag_data).hexdigest()
                if path.name.endswith(_LFS_SUFFIXES)
                else hashlib.sha1(etag_data).hexdigest()
            )
            self.send_header("ETag", f'"{etag}"')
            if path.name.endswith(_LFS_SUFFIXES):
                self.send_header("X-Linked-Etag", f'"{etag}"')
                self.send_header("X-Linked-Size", str(len(data)))
            if wanted:
                self.send_header("Content-Range", f"bytes {start}-{stop - 1}/{len(data)}")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(stop - start))
            self.end_headers()
            if body:
                sent = data[start:stop] if fault is None else data[start : start + fault.drop_after]
                # Counted before the bytes go out: the client, done reading, must find them counted.
                hub.count(match["file"], len(sent))
                self.wfile.write(sent)
                if fault is not None:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)

        def _redirect(self, repo: str, commit: str, name: str, path: Path) -> None:
            """A weight file's bytes live elsewhere, as the Hub's LFS files do: 302 with the file's metadata."""
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            self.send_response(302)
            self.send_header("Location", f"{hub.url}/cdn/{repo}/{commit}/{name}")
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{digest}"')
            self.send_header("X-Linked-Etag", f'"{digest}"')
            self.send_header("X-Linked-Size", str(path.stat().st_size))
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _info(self, repo: str, commit: str, folder: Path) -> None:
            files = sorted(path for path in folder.rglob("*") if path.is_file())
            info = {"id": repo, "modelId": repo, "sha": commit, "private": False, "gated": repo in hub.gated}
            info["siblings"] = [_sibling(path, folder) for path in files]
            payload = json.dumps(info).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

    return Handler


def _commit(folder: Path) -> str:
    digest = hashlib.sha1()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _sibling(path: Path, folder: Path) -> dict:
    data = path.read_bytes()
    sibling = {"rfilename": path.relative_to(folder).as_posix(), "size": len(data)}
    sibling["blobId"] = hashlib.sha1(data).hexdigest()
    if path.name.endswith(_LFS_SUFFIXES):
        sibling["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
    return sibling
