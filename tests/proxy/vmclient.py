"""An HTTP client that runs *inside* a VM namespace (``ip netns exec NS python vmclient.py``).

Reads a JSON job on stdin, prints a JSON result. Raw sockets, so that a request can carry
whatever a hostile guest might send: duplicated headers, underscores, absolute-form targets.

Job: ``{"iface": "eth0", "requests": [{"method", "path", "headers": [[name, value]…],
"body", "source", "family"}…]}`` → ``[{"status", "headers": {…}, "body", "seconds"}…]``
(status 0 and ``error`` when no HTTP answer came). Requests from the same source share one
keep-alive connection while the server keeps it open.

Job ``{"load": {...}}`` loops GETs of one path for ``duration`` seconds, a fresh connection each
time, and records every outcome with its start time (the fault tests' traffic).
"""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import Any

METADATA = {4: "169.254.169.254", 6: "fe80::a9fe:a9fe"}


class Connection:
    def __init__(self, family: int, source: str | None, iface: str, timeout: float) -> None:
        if family == 6:
            scope = socket.if_nametoindex(iface)
            self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            if source:
                self.sock.bind((source, 0, 0, scope))
            self.sock.connect((METADATA[6], 80, 0, scope))
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            if source:
                self.sock.bind((source, 0))
            self.sock.connect((METADATA[4], 80))
        self.buffer = b""

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def exchange(self, request: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        body = request.get("body", "").encode("latin-1")
        lines = [f"{request.get('method', 'GET')} {request['path']} HTTP/1.1"]
        headers = request.get("headers", [])
        if not any(name.lower() == "host" for name, _ in headers):
            lines.append("Host: 169.254.169.254")
        lines += [f"{name}: {value}" for name, value in headers]
        if body or request.get("method") in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError("closed before the answer")
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        answer: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            answer[name.strip().lower()] = value.strip()
        keep = answer.get("connection", "").lower() != "close"
        if request.get("method") == "HEAD" or status in (204, 304):
            data = b""
        elif "content-length" in answer:
            length = int(answer["content-length"])
            while len(self.buffer) < length:
                if not self._fill():
                    raise ConnectionError("closed inside the body")
            data, self.buffer = self.buffer[:length], self.buffer[length:]
        else:
            while self._fill():
                pass
            data, self.buffer, keep = self.buffer, b"", False
        return {"status": status, "headers": answer, "body": data.decode("latin-1")}, keep

    def close(self) -> None:
        self.sock.close()


def run_requests(job: dict[str, Any]) -> list[dict[str, Any]]:
    iface = job.get("iface", "")
    timeout = float(job.get("timeout", 10))
    pool: dict[tuple[int, str | None], Connection] = {}
    results = []
    for request in job["requests"]:
        key = (int(request.get("family", 4)), request.get("source"))
        started = time.monotonic()
        result: dict[str, Any]
        for attempt in (0, 1):
            conn = pool.pop(key, None)
            fresh = conn is None
            try:
                if conn is None:
                    conn = Connection(key[0], key[1], iface, timeout)
                result, keep = conn.exchange(request)
            except (OSError, ValueError, IndexError) as err:
                if conn is not None:
                    conn.close()
                if fresh or attempt:
                    result = {"status": 0, "error": f"{type(err).__name__}: {err}"}
                    break
                continue  # a kept-alive connection the server had closed: once more, fresh
            if keep:
                pool[key] = conn
            else:
                conn.close()
            break
        result["seconds"] = time.monotonic() - started
        results.append(result)
    for conn in pool.values():
        conn.close()
    return results


def run_load(load: dict[str, Any], iface: str) -> list[dict[str, Any]]:
    records = []
    origin = time.monotonic()
    while time.monotonic() - origin < float(load["duration"]):
        started = time.monotonic()
        conn = None
        try:
            conn = Connection(int(load.get("family", 4)), load.get("source"), iface,
                              float(load.get("timeout", 10)))  # fmt: skip
            result, _ = conn.exchange({"method": "GET", "path": load["path"]})
            record = {
                "status": result["status"],
                "retry_after": result["headers"].get("retry-after"),
                "ok_body": load.get("expect", "") in result["body"],
            }
        except (OSError, ValueError, IndexError) as err:
            record = {"status": 0, "error": f"{type(err).__name__}: {err}"}
        finally:
            if conn is not None:
                conn.close()
        record["at"] = started - origin
        record["seconds"] = time.monotonic() - started
        records.append(record)
        time.sleep(float(load.get("interval", 0.05)))
    return records


def main() -> None:
    job = json.load(sys.stdin)
    out = run_load(job["load"], job.get("iface", "")) if "load" in job else run_requests(job)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
