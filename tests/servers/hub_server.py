"""A minimal in-memory Hugging Face Hub on 127.0.0.1 for push tests (olah does not accept
uploads). It speaks the endpoints huggingface_hub uses to create a repo, upload a folder
of regular (non-LFS) files, and download it again:

    POST /api/repos/create                              -> {"url": ...} (409 if it exists)
    POST /api/validate-yaml                             README front matter must parse
    POST /api/{type}s/{repo}/preupload/{rev}            -> every file "regular"
    POST /api/{type}s/{repo}/commit/{rev}               NDJSON: header + base64 files
    GET  /api/{type}s/{repo}/revision/{rev}             repo_info (sha, siblings)
    GET  /api/{type}s/{repo}/tree/{rev}                 list_repo_tree
    HEAD|GET /[{type}s/]{repo}/resolve/{rev}/{path}     file bytes + X-Repo-Commit / ETag
"""
import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

import yaml

API = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)/(preupload|commit|revision|tree)/([^/]+)(?:/.*)?$")
RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")


class FakeHub:
    """Repos keyed by (type, repo_id): {"files": {path: bytes}, "sha": commit id}."""

    def __init__(self):
        self.repos: dict = {}
        self.requests: list = []  # (method, path, authorization header)
        self.created: list = []  # create_repo payloads
        self.validated: list = []  # /api/validate-yaml payloads (README front matter)
        self.lock = threading.Lock()

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

    def do_GET(self):
        self._record()
        path = unquote(urlparse(self.path).path)
        match = API.match(path)
        if match and match[3] in ("revision", "tree") and _key(match[1], match[2]) in self.hub.repos:
            repo = self.hub.repos[_key(match[1], match[2])]
            if match[3] == "revision":
                return self._reply(200, {"id": match[2], "sha": repo["sha"], "private": False,
                                         "siblings": [{"rfilename": p} for p in sorted(repo["files"])]})
            return self._reply(200, [{"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                                     for p, b in sorted(repo["files"].items())])
        match = RESOLVE.match(path)
        repo = self.hub.repos.get(_key(match[1], match[2])) if match else None
        if repo is None or match[4] not in repo["files"]:
            return self._reply(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
        data = repo["files"][match[4]]
        self._reply(200, data, {"X-Repo-Commit": repo["sha"], "ETag": f'"{hashlib.sha1(data).hexdigest()}"'},
                    content_type="application/octet-stream")


def start_fake_hub():
    """(FakeHub, server, url); call server.shutdown() when done."""
    hub = FakeHub()
    handler = type("BoundHandler", (Handler,), {"hub": hub})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return hub, server, f"http://127.0.0.1:{server.server_address[1]}"
