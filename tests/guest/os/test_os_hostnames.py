"""Host name files: validation, /etc/hostname, and both /etc/hosts modes."""

from __future__ import annotations

import pytest

from metaboot.errors import ConfigError
from metaboot.guest.os import hostnames
from metaboot.guest.system import Root
from tests.guest.os.guestroots import HOSTS


@pytest.mark.parametrize("name", ["web-1", "a", "x" * 63, "web-1.example.com"])
def test_valid_names(name: str) -> None:
    assert hostnames.check_hostname(name, "fqdn") == name


@pytest.mark.parametrize(
    "name", ["-web", "web-", "we_b", "x" * 64, "a..b", "", "web 1", "ö", "web\n", "a.b\n"]
)
def test_invalid_names(name: str) -> None:
    with pytest.raises(ConfigError, match=r"not a valid host name|non-empty"):
        hostnames.check_hostname(name)


def test_write_hostname(guest_root: Root) -> None:
    assert hostnames.current_hostname(guest_root) == "debian"
    assert hostnames.write_hostname(guest_root, "web-1")
    assert guest_root.read_text("/etc/hostname") == "web-1\n"
    assert not hostnames.write_hostname(guest_root, "web-1")
    assert not hostnames.set_running_hostname(guest_root, "web-1")  # not the live system


def test_render_hosts() -> None:
    text = hostnames.render_hosts("web-1", "web-1.example.com")
    assert "127.0.1.1 web-1.example.com web-1\n" in text
    assert "127.0.0.1 localhost\n" in text and "::1 localhost ip6-localhost ip6-loopback\n" in text
    assert "127.0.1.1 web-1\n" in hostnames.render_hosts("web-1", None)


def test_local_entry_replaced_in_place_rest_untouched() -> None:
    updated = hostnames.update_local_entry(HOSTS, "web-1", "web-1.example.com")
    assert updated == HOSTS.replace("127.0.1.1\tdebian", "127.0.1.1 web-1.example.com web-1")


def test_local_entry_added_after_localhost() -> None:
    text = "127.0.0.1 localhost\n10.0.0.5 db # database\n"
    assert hostnames.update_local_entry(text, "web-1", None) == (
        "127.0.0.1 localhost\n127.0.1.1 web-1\n10.0.0.5 db # database\n"
    )


def test_local_entry_keeps_comment() -> None:
    text = "127.0.1.1 old # set by me\n"
    assert hostnames.update_local_entry(text, "new", None) == "127.0.1.1 new # set by me\n"
