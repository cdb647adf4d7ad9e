"""A NIC that is down answers EINVAL for its carrier (as every NIC does in the local stage,
before the network starts, which is when the agent writes the network configuration). Found
by the VM tests: the whole network configuration failed on a real boot."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from metaboot.guest.network import nics
from metaboot.guest.system import Root
from tests.guest.network.netroot import make_sysfs


def test_a_down_nic_has_no_carrier_and_is_still_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_sysfs(
        tmp_path, {"ens2": "fa:16:3e:00:00:01", "ens3": "fa:16:3e:00:00:02"}, carrier={"ens3": True}
    )
    original = Root.read_text

    def sysfs_read(self: Root, guest_path: str, default: str | None = None) -> str:
        if guest_path.endswith("/ens2/carrier"):
            raise OSError(errno.EINVAL, "Invalid argument")
        return original(self, guest_path, default)

    monkeypatch.setattr(Root, "read_text", sysfs_read)
    found = nics.read_nics(Root(tmp_path))
    assert sorted((n.name, n.carrier) for n in found) == [("ens2", False), ("ens3", True)]
