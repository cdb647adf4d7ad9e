"""set_hostname, update_hostname and update_etc_hosts over a fresh Debian root."""

from __future__ import annotations

import pytest

from metaboot.errors import ConfigError
from metaboot.guest.modules import _hostnames
from metaboot.guest.system import Root
from tests.guest.modules.modharness import MakeHarness, instance_data


def test_metadata_name_with_domain(guest_root: Root, harness: MakeHarness) -> None:
    h = harness(guest_root, instance=instance_data(local_hostname="web-1.example.com"))
    report = h.run("set_hostname")
    assert guest_root.read_text("/etc/hostname") == "web-1\n"
    assert report.changes == ["host name set to web-1 in /etc/hostname"]
    h.run("update_etc_hosts")
    hosts = guest_root.read_text("/etc/hosts")
    assert "127.0.1.1 web-1.example.com web-1\n" in hosts and "debian" not in hosts


def test_strip_domain_drops_novalocal(guest_root: Root, harness: MakeHarness) -> None:
    h = harness(
        guest_root,
        "#cloud-config\nstrip_domain: [novalocal]\n",
        instance=instance_data(local_hostname="web-1.novalocal"),
    )
    h.run("set_hostname")
    h.run("update_etc_hosts")
    assert guest_root.read_text("/etc/hostname") == "web-1\n"
    assert "127.0.1.1 web-1\n" in guest_root.read_text("/etc/hosts")
    # Without the setting, cloud-init's behaviour: the suffix is the domain.
    h = harness(guest_root, instance=instance_data(local_hostname="web-1.novalocal"))
    h.run("update_etc_hosts")
    assert "127.0.1.1 web-1.novalocal web-1\n" in guest_root.read_text("/etc/hosts")


def test_fqdn_and_prefer_fqdn(guest_root: Root, harness: MakeHarness) -> None:
    h = harness(
        guest_root,
        "#cloud-config\nfqdn: db.internal.example\nprefer_fqdn_over_hostname: true\n",
    )
    h.run("set_hostname")
    h.run("update_etc_hosts")
    assert guest_root.read_text("/etc/hostname") == "db.internal.example\n"
    assert "127.0.1.1 db.internal.example db\n" in guest_root.read_text("/etc/hosts")


def test_hostname_with_dots_is_an_fqdn(guest_root: Root, harness: MakeHarness) -> None:
    h = harness(guest_root, "#cloud-config\nhostname: app.example.org\n")
    h.run("set_hostname")
    assert guest_root.read_text("/etc/hostname") == "app\n"


def test_hostname_takes_metadata_domain(guest_root: Root, harness: MakeHarness) -> None:
    h = harness(
        guest_root,
        "#cloud-config\nhostname: api\nmanage_etc_hosts: localhost\n",
        instance=instance_data(local_hostname="vm-7.cloud.example"),
    )
    h.run("set_hostname")
    h.run("update_etc_hosts")
    assert guest_root.read_text("/etc/hostname") == "api\n"
    hosts = guest_root.read_text("/etc/hosts")
    # localhost mode edits only the machine's own line and keeps the rest.
    assert hosts.splitlines()[1] == "127.0.1.1 api.cloud.example api"
    assert "ff02::2 ip6-allrouters" in hosts and "# The following lines" in hosts


def test_preserve_hostname(guest_root: Root, harness: MakeHarness) -> None:
    h = harness(guest_root, "#cloud-config\npreserve_hostname: true\nhostname: other\n")
    h.run("set_hostname")
    h.run("update_hostname")
    assert guest_root.read_text("/etc/hostname") == "debian\n"


def test_ip_address_name(guest_root: Root, harness: MakeHarness) -> None:
    h = harness(guest_root, instance=instance_data(local_hostname="10.0.3.17"))
    h.run("set_hostname")
    assert guest_root.read_text("/etc/hostname") == "ip-10-0-3-17\n"


def test_invalid_names_change_nothing(guest_root: Root, harness: MakeHarness) -> None:
    h = harness(guest_root, instance=instance_data(local_hostname="bad_name!.example"))
    with pytest.raises(ConfigError, match=r"metadata hostname.*not a valid host name"):
        h.run("set_hostname")
    assert guest_root.read_text("/etc/hostname") == "debian\n"


def test_no_name_anywhere(guest_root: Root, harness: MakeHarness) -> None:
    h = harness(guest_root, instance=instance_data(local_hostname=None))
    report = h.run("set_hostname")
    assert report.warnings and guest_root.read_text("/etc/hostname") == "debian\n"


def test_update_hostname_follows_metadata_but_not_over_the_user(
    guest_root: Root, harness: MakeHarness
) -> None:
    harness(guest_root, instance=instance_data(local_hostname="one")).run("set_hostname")
    # Next boot: the platform renamed the instance.
    harness(guest_root, instance=instance_data(local_hostname="two")).run("update_hostname")
    assert guest_root.read_text("/etc/hostname") == "two\n"
    # The user then sets their own name; a later metadata change leaves it alone.
    guest_root.write_file("/etc/hostname", "mine\n")
    report = harness(guest_root, instance=instance_data(local_hostname="three")).run(
        "update_hostname"
    )
    assert guest_root.read_text("/etc/hostname") == "mine\n"
    assert "set by someone else" in report.changes[0]


def test_manage_etc_hosts_false_and_template(guest_root: Root, harness: MakeHarness) -> None:
    before = guest_root.read_text("/etc/hosts")
    harness(guest_root, "#cloud-config\nmanage_etc_hosts: false\n").run("update_etc_hosts")
    assert guest_root.read_text("/etc/hosts") == before
    report = harness(
        guest_root, "#cloud-config\nmanage_etc_hosts: template\n", deprecated=True
    ).run("update_etc_hosts")
    assert "deprecated" in report.warnings[0]
    assert guest_root.read_text("/etc/hosts").startswith("# Written by metaboot")


def test_resolution_rules() -> None:
    inst = instance_data(local_hostname="meta.example.net")
    assert _hostnames.resolve({}, inst) == _hostnames.Names("meta", "meta.example.net")
    assert _hostnames.resolve({"fqdn": "a.b.c", "hostname": "x"}, inst) == _hostnames.Names(
        "x", "a.b.c"
    )
    assert _hostnames.resolve({"strip_domain": "example.net"}, inst) == _hostnames.Names(
        "meta", None
    )
    assert _hostnames.strip_domains("vm.NovaLocal.", ["novalocal"]) == "vm"
    assert _hostnames.strip_domains("novalocal", ["novalocal"]) == "novalocal"
