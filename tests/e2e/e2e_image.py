"""Build and cache the Debian 12 disk images the VM tests and bench/vm_boot.py boot.

Two images share one base root filesystem (a tarball made once by
``debootstrap --variant=minbase``):
``cloud-init`` adds Debian's cloud-init package, ``metaboot`` adds our agent through
``metaboot image prepare`` and ``metaboot image seal``. Each finished image is a directory holding
``disk.raw`` (ext4 made by ``mkfs.ext4 -d``: no loop mount, no root-only kernel feature), the
kernel and initrd copied out of its /boot (QEMU boots them directly) and a ``manifest.json``.

Everything is cached under ``$METABOOT_E2E_CACHE`` (default /var/tmp/metaboot-e2e), in a directory
named after a hash of the inputs: the package lists, the source of the recipe functions below,
and for our image the metaboot sources it installs. Changing any of them gives a new key and so a
rebuild; nothing stale is ever booted. A file lock serialises builds between processes, and
every build happens in a temporary directory renamed into place when complete, so a crash or a
concurrent reader never sees half an image.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from metaboot.guest.image import GUEST_PARTS

log = logging.getLogger("e2e.image")

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("METABOOT_E2E_CACHE", "/var/tmp/metaboot-e2e"))
SUITE = "bookworm"
MIRROR = os.environ.get("METABOOT_E2E_MIRROR", "http://deb.debian.org/debian")

# What every image has: a bootable minimal Debian with SSH, ifupdown and a DHCP client.
BASE_PACKAGES = (
    "systemd",
    "systemd-sysv",
    "udev",
    "kmod",
    "initramfs-tools",
    "linux-image-amd64",
    "openssh-server",
    "ifupdown",
    "isc-dhcp-client",
    "iproute2",
    "procps",
    "locales",
    "sudo",
    "python3",
    "python3-yaml",
)
CLOUDINIT_PACKAGES = ("cloud-init",)

# What `metaboot image prepare` copies into the image (its source is part of the cache key).
GUEST_SOURCES = tuple(f"metaboot/{part}" for part in GUEST_PARTS)

# Test instrumentation, not part of metaboot: when the guest shuts down (the agent's or
# cloud-init's power_state), print each agent's own status and analysis and systemd's timing
# on the serial console, between markers the harness and the bench parse.
REPORT_SCRIPT = r"""#!/bin/sh
exec >/dev/ttyS0 2>&1
section() { echo "=== e2e-report: $1 ==="; }
section begin
if command -v cloud-init >/dev/null; then
    section "cloud-init status"; cloud-init status --long
    section "cloud-init analyze"; cloud-init analyze show 2>&1 | tail -n 40
    section "cloud-init blame"; cloud-init analyze blame 2>&1 | head -n 25
fi
if command -v metaboot >/dev/null; then
    section "metaboot status"; metaboot status --long; echo "exit=$?"
    section "metaboot status json"; metaboot status --format json; echo
    section "metaboot analyze"; metaboot analyze 2>&1
fi
section "systemd-analyze"; systemd-analyze time 2>&1
section "systemd-analyze blame"; systemd-analyze blame 2>&1 | head -n 25
section "systemd-analyze critical-chain"; systemd-analyze critical-chain 2>&1 | head -n 30
section end
"""

# Stopped before the serial getty, whose hangup of ttyS0 would cut the report short.
REPORT_UNIT = """[Unit]
Description=metaboot e2e: report status and boot timing on the console at shutdown
After=local-fs.target getty.target serial-getty@ttyS0.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
ExecStop=/usr/local/sbin/e2e-report
TimeoutStopSec=90

[Install]
WantedBy=multi-user.target
"""


@dataclass(frozen=True)
class Image:
    """A finished, cached disk image and the kernel that boots it."""

    name: str
    directory: Path

    @property
    def disk(self) -> Path:
        return self.directory / "disk.raw"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def manifest(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.directory / "manifest.json").read_text())
        return data


# ---- helpers -----------------------------------------------------------------------------


def _run(args: list[str], logfile: Path, **kwargs: object) -> None:
    """Run a build step, appending its output to the build log; fail with the log's tail."""
    with logfile.open("ab") as out:
        out.write(f"\n$ {' '.join(args)}\n".encode())
        out.flush()
        started = time.monotonic()
        proc = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, **kwargs)  # type: ignore[call-overload]
        out.write(f"# exit {proc.returncode} after {time.monotonic() - started:.1f}s\n".encode())
    if proc.returncode != 0:
        tail = logfile.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"image build step failed: {' '.join(args)}\n--- {logfile} ---\n{tail}")


