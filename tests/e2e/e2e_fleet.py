"""Everything around a scenario's boot: the service, the drives, and a small pool of VMs.

The metadata service runs on a UNIX socket in the test's directory (nothing listens on a
network address); each VM reaches it only through QEMU's guestfwd, which starts
``metaboot proxy --stdio`` per connection with that VM's network id and address.
Boots run at most ``METABOOT_E2E_PARALLEL`` at a time (default 2 on CI, else 1), so CI's two
cores each run one TCG guest while the tests consume the results in order.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from tests.e2e.e2e_image import Image, cloudinit_image, metaboot_image
from tests.e2e.e2e_scenarios import PORT_IP, Scenario, instance_spec
from tests.e2e.e2e_vm import BootResult, VmSpec, boot

METABOOT = [sys.executable, "-m", "metaboot.cli"]


def default_parallel() -> int:
    value = os.environ.get("METABOOT_E2E_PARALLEL")
    if value:
        return max(1, int(value))
    return 2 if os.environ.get("CI") else 1


# ---- the metadata service ----------------------------------------------------------------------


class MetadataService:
    """``metaboot serve`` on a UNIX socket with its own SQLite registry; stopped on exit."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.socket = workdir / "service.sock"
        self.db_url = f"sqlite:///{workdir / 'registry.db'}"
        self.log = workdir / "service.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen(
                [*METABOOT, "serve", "--db", self.db_url, "--listen", f"unix:{self.socket}"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while not self.socket.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"metaboot serve did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def add(self, spec: dict[str, Any]) -> None:
        """Register an instance the way an operator does: a spec file and ``metaboot instance
        add`` against the service's database (the running service sees it at once)."""
        path = self.workdir / f"instance-{spec['uuid']}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        with self._lock:
            proc = subprocess.run(
                [*METABOOT, "instance", "add", "--db", self.db_url, str(path)],
                capture_output=True,
                text=True,
                check=False,
            )
        if proc.returncode != 0:
            raise RuntimeError(f"metaboot instance add {path} failed: {proc.stderr}")

    def proxy_command(self, network_id: str, address: str, access_log: Path) -> list[str]:
        """What QEMU runs per guest connection: our proxy, stamping this VM's identity."""
        return [
            *METABOOT, "proxy", "--stdio", "--network-id", network_id,
            "--forwarded-for", address, "--upstream", f"unix:{self.socket}",
            "--access-log", str(access_log),
        ]  # fmt: skip

    def __enter__(self) -> MetadataService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- config drives -----------------------------------------------------------------------------


def build_drive(spec_file: Path, fmt: str, output: Path) -> Path:
    """A config drive for the instance in ``spec_file``, built by ``metaboot drive build``."""
    subprocess.run(
        [*METABOOT, "drive", "build", "--spec", str(spec_file), "--format", fmt, "-o", str(output)],
        check=True,
        capture_output=True,
    )
    return output


# ---- images per scenario -----------------------------------------------------------------------

BROKEN_AGENT_YAML = "disable_root: [true\nssh_pwauth: {\n"  # a YAML syntax error


def image_for(scenario: Scenario) -> Image:
    if scenario.agent == "cloud-init":
        return cloudinit_image()
    if scenario.variant == "bad-config":
        return metaboot_image(variant="bad-config", agent_yaml_suffix=BROKEN_AGENT_YAML)
    return metaboot_image()


class Canary:
    """A listener on the host's loopback that no VM may reach: it counts who connects."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.5)
        self.port: int = self._sock.getsockname()[1]
        self.hits = 0
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="canary", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self._closing.set()
        self._thread.join()
        self._sock.close()


# ---- the pool ----------------------------------------------------------------------------------


class Fleet:
    """Boots scenarios in the background, a few at a time; tests wait for their own result."""

    def __init__(
        self,
        workdir: Path,
        public_key: str,
        service: Callable[[], MetadataService],
        parallel: int | None = None,
        cpus: int = 1,
        linger: int = 0,
    ) -> None:
        self.workdir = workdir
        self.cpus = cpus
        self.linger = linger  # seconds the guest idles before it powers off (0: power_state)
        self.public_key = public_key
        self._service = service
        self._stop = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=parallel or default_parallel(), thread_name_prefix="vm"
        )
        self._futures: dict[Scenario, concurrent.futures.Future[BootResult]] = {}
        self._lock = threading.Lock()
        self.canary = Canary()

    def submit(self, scenario: Scenario) -> concurrent.futures.Future[BootResult]:
        with self._lock:
            if scenario not in self._futures:
                self._futures[scenario] = self._pool.submit(self._boot, scenario)
            return self._futures[scenario]

    def result(self, scenario: Scenario) -> BootResult:
        return self.submit(scenario).result()

    def _boot(self, scenario: Scenario) -> BootResult:
        if self._stop.is_set():
            raise RuntimeError("the fleet is shutting down")
        workdir = self.workdir / scenario.id
        workdir.mkdir(parents=True, exist_ok=True)
        image = image_for(scenario)
        spec = instance_spec(
            scenario, self.public_key, canary_port=self.canary.port, linger=self.linger
        )
        spec_file = workdir / "instance.yaml"
        spec_file.write_text(yaml.safe_dump(spec, sort_keys=False))
        vm = VmSpec(
            image=image,
            workdir=workdir,
            mac=scenario.mac,
            uuid=scenario.uuid,
            stop=self._stop,
            cpus=self.cpus,
        )
        if scenario.transport == "service":
            service = self._service()
            service.add(spec)
            vm.metadata_command = service.proxy_command(
                scenario.network_id, PORT_IP, workdir / "proxy-access.log"
            )
        else:
            # Nothing answers at the metadata address: the drive alone configures the guest.
            suffix = "iso" if scenario.transport == "iso" else "img"
            vm.config_drive = build_drive(
                spec_file, scenario.transport, workdir / f"config-2.{suffix}"
            )
            vm.config_drive_format = scenario.transport
        return boot(vm)

    def close(self) -> None:
        self._stop.set()
        for future in self._futures.values():
            future.cancel()
        self._pool.shutdown(wait=True)
        self.canary.close()
        if os.environ.get("METABOOT_E2E_KEEP"):
            return  # keep the powered-off disks for a post-mortem
        for future in self._futures.values():
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().disk.remove()


@contextlib.contextmanager
def lazy_service(workdir: Path) -> Iterator[Callable[[], MetadataService]]:
    """A service started on first use (drive-only runs never start one) and always stopped."""
    holder: list[MetadataService] = []
    lock = threading.Lock()

    def get() -> MetadataService:
        with lock:
            if not holder:
                service = MetadataService(workdir)
                service.start()
                holder.append(service)
            return holder[0]

    try:
        yield get
    finally:
        for service in holder:
            service.stop()
