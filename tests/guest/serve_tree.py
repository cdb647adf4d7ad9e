"""Serve one instance's documents on the given addresses (run inside a test's namespace).

    python -m tests.guest.serve_tree SPEC.json ADDRESS:PORT [ADDRESS:PORT …]

IPv6 addresses are written in brackets, with their zone: ``[fe80::a9fe:a9fe%mbd0]:80``.
Prints ``ready`` once every socket listens; stops on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

from tests.guest.helpers import ServerState, _Handler, _Server, tree


class _Server6(_Server):
    address_family = socket.AF_INET6


def main(argv: list[str]) -> int:
    state = ServerState(tree(json.loads(Path(argv[0]).read_text())))
    servers: list[ThreadingHTTPServer] = []
    for spec in argv[1:]:
        host, _, port = spec.rpartition(":")
        if host.startswith("["):
            address = socket.getaddrinfo(host[1:-1], int(port), socket.AF_INET6)[0][4]
            server: _Server = _Server6(address, _Handler)
        else:
            server = _Server((host, int(port)), _Handler)
        server.state = state
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    for server in servers:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
