"""A stand-in metadata service for proxy tests: answers every request with a JSON echo of what
arrived (method, target, headers in order, body), so a test can see exactly what the proxy
stamped. A few paths misbehave on purpose: ``/slow/<seconds>`` answers late, ``/chunked/<n>``
answers chunked, ``/big/<n>`` answers n bytes, ``/drop`` closes without answering, ``/flaky…``
is answered only as the first request on its connection.

Run as a program: ``python echo_upstream.py unix:/PATH`` or ``python echo_upstream.py
tcp:127.0.0.1:0 [--tls CERT KEY]``; prints ``ready <address>`` once listening.
"""

from __future__ import annotations

import json
import socket
import socketserver
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path


class EchoHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "echo-upstream"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _echo(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path
        self.served = getattr(self, "served", 0) + 1
        if path.startswith("/drop") or (path.startswith("/flaky") and self.served > 1):
            # /flaky: a keep-alive connection the server drops when it is used again, as a
            # server closing an idle connection at the moment a request arrives
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if path.startswith("/slow/"):
            time.sleep(float(path.split("/")[2]))
        if path.startswith("/big/"):
            payload = b"x" * int(path.split("/")[2])
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        echo = json.dumps(
            {
                "method": self.command,
                "target": path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body": body.decode("latin-1"),
            }
        ).encode()
        if path.startswith("/close-delimited"):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(echo)
            self.close_connection = True
            return
        if path.startswith("/chunked/"):
            pieces = int(path.split("/")[2])
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            step = max(1, len(echo) // pieces)
            for i in range(0, len(echo), step):
                part = echo[i : i + step]
                self.wfile.write(b"%x\r\n%b\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        status = 200
        if path.startswith("/status/"):
            status = int(path.split("/")[2])
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(echo)))
        self.send_header("X-Upstream-Hop", "yes")
        self.send_header("Connection", "keep-alive, X-Upstream-Hop")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(echo)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_OPTIONS = do_PATCH = _echo


class UnixEcho(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128


class TcpEcho(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def serve(address: str, tls: tuple[str, str] | None = None) -> None:
    server: socketserver.BaseServer
    if address.startswith("unix:"):
        path = address[5:]
        Path(path).unlink(missing_ok=True)
        server = UnixEcho(path, EchoHandler)
        where = address
    else:
        host, _, port = address[4:].rpartition(":")
        tcp = TcpEcho((host, int(port)), EchoHandler)
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            tcp.socket = context.wrap_socket(tcp.socket, server_side=True)
        server = tcp
        where = f"tcp:{host}:{tcp.server_address[1]}"
    print(f"ready {where}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    argv = sys.argv[1:]
    tls_files = (argv[2], argv[3]) if len(argv) >= 4 and argv[1] == "--tls" else None
    serve(argv[0], tls_files)
