"""Boot a cached image in QEMU, wait for the guest to power itself off, read its disk.

Each boot gets a qcow2 overlay over the cached raw image (which therefore stays pristine), a
serial console written to a file, and user-mode networking with ``restrict=on`` whose only way
out is a ``guestfwd`` from 169.254.169.254:80 to a command started per connection (our proxy in
its one-connection ``--stdio`` mode, which forwards to the service on loopback). Nothing else in
the slirp network reaches the host or beyond: no DNS, no IPv6, no host forwards.

The SMBIOS product is ``OpenStack Nova``, as nova sets it: cloud-init's ds-identify enables its
OpenStack source only on such a machine.

After power-off (or the timeout, after which QEMU is killed all the same) the overlay is
flattened to a raw file and read with ``debugfs``: no mount, no loop device.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.e2e_image import CACHE, Image

QEMU = "qemu-system-x86_64"
SLIRP_NET = "169.254.169.0/24"
SLIRP_DHCP_START = "169.254.169.15"  # the address the guest leases before any static config
METADATA_IP = "169.254.169.254"
SMBIOS_PRODUCT = "OpenStack Nova"
KERNEL_ARGS = "root=/dev/vda rw console=ttyS0,115200 panic=-1 systemd.show_status=1"
POWER_DOWN = "reboot: Power down"
FATAL_CONSOLE = ("Kernel panic", "You are in emergency mode", "Give root password for maintenance")


# ---- acceleration --------------------------------------------------------------------------


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


@functools.cache
def accelerator(kernel: str) -> str:
    """``kvm`` only if a guest really runs under it here, else ``tcg``; probed once per host boot.

    /dev/kvm can exist on a nested host whose guests never start, so the probe boots the real
    kernel (with no root disk: it panics within seconds) and looks for its banner on the console.
    """
    cache = CACHE / "accel.json"
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(cache.read_text())
        if data.get("boot_id") == _boot_id():
            return str(data["accel"])
    accel = "tcg"
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        console = CACHE / f".kvm-probe-{os.getpid()}.log"
        args = [
            QEMU, "-accel", "kvm", "-m", "256", "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot", "-kernel", kernel,
            "-append", "console=ttyS0 panic=-1 root=/dev/nonexistent",
            "-chardev", f"file,id=c0,path={console}", "-serial", "chardev:c0",
        ]  # fmt: skip
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                if console.exists() and "Linux version" in console.read_text(errors="replace"):
                    accel = "kvm"
                    break
                time.sleep(0.5)
        finally:
            proc.kill()
            proc.wait()
            console.unlink(missing_ok=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"boot_id": _boot_id(), "accel": accel}))
    return accel


# ---- the boot ------------------------------------------------------------------------------


@dataclass
class VmSpec:
    """What one boot gets: the image, its NIC, an optional config drive, the metadata path."""

    image: Image
    workdir: Path
    mac: str = "fa:16:3e:00:00:01"
    # Command (argv) QEMU runs for each guest connection to 169.254.169.254:80, with the
    # connection on stdin/stdout. None: nothing answers there.
    metadata_command: Sequence[str] | None = None
    config_drive: Path | None = None
    config_drive_format: str = "iso"  # "iso" (a CD-ROM) or "vfat" (a disk), as nova attaches them
    memory_mb: int = 1024
    cpus: int = 1  # virtual CPUs; the tests use one, bench/vm_boot.py --cpus may give more
    timeout: float = 1200.0
    extra_kernel_args: str = ""
    uuid: str | None = None
    stop: threading.Event | None = None  # set: kill the VM now (the test session is ending)


@dataclass
class BootResult:
    spec: VmSpec
    console: str
    seconds: float
    exit_code: int | None  # QEMU's; None if it had to be killed at the timeout
    timed_out: bool
    disk: Disk
    qemu_stderr: str = ""
    accel: str = "tcg"
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def powered_off(self) -> bool:
        """The guest shut itself down (QEMU also exits 0 on SIGTERM, so the kernel must say so)."""
        return not self.timed_out and self.exit_code == 0 and POWER_DOWN in self.console

    def report(self, section: str) -> str | None:
        """A section of the e2e-report printed on the console at shutdown."""
        return report_section(self.console, section)


def report_section(console: str, section: str) -> str | None:
    marker = f"=== e2e-report: {section} ==="
    start = console.rfind(marker)
    if start < 0:
        return None
    rest = console[start + len(marker) :]
    end = rest.find("=== e2e-report:")
    return (rest if end < 0 else rest[:end]).strip("\r\n")


def _qemu_args(spec: VmSpec, overlay: Path, console: Path, accel: str) -> list[str]:
    netdev = f"user,id=n0,net={SLIRP_NET},dhcpstart={SLIRP_DHCP_START},ipv6=off,restrict=on"
    if spec.metadata_command is not None:
        script = spec.workdir / "guestfwd.sh"
        errlog = shlex.quote(str(spec.workdir / "guestfwd.log"))
        script.write_text(
            "#!/bin/sh\n# QEMU runs this once per guest connection to the metadata address.\n"
            f"exec {shlex.join(spec.metadata_command)} 2>>{errlog}\n"
        )
        script.chmod(0o755)
        if "," in str(script) or " " in str(script):
            raise ValueError(f"guestfwd script path must have no comma or space: {script}")
        netdev += f",guestfwd=tcp:{METADATA_IP}:80-cmd:{script}"
    args = [
        QEMU, "-accel", accel, "-m", str(spec.memory_mb), "-smp", str(spec.cpus),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-kernel", str(spec.image.kernel), "-initrd", str(spec.image.initrd),
        "-append", f"{KERNEL_ARGS} {spec.extra_kernel_args}".strip(),
        "-drive", f"file={overlay},format=qcow2,if=virtio,cache=unsafe",
        "-netdev", netdev, "-device", f"virtio-net-pci,netdev=n0,mac={spec.mac}",
        "-device", "virtio-rng-pci",
        "-smbios", f"type=1,manufacturer=OpenStack Foundation,product={SMBIOS_PRODUCT}",
        "-chardev", f"file,id=con0,path={console}", "-serial", "chardev:con0",
    ]  # fmt: skip
    if spec.uuid:
        args += ["-uuid", spec.uuid]
    if spec.config_drive is not None:
        drive = str(spec.config_drive)
        if "," in drive:
            raise ValueError(f"config drive path must have no comma: {drive}")
        if spec.config_drive_format == "iso":
            args += ["-drive", f"file={drive},format=raw,media=cdrom,if=ide,readonly=on"]
        elif spec.config_drive_format == "vfat":
            args += ["-drive", f"file={drive},format=raw,if=virtio,readonly=on"]
        else:
            raise ValueError(
                f"config_drive_format must be iso or vfat, not {spec.config_drive_format!r}"
            )
    return args


def boot(spec: VmSpec) -> BootResult:
    """Boot once and wait for power-off; QEMU is always gone when this returns."""
    spec.workdir.mkdir(parents=True, exist_ok=True)
    overlay = spec.workdir / "overlay.qcow2"
    console = spec.workdir / "console.log"
    stderr_path = spec.workdir / "qemu.stderr"
    overlay.unlink(missing_ok=True)
    console.unlink(missing_ok=True)
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            str(spec.image.disk),
            str(overlay),
        ],
        check=True,
    )
    accel = accelerator(str(spec.image.kernel))
    args = _qemu_args(spec, overlay, console, accel)
    (spec.workdir / "qemu.cmdline").write_text(shlex.join(args) + "\n")
    started = time.monotonic()
    timed_out = False
    with stderr_path.open("wb") as err:
        # Own session: the kill below reaches QEMU and every guestfwd command it started.
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=err, stderr=err, start_new_session=True
        )
        try:
            deadline = started + spec.timeout
            while proc.poll() is None:
                if time.monotonic() > deadline or (spec.stop is not None and spec.stop.is_set()):
                    timed_out = True
                    break
                if _console_fatal(console):
                    time.sleep(2)  # let the last lines reach the file
                    break
                time.sleep(1)
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the guestfwd commands
    seconds = time.monotonic() - started
    exit_code = None if timed_out else proc.returncode
    (spec.workdir / "boot.json").write_text(
        json.dumps(
            {
                "seconds": round(seconds, 1),
                "exit_code": exit_code,
                "timed_out": timed_out,
                "accel": accel,
            }
        )
    )
    raw = spec.workdir / "disk-after.raw"
    subprocess.run(
        ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(overlay), str(raw)], check=True
    )
    overlay.unlink()
    return BootResult(
        spec=spec,
        console=clean_console(console.read_text(errors="replace")) if console.exists() else "",
        seconds=seconds,
        exit_code=exit_code,
        timed_out=timed_out,
        disk=Disk(raw),
        qemu_stderr=stderr_path.read_text(errors="replace"),
        accel=accel,
    )


_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


def clean_console(text: str) -> str:
    """The console as text: no colour codes, no carriage returns (systemd's status spinner)."""
    return _ANSI.sub("", text)


def _console_fatal(console: Path) -> bool:
    try:
        size = console.stat().st_size
        with console.open("rb") as handle:
            handle.seek(max(0, size - 4096))
            tail = handle.read().decode(errors="replace")
    except FileNotFoundError:
        return False
    return any(marker in tail for marker in FATAL_CONSOLE)


# ---- reading the powered-off disk ----------------------------------------------------------


@dataclass(frozen=True)
class Inode:
    kind: str  # "regular", "directory", "symlink", …
    mode: int
    uid: int
    gid: int
    link_target: str | None


class Disk:
    """A powered-off guest disk read with debugfs (read-only, no mount)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _debugfs(self, request: str) -> tuple[bytes, str]:
        proc = subprocess.run(
            ["debugfs", "-R", request, str(self.path)], capture_output=True, check=False
        )
        stderr = proc.stderr.decode(errors="replace")
        # debugfs prints its own version banner on stderr; anything else is an error.
        errors = "\n".join(line for line in stderr.splitlines() if not line.startswith("debugfs "))
        return proc.stdout, errors

    def stat(self, guest_path: str) -> Inode | None:
        out, errors = self._debugfs(f'stat "{guest_path}"')
        if errors or not out:
            return None
        text = out.decode(errors="replace")
        kind = re.search(r"Type: (\w+)", text)
        mode = re.search(r"Mode:\s+(\d+)", text)
        user = re.search(r"User:\s+(\d+)", text)
        group = re.search(r"Group:\s+(\d+)", text)
        link = re.search(r'Fast link dest: "(.*)"', text)
        if not (kind and mode and user and group):
            raise RuntimeError(f"cannot parse debugfs stat of {guest_path}: {text[:400]}")
        target = link.group(1) if link else None
        if kind.group(1) == "symlink" and target is None:
            target = self._debugfs(f'cat "{guest_path}"')[0].decode(errors="replace")
        return Inode(
            kind.group(1), int(mode.group(1), 8), int(user.group(1)), int(group.group(1)), target
        )

    def ctime(self, guest_path: str) -> float | None:
        """The inode's change time (seconds since the epoch, on the guest's clock): when a file
        was last renamed into place or had its owner or mode set. None if it is missing."""
        out, errors = self._debugfs(f'stat "{guest_path}"')
        found = re.search(r"\bctime: 0x([0-9a-f]+)(?::([0-9a-f]+))?", out.decode(errors="replace"))
        if errors or not found:
            return None
        # The extra word: nanoseconds in its upper 30 bits, epoch bits below.
        return int(found.group(1), 16) + (int(found.group(2) or "0", 16) >> 2) / 1e9

    def resolve(self, guest_path: str) -> str:
        """Follow symlinks in the last component (debugfs follows the intermediate ones)."""
        path = guest_path
        for _ in range(16):
            inode = self.stat(path)
            if inode is None or inode.kind != "symlink" or inode.link_target is None:
                return path
            target = inode.link_target
            path = (
                target
                if target.startswith("/")
                else os.path.normpath(os.path.join(os.path.dirname(path), target))
            )
        raise RuntimeError(f"symlink loop at {guest_path}")

    def exists(self, guest_path: str) -> bool:
        return self.stat(guest_path) is not None

    def read_bytes(self, guest_path: str) -> bytes:
        path = self.resolve(guest_path)
        inode = self.stat(path)
        if inode is None:
            raise FileNotFoundError(f"{guest_path} is not on the guest disk {self.path}")
        out, errors = self._debugfs(f'cat "{path}"')
        if errors:
            raise OSError(f"debugfs cannot read {guest_path}: {errors}")
        return out

    def read_text(self, guest_path: str) -> str:
        return self.read_bytes(guest_path).decode()

    def listdir(self, guest_path: str) -> list[str]:
        out, errors = self._debugfs(f'ls -p "{self.resolve(guest_path)}"')
        if errors:
            raise FileNotFoundError(f"{guest_path}: {errors}")
        names = []
        for line in out.decode(errors="replace").splitlines():
            fields = line.strip().split("/")
            if len(fields) >= 6 and fields[5] not in ("", ".", ".."):
                names.append(fields[5])
        return sorted(names)

    def extract(self, guest_dir: str, host_dir: Path) -> Path:
        """Copy a guest directory out (``rdump``); returns the host path of the copy."""
        host_dir.mkdir(parents=True, exist_ok=True)
        _, errors = self._debugfs(f'rdump "{self.resolve(guest_dir)}" "{host_dir}"')
        if errors:
            raise OSError(f"debugfs cannot dump {guest_dir}: {errors}")
        return host_dir / os.path.basename(guest_dir.rstrip("/"))

    def journal(self, workdir: Path, *args: str) -> str:
        """The guest's persistent journal, rendered by the host's journalctl."""
        copy = self.extract("/var/log/journal", workdir / "journal-copy")
        proc = subprocess.run(
            ["journalctl", "--directory", str(copy), "--no-pager", *args],
            capture_output=True,
            text=True,
            check=False,
        )
        shutil.rmtree(copy.parent, ignore_errors=True)
        return proc.stdout

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


@contextlib.contextmanager
def booted(spec: VmSpec) -> Iterator[BootResult]:
    """Boot, yield the result, then delete the flattened disk (it is as large as the image)."""
    result = boot(spec)
    try:
        yield result
    finally:
        result.disk.remove()