def _chroot(root: Path, command: str, logfile: Path) -> None:
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LC_ALL": "C",
        "HOME": "/root",
    }
    _run(["chroot", str(root), "/bin/sh", "-ec", command], logfile, env=env)


@contextlib.contextmanager
def _no_daemons(root: Path) -> Iterator[None]:
    """Packages installed into the tree must not start (or try to start) services."""
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    resolv = root / "etc/resolv.conf"
    had_resolv = resolv.exists() or resolv.is_symlink()
    if not had_resolv:
        shutil.copyfile("/etc/resolv.conf", resolv)
    try:
        yield
    finally:
        policy.unlink()
        if not had_resolv:
            resolv.unlink()


def _write(root: Path, guest_path: str, text: str, mode: int = 0o644) -> None:
    target = root / guest_path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)


def _digest(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            if not part.exists():
                h.update(f"absent:{part.name}".encode())
                continue
            files = sorted(p for p in part.rglob("*") if p.is_file()) if part.is_dir() else [part]
            for f in files:
                if "__pycache__" in f.parts:
                    continue
                h.update(str(f.relative_to(REPO) if f.is_relative_to(REPO) else f).encode())
                h.update(f.read_bytes())
        else:
            h.update(repr(part).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def _logfile(stem: str) -> Path:
    """Build logs live outside the build directories so a failed build's log survives."""
    logs = CACHE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"{stem}.log"
    path.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".build.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_HELD: list[IO[str]] = []  # the in-use locks of the images this process boots


def _hold(image_dir: Path) -> bool:
    """Mark a published image as in use by this process until it exits (a shared lock on its
    ``.in-use`` file), so that another checkout's test run, building a newer image of the same
    name, does not delete it between two of our boots. False if it is gone or incomplete."""
    try:
        handle = (image_dir / ".in-use").open("a")
    except FileNotFoundError:
        return False
    fcntl.flock(handle, fcntl.LOCK_SH)  # waits while someone is deleting it
    if not (image_dir / "manifest.json").exists():
        handle.close()
        return False
    _HELD.append(handle)
    return True


def _remove_unless_in_use(old: Path) -> None:
    if not old.is_dir():
        old.unlink(missing_ok=True)
        return
    try:
        handle = (old / ".in-use").open("a")
    except FileNotFoundError:  # an image from before the in-use locks, or half gone
        shutil.rmtree(old, ignore_errors=True)
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("keeping %s: a test run is using it", old.name)
            return
        shutil.rmtree(old, ignore_errors=True)  # under the lock: nobody takes it meanwhile


def _publish(tmp: Path, final: Path, stem: str) -> None:
    """Atomically move a finished build into place and drop older builds of the same thing
    (``<stem>-<key>`` with another key; other images are left alone). An older image that a
    test run still holds (:func:`_hold`) is kept; a later build removes it once it is free."""
    os.rename(tmp, final)
    pattern = re.compile(re.escape(stem) + r"-[0-9a-f]{16}(\.tar)?")
    for old in CACHE.iterdir():
        if old != final and pattern.fullmatch(old.name):
            _remove_unless_in_use(old)
    current = final.name.removesuffix(".tar") + ".log"
    log_pattern = re.compile(re.escape(stem) + r"-[0-9a-f]{16}\.log")
    for old_log in (CACHE / "logs").glob("*.log"):
        if old_log.name != current and log_pattern.fullmatch(old_log.name):
            old_log.unlink()


# ---- recipes (their source text is part of the cache key) ----------------------------------


def recipe_base(root: Path, logfile: Path) -> None:
    """debootstrap a minimal Debian 12 and make it boot fast under TCG with a clean identity."""
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=" + ",".join(BASE_PACKAGES),
            SUITE,
            str(root),
            MIRROR,
        ],
        logfile,
    )
    # A small initrd with only what finds the disks: faster to load and unpack under TCG. The
    # CD-ROM driver is in it too, so that a config drive on the IDE CD-ROM exists as early as
    # the virtio disks do (ds-identify looks for it when systemd starts, before udev loads
    # drivers from the root filesystem).
    _write(root, "/etc/initramfs-tools/conf.d/metaboot-e2e.conf", "MODULES=list\n")
    _write(root, "/etc/initramfs-tools/modules", "virtio_pci\nvirtio_blk\next4\nata_piix\nsr_mod\n")
    _chroot(root, "update-initramfs -u -k all", logfile)
    # A generated default locale, as distribution cloud images have (Debian's locale-gen takes
    # no locale argument, so cloud-init's locale module can only select a generated one).
    _write(root, "/etc/locale.gen", "en_US.UTF-8 UTF-8\n")
    _write(root, "/etc/default/locale", "LANG=en_US.UTF-8\n")
    _chroot(root, "locale-gen", logfile)
    _write(root, "/etc/fstab", "/dev/vda / ext4 rw,errors=remount-ro 0 0\n")
    _write(root, "/etc/hostname", "debian\n")
    _write(root, "/etc/hosts", "127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n")
    _write(
        root,
        "/etc/network/interfaces",
        "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n",
    )
    (root / "etc/network/interfaces.d").mkdir(parents=True, exist_ok=True)
    # Persistent journal, so timings and messages can be read from the powered-off disk.
    (root / "var/log/journal").mkdir(parents=True, exist_ok=True)
    # Sealed like a published image: no host keys, no machine identity, no apt downloads.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    _write(root, "/etc/machine-id", "")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    _chroot(root, "apt-get clean", logfile)
    for lists in (root / "var/lib/apt/lists").glob("*_*"):
        lists.unlink()


