"""A stand-in for the Hugging Face Hub on 127.0.0.1, for tests that must never reach the network.

It serves model folders as repositories, speaking the part of the Hub's HTTP protocol that huggingface_hub uses
to fetch files and read safetensors headers: ``HEAD`` and ``GET`` on ``/{repo}/resolve/{revision}/{file}`` with
``X-Repo-Commit``, ``ETag`` (the LFS sha256 for weight files, as the Hub's ``X-Linked-Etag``), ``X-Linked-Size``
and byte ranges (``Range: bytes=a-b`` answered with 206). A repository can be gated (401 with the Hub's
``X-Error-Code: GatedRepo``); an unknown repository or file is a 404 with the Hub's error code. Every body byte
sent is counted, per file, so a test can assert how much a preflight fetched.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<file>.+)$")
_LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".onnx")


class HubServer:
    """``with HubServer() as hub: hub.add("org/a", folder)``; ``hub.url`` is the endpoint to point
    huggingface_hub at, ``hub.sent`` the body bytes sent by file name."""

    def __init__(self) -> None:
        self.repos: dict[str, Path] = {}
        self.gated: set[str] = set()
        self.sent: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, repo_id: str, folder: Path, *, gated: bool = False) -> str:
        """Serve ``folder`` as ``repo_id``; returns its commit hash (a digest of its files' names and bytes)."""
        self.repos[repo_id] = Path(folder)
        if gated:
            self.gated.add(repo_id)
        return self.commit(repo_id)

    def commit(self, repo_id: str) -> str:
        digest = hashlib.sha1()
        for path in sorted(self.repos[repo_id].rglob("*")):
            if path.is_file():
                digest.update(path.relative_to(self.repos[repo_id]).as_posix().encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()

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
            match = _RESOLVE.match(unquote(self.path.split("?")[0]))
            if match is None or match["repo"] not in hub.repos:
                self._error(404, "RepoNotFound", "Repository not found")
                return
            repo = match["repo"]
            if repo in hub.gated and not self.headers.get("Authorization"):
                self._error(401, "GatedRepo", "Access to this repository is restricted")
                return
            commit = hub.commit(repo)
            if match["revision"] not in ("main", commit):
                self._error(404, "RevisionNotFound", "Invalid rev id")
                return
            path = hub.repos[repo] / match["file"]
            if not path.is_file():
                self._error(404, "EntryNotFound", "Entry not found")
                return
            data = path.read_bytes()
            start, stop = 0, len(data)
            wanted = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
            if wanted:
                start = int(wanted[1])
                stop = min(len(data), int(wanted[2]) + 1) if wanted[2] else len(data)
            self.send_response(206 if wanted else 200)
            self.send_header("X-Repo-Commit", commit)
            etag = (
                hashlib.sha256(data).hexdigest()
                if path.name.endswith(_LFS_SUFFIXES)
                else hashlib.sha1(data).hexdigest()
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
                # Counted before the bytes go out: the client, done reading, must find them counted.
                hub.count(match["file"], stop - start)
                self.wfile.write(data[start:stop])

    return Handler
