"""A small Hugging Face Hub on 127.0.0.1 for tests: the HTTP endpoints the real `huggingface_hub` client
calls to push a dataset and pull it back, with repositories held in memory.

What it speaks (dataset and model repos):

- `POST /api/repos/create`; `GET /api/{type}s/{repo}[/revision/{rev}]` (repo info: sha, siblings);
- `POST /api/validate-yaml` (the card's front matter must parse as YAML);
- `POST /api/{type}s/{repo}/preupload/{rev}`: `lfs` for Parquet and binary files, `regular` for small text, and
  the remote oid of a file already there (the client then leaves an unchanged file out of the commit);
- `POST /{datasets/}{repo}.git/info/lfs/objects/batch` (no `actions` for an object already stored: the client
  skips its upload) and `PUT /_lfs/{oid}` (the body must hash to the oid);
- `POST /api/{type}s/{repo}/commit/{rev}`: NDJSON header, `file` (base64), `lfsFile`, `deletedFile`,
  `deletedFolder`; `parentCommit` checked;
- `POST /api/{type}s/{repo}/tag/{rev}` (409 when the tag exists);
- `GET /api/{type}s/{repo}/tree/{rev}[/{path}]` (`recursive`), `POST .../paths-info/{rev}`;
- `HEAD`/`GET /{datasets/}{repo}/resolve/{rev}/{path}` with `ETag`, `X-Repo-Commit`, `Content-Length` (and
  `Range`).

Revisions are branches (`main`), tags and commit ids. Errors carry the `X-Error-Code` header the client maps to
its exceptions (RepoNotFound, RevisionNotFound, EntryNotFound). `fail()` injects a status (429 with
`Retry-After: 0`, 500, ...) or a dropped connection into the next matching requests, and the server counts the
bytes it received per kind of request (`received`), so tests can see what an upload sent. Nothing checks
the token: a test that wants to see it can read `auth_headers_seen` (the count of requests that carried one).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import re
import socket
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

REGULAR_MAX_BYTES = 10 * 1024 * 1024
_TYPES = {"datasets": "dataset", "models": "model", "spaces": "space"}


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


@dataclass(frozen=True)
class FileEntry:
    size: int
    sha256: str
    lfs: bool

    def oid(self, blobs: dict[str, bytes]) -> str:
        """The oid the preupload and tree endpoints report: sha256 for LFS files, the git blob id otherwise."""
        return self.sha256 if self.lfs else git_blob_oid(blobs[self.sha256])


@dataclass
class Commit:
    oid: str
    parent: str | None
    summary: str
    description: str
    files: dict[str, FileEntry]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def resolve(self, rev: str) -> Commit | None:
        oid = self.branches.get(rev) or self.tags.get(rev) or (rev if rev in self.commits else None)
        return self.commits.get(oid) if oid else None


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    action: int | str  # an HTTP status, or "drop" (the connection is closed without an answer)
    times: int
    after: int = 0  # matching requests let through first
    hits: int = 0


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class FakeHub:
    """The state of the server: repositories, LFS storage, injected faults and counters."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> content (LFS storage and regular files alike)
        self.faults: list[Fault] = []
        self.received: Counter[str] = Counter()  # request body bytes per kind (lfs, commit, preupload, ...)
        self.requests: list[tuple[str, str, int | str]] = []  # (method, path, status or "drop")
        self.auth_headers_seen = 0
        self._ids = itertools.count()
        self.url = ""

    # -- what tests call ------------------------------------------------------------------------

    def fail(self, method: str, path_regex: str, action: int | str, times: int = 1, after: int = 0) -> Fault:
        """After `after` of them, the next `times` requests `method` whose path matches `path_regex` get `action`:
        an HTTP status (429 comes with Retry-After: 0) or "drop" (the body is read, then the connection is closed
        unanswered)."""
        f = Fault(method.upper(), re.compile(path_regex), action, times, after)
        with self.lock:
            self.faults.append(f)
        return f

    def repo(self, repo_id: str, repo_type: str = "dataset") -> Repo:
        return self.repos[(repo_type, repo_id)]

    def files(self, repo_id: str, rev: str = "main", repo_type: str = "dataset") -> dict[str, bytes]:
        commit = self.repo(repo_id, repo_type).resolve(rev)
        assert commit is not None, rev
        return {p: self.blobs[e.sha256] for p, e in commit.files.items()}

    def tamper(self, repo_id: str, path: str, data: bytes, rev: str = "main", repo_type: str = "dataset") -> None:
        """Replace a file's content in place, in the commit `rev` points to (history rewritten: the tags that
        point to that commit now serve the new content), as a compromised or buggy storage would."""
        with self.lock:
            commit = self.repo(repo_id, repo_type).resolve(rev)
            assert commit is not None and path in commit.files, path
            sha = hashlib.sha256(data).hexdigest()
            self.blobs[sha] = data
            commit.files[path] = FileEntry(len(data), sha, commit.files[path].lfs)

    def remove(self, repo_id: str, path: str, rev: str = "main", repo_type: str = "dataset") -> None:
        """Take a file out of the commit `rev` points to (a partly present upload)."""
        with self.lock:
            commit = self.repo(repo_id, repo_type).resolve(rev)
            assert commit is not None
            del commit.files[path]

    # -- repository operations ------------------------------------------------------------------

    def _new_oid(self, *parts: str) -> str:
        return hashlib.sha1("\x00".join([*parts, str(next(self._ids))]).encode()).hexdigest()

    def _get(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository Not Found for url: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    def _commit_at(self, repo: Repo, rev: str) -> Commit:
        commit = repo.resolve(rev)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return commit

    def _store(self, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        self.blobs.setdefault(sha, data)
        return sha

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        if (repo_type, repo_id) in self.repos:
            raise HubError(409, "You already created this dataset repo")
        repo = Repo(repo_type, repo_id, private)
        attributes = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
        first = Commit(self._new_oid(repo_id), None, "initial commit", "",
                       {".gitattributes": FileEntry(len(attributes), self._store(attributes), False)})
        repo.commits[first.oid] = first
        repo.branches["main"] = first.oid
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def commit(self, repo: Repo, rev: str, lines: list[dict[str, Any]]) -> Commit:
        if rev not in repo.branches:
            raise HubError(404, f"Invalid rev id: {rev} (not a branch)", "RevisionNotFound")
        head = repo.commits[repo.branches[rev]]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the first line of a commit must be its header")
        header = lines[0]["value"]
        parent = header.get("parentCommit")
        if parent and not head.oid.startswith(parent):
            raise HubError(412, f"A commit has happened since. Please refresh and try again. ({parent} is not the "
                           f"head {head.oid})")
        files = dict(head.files)
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value") or {}
            path = value.get("path", "")
            if key == "file":
                data = base64.b64decode(value["content"])
                files[path] = FileEntry(len(data), self._store(data), False)
            elif key == "lfsFile":
                oid, size = value["oid"], value["size"]
                if oid not in self.blobs or len(self.blobs[oid]) != size:
                    raise HubError(422, f"LFS object {oid} of {path} was not uploaded")
                files[path] = FileEntry(size, oid, True)
            elif key == "deletedFile":
                if path not in files:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                del files[path]
            elif key == "deletedFolder":
                prefix = path.rstrip("/") + "/"
                files = {p: e for p, e in files.items() if not p.startswith(prefix)}
            else:
                raise HubError(400, f"unknown commit operation {key!r}")
        new = Commit(self._new_oid(repo.repo_id, head.oid, header.get("summary", "")), head.oid,
                     header.get("summary", ""), header.get("description", ""), files)
        repo.commits[new.oid] = new
        repo.branches[rev] = new.oid
        return new


class _Drop(Exception):
    """Close the connection without an answer."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HubServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    @property
    def hub(self) -> FakeHub:
        return self.server.hub

    # -- plumbing -------------------------------------------------------------------------------

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), headers)

    def _fault(self, path: str) -> int | str | None:
        with self.hub.lock:
            for f in self.hub.faults:
                if f.times > 0 and f.method == self.command and f.pattern.search(path):
                    if f.after > 0:
                        f.after -= 1
                        continue
                    f.times -= 1
                    f.hits += 1
                    return f.action
        return None

    def _handle(self) -> None:
        split = urlsplit(self.path)
        path, query = unquote(split.path), parse_qs(split.query)
        raw_path = split.path
        body = self._body() if self.command in ("POST", "PUT") else b""
        kind = _kind(self.command, raw_path)
        with self.hub.lock:
            self.hub.received[kind] += len(body)
            if self.headers.get("Authorization"):
                self.hub.auth_headers_seen += 1
        action = self._fault(raw_path)
        if action == "drop":
            with self.hub.lock:
                self.hub.requests.append((self.command, raw_path, "drop"))
            raise _Drop
        if isinstance(action, int):
            with self.hub.lock:
                self.hub.requests.append((self.command, raw_path, action))
            headers = {"Retry-After": "0"} if action == 429 else {}
            self._json(action, {"error": f"injected {action}"}, headers)
            return
        try:
            status = self._route(raw_path, path, query, body)
        except HubError as e:
            status = e.status
            headers = {"X-Error-Message": e.message}
            if e.code:
                headers["X-Error-Code"] = e.code
            self._json(e.status, {"error": e.message}, headers)
        with self.hub.lock:
            self.hub.requests.append((self.command, raw_path, status))

    def do_GET(self) -> None:
        self._safely()

    def do_HEAD(self) -> None:
        self._safely()

    def do_POST(self) -> None:
        self._safely()

    def do_PUT(self) -> None:
        self._safely()

    def _safely(self) -> None:
        try:
            self._handle()
        except _Drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    # -- routes ---------------------------------------------------------------------------------

    def _route(self, raw: str, path: str, query: dict[str, list[str]], body: bytes) -> int:
        hub = self.hub
        if raw == "/api/repos/create" and self.command == "POST":
            return self._create_repo(json.loads(body))
        if raw == "/api/validate-yaml" and self.command == "POST":
            return self._validate_yaml(json.loads(body))
        if raw.startswith("/_lfs/") and self.command == "PUT":
            return self._lfs_put(raw[len("/_lfs/"):], body)
        if raw.startswith("/_lfs_verify/") and self.command == "POST":
            oid = raw[len("/_lfs_verify/"):]
            if oid not in hub.blobs:
                raise HubError(404, f"LFS object {oid} not found")
            self._json(200, {"success": True})
            return 200
        m = re.match(r"^/api/(datasets|models|spaces)/([^/]+/[^/]+)(?:/(.*))?$", raw)
        if m:
            return self._api(_TYPES[m.group(1)], unquote(m.group(2)), m.group(3) or "", query, body)
        m = re.match(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+?)\.git/info/lfs/objects/batch$", raw)
        if m and self.command == "POST":
            return self._lfs_batch(_TYPES[m.group(1)] if m.group(1) else "model", m.group(2), json.loads(body))
        m = re.match(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", raw)
        if m and self.command in ("GET", "HEAD"):
            repo_type = _TYPES[m.group(1)] if m.group(1) else "model"
            return self._resolve(repo_type, unquote(m.group(2)), unquote(m.group(3)), unquote(m.group(4)))
        raise HubError(404, f"no route for {self.command} {raw}")

    def _create_repo(self, payload: dict[str, Any]) -> int:
        repo_id = f"{payload.get('organization')}/{payload['name']}" if payload.get("organization") else payload["name"]
        repo_type = payload.get("type") or "model"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"{self.hub.url}/{prefix}{repo_id}"
        with self.hub.lock:
            if (repo_type, repo_id) in self.hub.repos:  # (the Hub answers 409 with the repo's url)
                self._json(409, {"error": f"You already created this {repo_type} repo", "url": url})
                return 409
            self.hub.create_repo(repo_type, repo_id, payload.get("visibility") == "private" or bool(
                payload.get("private")))
        self._json(200, {"url": url, "name": repo_id})
        return 200

    def _validate_yaml(self, payload: dict[str, Any]) -> int:
        content = payload.get("content", "")
        errors = []
        if content.startswith("---"):
            head = content[3:].split("\n---", 1)[0]
            try:
                if not isinstance(yaml.safe_load(head) or {}, dict):
                    errors.append({"message": "the metadata is not a mapping"})
            except yaml.YAMLError as e:
                errors.append({"message": f"invalid YAML: {e}"})
        status = 400 if errors else 200
        self._json(status, {"errors": errors, "warnings": []})
        return status

    def _api(self, repo_type: str, repo_id: str, rest: str, query: dict[str, list[str]], body: bytes) -> int:
        hub = self.hub
        with hub.lock:
            repo = hub._get(repo_type, repo_id)
            if self.command == "GET" and (rest == "" or rest.startswith("revision/")):
                rev = unquote(rest[len("revision/"):]) if rest else "main"
                commit = hub._commit_at(repo, rev)
                siblings = [{"rfilename": p, "size": e.size} for p, e in sorted(commit.files.items())]
                self._json(200, {"id": repo_id, "sha": commit.oid, "private": repo.private, "siblings": siblings,
                                 "tags": [], "lastModified": "2026-01-01T00:00:00.000Z"})
                return 200
            op, _, tail = rest.partition("/")
            rev_q, _, sub = tail.partition("/")
            rev = unquote(rev_q)
            if op == "preupload" and self.command == "POST":
                commit = hub._commit_at(repo, rev)
                out = []
                for f in json.loads(body)["files"]:
                    sample = base64.b64decode(f["sample"])
                    lfs = f["path"].endswith((".parquet", ".arrow", ".bin")) or f["size"] > REGULAR_MAX_BYTES or \
                        b"\x00" in sample
                    existing = commit.files.get(f["path"])
                    out.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False,
                                "oid": existing.oid(hub.blobs) if existing is not None and existing.lfs == lfs
                                else None})
                self._json(200, {"files": out, "commitOid": commit.oid})
                return 200
            if op == "commit" and self.command == "POST":
                lines = [json.loads(x) for x in body.splitlines() if x.strip()]
                new = hub.commit(repo, rev, lines)
                prefix = "" if repo_type == "model" else f"{repo_type}s/"
                self._json(200, {"success": True, "commitOid": new.oid, "pullRequestUrl": None,
                                 "commitUrl": f"{hub.url}/{prefix}{repo_id}/commit/{new.oid}"})
                return 200
            if op == "tag" and self.command == "POST":
                commit = hub._commit_at(repo, rev)
                tag = json.loads(body)["tag"]
                if tag in repo.tags:
                    raise HubError(409, f"Tag {tag} already exists")
                repo.tags[tag] = commit.oid
                self._json(200, {})
                return 200
            if op == "tree" and self.command == "GET":
                commit = hub._commit_at(repo, rev)
                recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                self._json(200, _tree(commit, hub.blobs, unquote(sub).strip("/"), recursive))
                return 200
            if op == "paths-info" and self.command == "POST":
                commit = hub._commit_at(repo, rev)
                wanted = _form_or_json(body, self.headers.get("Content-Type", ""))
                entries = _tree(commit, hub.blobs, "", True)
                entries += _folders(commit, hub.blobs)
                self._json(200, [e for e in entries if e["path"] in wanted])
                return 200
        raise HubError(404, f"no route for {self.command} /api/{repo_type}s/{repo_id}/{rest}")

    def _lfs_batch(self, repo_type: str, repo_id: str, payload: dict[str, Any]) -> int:
        hub = self.hub
        with hub.lock:
            hub._get(repo_type, repo_id)
            objects = []
            for o in payload.get("objects", []):
                entry: dict[str, Any] = {"oid": o["oid"], "size": o["size"], "authenticated": True}
                if o["oid"] not in hub.blobs:
                    entry["actions"] = {"upload": {"href": f"{hub.url}/_lfs/{o['oid']}", "header": {}},
                                        "verify": {"href": f"{hub.url}/_lfs_verify/{o['oid']}", "header": {}}}
                objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects})
        return 200

    def _lfs_put(self, oid: str, body: bytes) -> int:
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, f"the uploaded bytes do not hash to {oid}")
        with self.hub.lock:
            self.hub.blobs[oid] = body
        self._send(200)
        return 200

    def _resolve(self, repo_type: str, repo_id: str, rev: str, path: str) -> int:
        hub = self.hub
        with hub.lock:
            repo = hub._get(repo_type, repo_id)
            commit = hub._commit_at(repo, rev)
            entry = commit.files.get(path)
            if entry is None:
                raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
            data = hub.blobs[entry.sha256]
            etag = entry.oid(hub.blobs)
        headers = {"ETag": f'"{etag}"', "X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes"}
        if entry.lfs:
            headers["X-Linked-Etag"] = f'"{etag}"'
            headers["X-Linked-Size"] = str(len(data))
        m = re.match(r"^bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
        if m and self.command == "GET":
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else len(data) - 1
            part = data[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{start + len(part) - 1}/{len(data)}"
            self._send(206, part, headers, "application/octet-stream")
            return 206
        self._send(200, data, headers, "application/octet-stream")
        return 200


def _kind(method: str, raw: str) -> str:
    if raw.startswith("/_lfs/"):
        return "lfs"
    for k in ("commit", "preupload", "tag", "tree", "paths-info", "validate-yaml", "repos/create"):
        if f"/{k}" in raw:
            return k
    if raw.endswith("/info/lfs/objects/batch"):
        return "lfs-batch"
    return "other"


def _form_or_json(body: bytes, content_type: str) -> set[str]:
    if "json" in content_type:
        data = json.loads(body or b"{}")
        paths = data.get("paths", [])
    else:
        paths = parse_qs(body.decode()).get("paths", [])
    return {p.strip("/") for p in ([paths] if isinstance(paths, str) else paths)}


def _file_json(path: str, e: FileEntry, blobs: dict[str, bytes]) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "file", "path": path, "size": e.size,
                           "oid": git_blob_oid(blobs[e.sha256]) if not e.lfs else hashlib.sha1(
                               f"version https://git-lfs.github.com/spec/v1\noid sha256:{e.sha256}\nsize {e.size}\n"
                               .encode()).hexdigest()}
    if e.lfs:
        out["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": 134}
    return out


def _folders(commit: Commit, blobs: dict[str, bytes]) -> list[dict[str, Any]]:
    names = sorted({"/".join(p.split("/")[:i]) for p in commit.files for i in range(1, p.count("/") + 1)})
    return [{"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()} for d in names]


def _tree(commit: Commit, blobs: dict[str, bytes], folder: str, recursive: bool) -> list[dict[str, Any]]:
    prefix = f"{folder}/" if folder else ""
    under = {p: e for p, e in commit.files.items() if p.startswith(prefix)}
    if folder and not under:
        raise HubError(404, f"Entry not found: {folder}", "EntryNotFound")
    out: list[dict[str, Any]] = []
    if recursive:
        out += [d for d in _folders(commit, blobs) if d["path"].startswith(prefix)]
        out += [_file_json(p, e, blobs) for p, e in sorted(under.items())]
        return out
    dirs = sorted({prefix + p[len(prefix):].split("/")[0] for p in under if "/" in p[len(prefix):]})
    out += [{"type": "directory", "path": d, "oid": hashlib.sha1(d.encode()).hexdigest()} for d in dirs]
    out += [_file_json(p, e, blobs) for p, e in sorted(under.items()) if "/" not in p[len(prefix):]]
    return out


class HubServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self._open: set[socket.socket] = set()  # connections being served (kept alive by the client)
        self._open_lock = threading.Lock()
        self.hub = FakeHub()
        self.hub.url = f"http://127.0.0.1:{self.server_address[1]}"
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-hub",
                                        daemon=True)

    @property
    def url(self) -> str:
        return self.hub.url

    def start(self) -> HubServer:
        self._thread.start()
        return self

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        with self._open_lock:
            self._open.add(sock)
        return sock, addr

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def stop(self) -> None:
        """Stop serving, and close the connections the client keeps alive (else their threads serve on)."""
        self.shutdown()
        with self._open_lock:
            open_now = list(self._open)
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.server_close()
        self._thread.join(timeout=5)
