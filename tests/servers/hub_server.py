"""A minimal in-memory Hugging Face Hub on 127.0.0.1 for push tests (olah does not accept
uploads). It speaks the endpoints huggingface_hub uses to create a repo, upload a folder
of regular (non-LFS) files, and download it again:

    POST /api/repos/create                              -> {"url": ...} (409 if it exists)
    POST /api/validate-yaml                             README front matter must parse
    POST /api/{type}s/{repo}/preupload/{rev}            -> every file "regular"
    POST /api/{type}s/{repo}/commit/{rev}               NDJSON: header + base64 files
    GET  /api/{type}s/{repo}[/revision/{rev}]           repo_info (sha, siblings with size and LFS sha256)
    GET  /api/{type}s/{repo}/tree/{rev}                 list_repo_tree
    HEAD|GET /[{type}s/]{repo}/resolve/{rev}/{path}     file bytes + X-Repo-Commit / ETag

A repo registered with a token is private: without "Authorization: Bearer <token>" every
read answers 401, as the Hub does.
"""
import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

import yaml

API = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)(?:/(preupload|commit|revision|tree)/([^/]+)(?:/.*)?)?$")
LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".png")  # stored with LFS on the Hub (sha256 in metadata)
RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class FakeHub:
    """Repos keyed by (type, repo_id): {"files": {path: bytes}, "sha": commit id}."""

    def __init__(self):
        self.repos: dict = {}
        self.requests: list = []  # (method, path, authorization header)
        self.created: list = []  # create_repo payloads
        self.validated: list = []  # /api/validate-yaml payloads (README front matter)
        self.lock = threading.Lock()
        self.tokens: dict = {}  # repo_id -> the token a private repo needs (401 without it, as the Hub)
        self.sizes: dict = {}  # (repo_id, path) -> the size the metadata reports (a "10 GB" file costs nothing)
        self.served: dict = {}  # (repo_id, path) -> bytes sent instead of the file's (corrupted in transit)

    def add_folder(self, repo_id: str, folder, kind: str = "model", private_token: str | None = None) -> None:
        """Serve the files of a local folder as a repo (test set-up without the upload API)."""
        from pathlib import Path

        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}
        self.repos[(kind, repo_id)] = {"files": {}, "sha": "0" * 40}
        self.commit((kind, repo_id), [{"key": "file", "value": {"path": p, "content": base64.b64encode(b).decode()}}
                                      for p, b in files.items()])
        if private_token:
            self.tokens[repo_id] = private_token

    def commit(self, key, lines: list) -> str:
        repo = self.repos[key]
        files = dict(repo["files"])
        for item in lines:
            if item["key"] == "file":
                files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
            elif item["key"] == "deletedFile":
                files.pop(item["value"]["path"], None)
            elif item["key"] != "header":
                raise ValueError(f"unsupported commit operation {item['key']}")
        sha = hashlib.sha1(json.dumps(sorted((p, hashlib.sha1(b).hexdigest()) for p, b in files.items())).encode())
        repo.update(files=files, sha=sha.hexdigest())
        return repo["sha"]


def _key(kind: str | None, repo_id: str):
    return ({"datasets": "dataset", "spaces": "space"}.get(kind or "", "model"), repo_id)


