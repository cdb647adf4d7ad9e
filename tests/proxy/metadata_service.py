"""``metaboot serve`` as a separate process on a UNIX socket, for the end-to-end proxy tests:
it can be stopped, killed, paused and started again under the proxies' feet."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.proxy.helpers import stop_process


@dataclass
class ServiceProcess:
    db_url: str
    workdir: Path
    config: str = ""
    proc: subprocess.Popen[bytes] | None = None
    starts: int = field(default=0)

    @property
    def socket_path(self) -> Path:
        return self.workdir / "metadata.sock"

    @property
    def upstream(self) -> str:
        return f"unix:{self.socket_path}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"service-{self.starts}.log"

    def start(self, config: str | None = None) -> None:
        if config is not None:
            self.config = config
        self.starts += 1
        config_path = self.workdir / "metaboot.toml"
        config_path.write_text(self.config)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "metaboot.cli", "serve", "--db", self.db_url,
             "--listen", self.upstream, "--config", str(config_path), "--log-level", "warning"],
            stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 60
        while b"listening on unix:" not in self.log_path.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"service did not start: {self.log_path.read_text()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def kill(self) -> None:
        """A crash: no goodbye to open connections."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)
