"""Hubs that misbehave, on 127.0.0.1, for the fault tests:

    silent          accepts TCP connections and never answers a byte
    stall-download  answers the API (a repo with config.json + model.safetensors) like the
                    Hub, then never answers a file request
    slow            answers everything correctly, one byte every `delay` seconds
    portal          a captive portal: 200 and an HTML page for every URL

`start(kind)` -> (url, stop). Connections are held open until stop()."""
import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KINDS = ("silent", "stall-download", "slow", "portal")
FILES = {"config.json": b'{"arch": "mlp"}', "model.safetensors": b"\0" * 64}
PORTAL = b"<!doctype html><html><body><h1>Welcome to the hotel Wi-Fi</h1>Please log in.</body></html>"


def _metadata(repo_id: str) -> bytes:
    siblings = [{"rfilename": name, "size": len(data),
                 "lfs": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "pointerSize": 134}}
                for name, data in FILES.items()]
    return json.dumps({"id": repo_id, "sha": "a" * 40, "private": False, "siblings": siblings}).encode()


class _Handler(BaseHTTPRequestHandler):
    kind, delay, stop = "slow", 0.5, None

    def log_message(self, *args):
        pass

    def _hold(self):
        self.stop.wait()  # never answer (until the test ends)

    def _send(self, body: bytes, content_type: str = "application/json", headers=None):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        if self.kind != "slow":
            self.wfile.write(body)
            return
        for i in range(len(body)):  # a trickle: every read timeout is met, the deadline is not
            if self.stop.wait(self.delay):
                return
            self.wfile.write(body[i:i + 1])
            self.wfile.flush()

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        if self.kind == "portal":
            return self._send(PORTAL, "text/html")
        if self.path.startswith("/api/models/"):
            repo_id = "/".join(self.path.split("?")[0].split("/")[3:5])
            return self._send(_metadata(repo_id))
        if self.kind == "stall-download":
            return self._hold()
        name = self.path.split("?")[0].split("/resolve/")[-1].split("/", 1)[-1]
        data = FILES.get(name)
        if data is None:
            self.send_response(404)
            self.end_headers()
            return
        self._send(data, "application/octet-stream", {"X-Repo-Commit": "a" * 40,
                                                      "ETag": f'"{hashlib.sha256(data).hexdigest()}"'})


def _silent(stop: threading.Event):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.settimeout(0.2)
    held = []

    def serve():
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])  # accepted, never read, never answered
            except OSError:
                continue
        for conn in held:
            conn.close()
        sock.close()

    threading.Thread(target=serve, daemon=True).start()
    return sock.getsockname()[1]


def start(kind: str, delay: float = 0.5):
    """(url, stop) of a misbehaving Hub of `kind` (see KINDS)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    stop = threading.Event()
    if kind == "silent":
        port = _silent(stop)
        return f"http://127.0.0.1:{port}", stop.set
    handler = type("Hostile", (_Handler,), {"kind": kind, "delay": delay, "stop": stop})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def shutdown():
        stop.set()
        time.sleep(0.05)
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{server.server_address[1]}", shutdown