class Handler(BaseHTTPRequestHandler):
    hub: FakeHub = None  # set per server class

    def log_message(self, *args):  # keep test output quiet
        pass

    def _reply(self, status: int, body=b"", headers=None, content_type="application/json"):
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _base(self) -> str:
        return f"http://{self.headers.get('Host')}"

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _record(self):
        self.hub.requests.append((self.command, self.path, self.headers.get("Authorization")))

    def do_POST(self):
        self._record()
        path = urlparse(self.path).path
        with self.hub.lock:
            if path == "/api/repos/create":
                return self._create(json.loads(self._body()))
            if path == "/api/validate-yaml":
                return self._validate(json.loads(self._body()))
            match = API.match(path)
            if not match or _key(match[1], match[2]) not in self.hub.repos:
                return self._reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
            if match[3] == "preupload":
                files = json.loads(self._body())["files"]
                return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular",
                                                    "shouldIgnore": False} for f in files]})
            if match[3] == "commit":
                lines = [json.loads(line) for line in self._body().splitlines() if line.strip()]
                sha = self.hub.commit(_key(match[1], match[2]), lines)
                return self._reply(200, {"commitUrl": f"{self._base()}/{match[2]}/commit/{sha}", "commitOid": sha,
                                         "pullRequestUrl": None})
        self._reply(404, {"error": "not found"})

    def _validate(self, payload: dict):
        """Like the Hub: README front matter must be a YAML mapping."""
        match = re.match(r"^---\n(.*?)\n---", payload["content"], flags=re.S)
        try:
            ok = match is None or isinstance(yaml.safe_load(match[1]) or {}, dict)
        except yaml.YAMLError:
            ok = False
        self.hub.validated.append(payload)
        if not ok:
            return self._reply(400, {"errors": [{"message": "invalid YAML metadata"}]})
        self._reply(200, {"warnings": []})

    def _create(self, payload: dict):
        self.hub.created.append(payload)
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        key = (payload.get("type") or "model", repo_id)
        if key in self.hub.repos:
            return self._reply(409, {"error": "You already created this repo", "url": f"{self._base()}/{repo_id}"})
        self.hub.repos[key] = {"files": {}, "sha": "0" * 40}
        self._reply(200, {"url": f"{self._base()}/{repo_id}", "name": repo_id})

    def do_HEAD(self):
        self.do_GET()

    def _denied(self, repo_id: str) -> bool:
        """A private repo without its token: 401, as the Hub answers (never 'exists')."""
        needed = self.hub.tokens.get(repo_id)
        return needed is not None and self.headers.get("Authorization") != f"Bearer {needed}"

    def _sibling(self, repo_id: str, path: str, data: bytes) -> dict:
        size = self.hub.sizes.get((repo_id, path), len(data))
        entry = {"rfilename": path, "size": size, "blobId": hashlib.sha1(data).hexdigest()}
        if path.endswith(LFS_SUFFIXES):
            entry["lfs"] = {"size": size, "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}
        return entry

    def _api_get(self, match):
        repo = self.hub.repos.get(_key(match[1], match[2]))
        if repo is None or self._denied(match[2]):
            status = 401 if repo is not None else 404
            return self._reply(status, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        if match[3] in (None, "revision"):
            return self._reply(200, {"id": match[2], "sha": repo["sha"], "private": match[2] in self.hub.tokens,
                                     "siblings": [self._sibling(match[2], p, b)
                                                  for p, b in sorted(repo["files"].items())]})
        return self._reply(200, [{"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                                 for p, b in sorted(repo["files"].items())])

    def do_GET(self):
        self._record()
        path = unquote(urlparse(self.path).path)
        match = API.match(path)
        if match and match[3] in (None, "revision", "tree"):
            return self._api_get(match)
        match = RESOLVE.match(path)
        repo = self.hub.repos.get(_key(match[1], match[2])) if match else None
        if repo is not None and self._denied(match[2]):
            return self._reply(401, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        if repo is None or match[4] not in repo["files"]:
            return self._reply(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
        data = repo["files"][match[4]]
        lfs = match[4].endswith(LFS_SUFFIXES)  # the Hub's ETag of an LFS file is its sha256
        etag = hashlib.sha256(data).hexdigest() if lfs else hashlib.sha1(data).hexdigest()
        data = self.hub.served.get((match[2], match[4]), data)
        self._reply(200, data, {"X-Repo-Commit": repo["sha"], "ETag": f'"{etag}"'},
                    content_type="application/octet-stream")


def start_fake_hub():
    """(FakeHub, server, url); call server.shutdown() when done."""
    hub = FakeHub()
    handler = type("BoundHandler", (Handler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return hub, server, f"http://127.0.0.1:{server.server_address[1]}"
