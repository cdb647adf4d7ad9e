"""Fake target roots: a /sys/class/net tree and stand-ins for installed programs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def make_sysfs(
    base: Path, nics: Mapping[str, str], *, carrier: Mapping[str, bool] | None = None
) -> None:
    """A fake /sys/class/net: one directory per NIC with address, carrier and device."""
    for name, mac in nics.items():
        nic = base / "sys/class/net" / name
        (nic / "device").mkdir(parents=True)
        (nic / "address").write_text(mac + "\n")
        up = True if carrier is None else carrier.get(name, False)
        (nic / "carrier").write_text("1\n" if up else "0\n")
    lo = base / "sys/class/net/lo"
    lo.mkdir(parents=True, exist_ok=True)
    (lo / "address").write_text("00:00:00:00:00:00\n")


def install(base: Path, *paths: str) -> None:
    """Pretend the target has these programs/files (empty files are enough to be detected)."""
    for path in paths:
        target = base / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if path == "/etc/network/interfaces":  # as Debian ships it
            target.write_text("source /etc/network/interfaces.d/*\n")
        else:
            target.touch()