def recipe_cloudinit(root: Path, logfile: Path) -> None:
    """Debian's own cloud-init package, configured as it ships."""
    with _no_daemons(root):
        _chroot(
            root,
            "apt-get update -qq && apt-get install -y -qq --no-install-recommends "
            + " ".join(CLOUDINIT_PACKAGES)
            + " && apt-get clean",
            logfile,
        )
    for lists in (root / "var/lib/apt/lists").glob("*_*"):
        lists.unlink()
    _install_report(root)


def recipe_metaboot(
    root: Path, logfile: Path, prepare_args: tuple[str, ...], agent_yaml_suffix: str
) -> None:
    """Our agent, installed by our own preparation command and sealed by our seal command."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    _run(
        [sys.executable, "-m", "metaboot.cli", "image", "prepare", str(root), *prepare_args],
        logfile,
        env=env,
    )
    if agent_yaml_suffix:
        # A deliberately broken image (the agent must still boot it and say what is wrong).
        with (root / "etc/metaboot/agent.yaml").open("a") as handle:
            handle.write(agent_yaml_suffix)
    _install_report(root)
    _run([sys.executable, "-m", "metaboot.cli", "image", "seal", str(root)], logfile, env=env)


def _install_report(root: Path) -> None:
    _write(root, "/usr/local/sbin/e2e-report", REPORT_SCRIPT, 0o755)
    _write(root, "/etc/systemd/system/e2e-report.service", REPORT_UNIT)
    wants = root / "etc/systemd/system/multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "e2e-report.service"
    if not link.is_symlink():
        link.symlink_to("/etc/systemd/system/e2e-report.service")


# ---- building ------------------------------------------------------------------------------


def _base_key() -> str:
    return _digest("base-1", SUITE, BASE_PACKAGES, inspect.getsource(recipe_base))


def base_tarball() -> Path:
    """The shared base root filesystem, built once (callers hold the build lock)."""
    key = _base_key()
    final = CACHE / f"base-{key}.tar"
    if final.exists():
        return final
    work = CACHE / f".base-{key}.{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    logfile = _logfile(f"base-{key}")
    log.info("building the base root filesystem (debootstrap; several minutes)")
    try:
        root = work / "root"
        recipe_base(root, logfile)
        tmp_tar = work / "base.tar"
        _run(
            ["tar", "-C", str(root), "--numeric-owner", "--xattrs", "-cpf", str(tmp_tar), "."],
            logfile,
        )
        os.rename(tmp_tar, CACHE / f".base-{key}.tar.tmp")
        _publish(CACHE / f".base-{key}.tar.tmp", final, "base")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def _build_image(
    name: str, key: str, layer: Callable[[Path, Path], None], manifest: dict[str, object]
) -> Image:
    final = CACHE / f"image-{name}-{key}"
    if _hold(final):
        return Image(name, final)
    with _lock():
        if _hold(final):
            return Image(name, final)
        tarball = base_tarball()
        work = CACHE / f".image-{name}-{key}.{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        root = work / "root"
        root.mkdir(parents=True)
        logfile = _logfile(f"image-{name}-{key}")
        log.info("building the %s image", name)
        started = time.monotonic()
        try:
            _run(
                ["tar", "-C", str(root), "--numeric-owner", "--xattrs", "-xpf", str(tarball)],
                logfile,
            )
            layer(root, logfile)
            kernels = sorted((root / "boot").glob("vmlinuz-*"))
            initrds = sorted((root / "boot").glob("initrd.img-*"))
            if not kernels or not initrds:
                raise RuntimeError(f"no kernel or initrd in {root}/boot")
            shutil.copyfile(kernels[-1], work / "vmlinuz")
            shutil.copyfile(initrds[-1], work / "initrd.img")
            used = int(
                subprocess.run(
                    ["du", "-s", "--block-size=1M", str(root)],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.split()[0]
            )
            size_mb = used + 768  # room for the first boot's logs, keys and journal
            _run(
                [
                    "mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(root),
                    str(work / "disk.raw"), f"{size_mb}M",
                ],
                logfile,
            )  # fmt: skip
            shutil.rmtree(root)
            info = dict(manifest, name=name, key=key, base=tarball.name,
                        kernel=kernels[-1].name, disk_mb=size_mb,
                        built_seconds=round(time.monotonic() - started, 1))  # fmt: skip
            (work / "manifest.json").write_text(json.dumps(info, indent=2) + "\n")
            _publish(work, final, f"image-{name}")
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        if not _hold(final):
            raise RuntimeError(f"{final} vanished right after it was built")
    return Image(name, final)


def cloudinit_image() -> Image:
    """Debian 12 with Debian's cloud-init, as distributions' cloud images carry it."""
    key = _digest(_base_key(), CLOUDINIT_PACKAGES, inspect.getsource(recipe_cloudinit),
                  REPORT_SCRIPT, REPORT_UNIT)  # fmt: skip
    return _build_image("cloud-init", key, recipe_cloudinit, {"agent": "cloud-init"})


METABOOT_PREPARE_ARGS = ("--default-user", "debian", "--strip-domain", "novalocal")


def metaboot_image(
    prepare_args: tuple[str, ...] = METABOOT_PREPARE_ARGS,
    variant: str = "",
    agent_yaml_suffix: str = "",
) -> Image:
    """Debian 12 with the metaboot agent installed by ``metaboot image prepare`` and sealed."""
    sources = [REPO / p for p in GUEST_SOURCES] + [REPO / "pyproject.toml"]
    key = _digest(_base_key(), prepare_args, agent_yaml_suffix, inspect.getsource(recipe_metaboot),
                  REPORT_SCRIPT, REPORT_UNIT, *sources)  # fmt: skip
    name = "metaboot" + (f"-{variant}" if variant else "")

    def layer(root: Path, logfile: Path) -> None:
        recipe_metaboot(root, logfile, prepare_args, agent_yaml_suffix)

    return _build_image(name, key, layer, {"agent": "metaboot", "prepare": list(prepare_args)})


def main() -> int:
    """``python -m tests.e2e.e2e_image [cloud-init|metaboot]``: build (or find) and print images."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    wanted = sys.argv[1:] or ["cloud-init", "metaboot"]
    for name in wanted:
        image = cloudinit_image() if name == "cloud-init" else metaboot_image()
        print(image.directory, json.dumps(image.manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
