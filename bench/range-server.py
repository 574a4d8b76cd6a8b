#!/usr/bin/env python3
"""A small static HTTP server that answers Range requests (python's
http.server does not), for bench/remote.sh: serves the files of DIR,
HEAD and single-range GET, with an optional added latency per request.
Prints its port on stdout, one line, then serves until killed.

usage: range-server.py DIR [--latency-ms N] [--port P]
"""
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

ROOT = os.path.realpath(sys.argv[1])
LATENCY = 0.0
PORT = 0
args = sys.argv[2:]
while args:
    a = args.pop(0)
    if a == "--latency-ms":
        LATENCY = float(args.pop(0)) / 1000.0
    elif a == "--port":
        PORT = int(args.pop(0))
STATS = {"requests": 0, "bytes": 0}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def target(self):
        path = unquote(urlsplit(self.path).path).lstrip("/")
        full = os.path.realpath(os.path.join(ROOT, path))
        if not full.startswith(ROOT + os.sep) or not os.path.isfile(full):
            return None
        return full

    def answer(self, body):
        with LOCK:
            STATS["requests"] += 1
        if LATENCY:
            time.sleep(LATENCY)
        if self.path == "/_stats":
            data = ("%d %d\n" % (STATS["requests"], STATS["bytes"])).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        f = self.target()
        if f is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        size = os.path.getsize(f)
        rng = self.headers.get("Range")
        start, end, status = 0, size - 1, 200
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a)
            end = min(int(b), size - 1) if b else size - 1
            if start >= size or start > end:
                self.send_response(416)
                self.send_header("Content-Range", "bytes */%d" % size)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        n = end - start + 1
        self.send_response(status)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.end_headers()
        if not body:
            return
        with open(f, "rb") as fh:
            fh.seek(start)
            left = n
            while left:
                chunk = fh.read(min(left, 1 << 20))
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)
        with LOCK:
            STATS["bytes"] += n

    def do_HEAD(self):
        self.answer(False)

    def do_GET(self):
        self.answer(True)


srv = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
srv.daemon_threads = True
print(srv.server_address[1], flush=True)
srv.serve_forever()
