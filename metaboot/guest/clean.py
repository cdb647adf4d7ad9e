"""``metaboot clean``: return a system to the never-booted state before it becomes an image.

What people otherwise do by hand when sealing an image: forget the instance (so the next boot is
a first boot), optionally the logs, the machine-id (so clones do not share one) and the seed.
"""

from __future__ import annotations

import shutil

from metaboot.guest import layout
from metaboot.guest.records import dataclass, field
from metaboot.guest.system import Root
from metaboot.imports import import_module


@dataclass
class CleanReport:
    removed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _remove_tree_entry(root: Root, guest_path: str, report: CleanReport) -> None:
    host = root.path(guest_path)
    if host.is_symlink() or host.is_file():
        host.unlink()
    elif host.is_dir():
        shutil.rmtree(host)
    else:
        return
    report.removed.append(guest_path)


def clean(
    root: Root,
    *,
    logs: bool = False,
    machine_id: bool = False,
    seed: bool = False,
    seal: bool = False,
) -> CleanReport:
    report = CleanReport()
    for name in root.listdir(layout.STATE_DIR):
        path = f"{layout.STATE_DIR}/{name}"
        if path == layout.SEED_DIR and not seed:
            continue
        _remove_tree_entry(root, path, report)
    _remove_tree_entry(root, layout.RUN_DIR, report)
    # Host keys started ahead for the forgotten instance (the next first boot makes its own).
    from metaboot.guest.os import hostkeys

    if root.exists(hostkeys.STAGING):
        hostkeys.discard(root)  # stops jobs still running, removes their files
        _remove_tree_entry(root, hostkeys.STAGING, report)  # anything else left in it
        if hostkeys.STAGING not in report.removed:
            report.removed.append(hostkeys.STAGING)
    if logs:
        for path in (layout.LOG_FILE, layout.OUTPUT_LOG_FILE):
            host = root.path(path)
            if host.is_file() or host.is_symlink():
                host.unlink()
                report.removed.append(path)
    if machine_id:
        _reset_machine_id(root, report)
    if seal:
        try:
            image = import_module("metaboot.guest.image")
        except ImportError:
            report.notes.append("--seal: image sealing is not installed; skipped")
        else:
            sealed = image.seal(root)
            report.removed += [p for p in sealed or [] if p not in report.removed]
            report.notes.append("sealed the image (metaboot.guest.image.seal)")
    return report


def _reset_machine_id(root: Root, report: CleanReport) -> None:
    """An empty machine-id, as ``image seal`` leaves it: systemd makes a new id at the next
    boot (machine-id(5)). Not ``uninitialized``: that also makes the boot systemd's "first
    boot", which applies the unit presets (``systemctl preset-all``) and can re-enable services
    the image disabled. Without systemd the file is removed so whatever init there is makes a
    new one."""
    systemd = any(
        root.exists(p)
        for p in ("/lib/systemd/systemd", "/usr/lib/systemd/systemd", "/run/systemd/system")
    )
    if systemd:
        root.write_file("/etc/machine-id", "", mode=0o444)
        report.notes.append("/etc/machine-id emptied (systemd makes a new one at the next boot)")
    elif root.remove("/etc/machine-id"):
        report.removed.append("/etc/machine-id")
    if root.remove("/var/lib/dbus/machine-id"):
        report.removed.append("/var/lib/dbus/machine-id")
