"""set_passwords: chpasswd (both forms), password, RANDOM on the console only, ssh_pwauth, and
publish_password against a nova-like password API on loopback."""

from __future__ import annotations

import base64
import logging
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from metaboot.errors import ConfigError
from metaboot.guest.os import sshd
from metaboot.guest.os.passwords import hash_password
from metaboot.guest.system import Root
from tests.guest.modules.modharness import KeyPair, MakeHarness, instance_data, rows

# Every assertion holds for the Python editor and for shadow-utils alike.
pytestmark = pytest.mark.usefixtures("account_way")


def verify(hashed: str, password: str) -> bool:
    salt = hashed.lstrip("!").split("$")[2]
    again = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return again == hashed.lstrip("!")


def make_users(guest_root: Root, harness: MakeHarness) -> None:
    harness(guest_root, "#cloud-config\nusers: [default, {name: alice}, {name: bob}]\n").run(
        "users_groups"
    )


def test_chpasswd_users_form(
    guest_root: Root, harness: MakeHarness, caplog: pytest.LogCaptureFixture
) -> None:
    make_users(guest_root, harness)
    given = hash_password("bob-hash-pw")
    h = harness(
        guest_root,
        f"""#cloud-config
chpasswd:
  expire: false
  users:
    - name: alice
      password: alice-text-pw
      type: text
    - name: bob
      password: "{given}"
    - name: debian
      type: RANDOM
""",
    )
    caplog.set_level(logging.DEBUG)
    report = h.run("set_passwords")
    shadow = rows(guest_root, "shadow")
    assert verify(shadow["alice"][1], "alice-text-pw")
    assert shadow["bob"][1] == given
    # The random password: shown once on the console, and it is the one in shadow.
    assert len(h.console) == 1 and h.console[0].startswith("Set the following 'random' passwords\n")
    user, password = h.console[0].splitlines()[1].split(":", 1)
    assert user == "debian" and len(password) == 20
    assert verify(shadow["debian"][1], password)
    # Never in the log, the report, or anywhere but the console.
    assert password not in caplog.text and password not in repr(report)
    assert "alice-text-pw" not in caplog.text + repr(report)
    assert shadow["alice"][2] != "0"  # expire: false


def test_chpasswd_list_form_and_expire(guest_root: Root, harness: MakeHarness) -> None:
    make_users(guest_root, harness)
    h = harness(
        guest_root,
        "#cloud-config\nchpasswd:\n  list:\n    - alice:listed-pw\n    - bob:R\n",
        deprecated=True,
    )
    report = h.run("set_passwords")
    shadow = rows(guest_root, "shadow")
    assert verify(shadow["alice"][1], "listed-pw")
    assert h.console[0].splitlines()[1].startswith("bob:")
    assert shadow["alice"][2] == "0" and shadow["bob"][2] == "0"  # expire defaults to true
    assert any("deprecated" in w for w in report.warnings)


def test_password_goes_to_default_user(guest_root: Root, harness: MakeHarness) -> None:
    make_users(guest_root, harness)
    harness(guest_root, "#cloud-config\npassword: debian-pw\nchpasswd: {expire: false}\n").run(
        "set_passwords"
    )
    assert verify(rows(guest_root, "shadow")["debian"][1], "debian-pw")


def test_unknown_user_fails_alone(guest_root: Root, harness: MakeHarness) -> None:
    make_users(guest_root, harness)
    h = harness(
        guest_root,
        "#cloud-config\nchpasswd:\n  expire: false\n  users:\n"
        "    - {name: ghost, password: x, type: text}\n"
        "    - {name: alice, password: y, type: text}\n",
    )
    with pytest.raises(ConfigError, match="user ghost does not exist"):
        h.run("set_passwords")
    assert verify(rows(guest_root, "shadow")["alice"][1], "y")


def test_hash_type_must_be_a_hash(guest_root: Root, harness: MakeHarness) -> None:
    make_users(guest_root, harness)
    h = harness(
        guest_root, "#cloud-config\nchpasswd:\n  users:\n    - {name: alice, password: plain}\n"
    )
    with pytest.raises(ConfigError, match="type is hash but the password is not a crypt hash"):
        h.run("set_passwords")


@pytest.mark.parametrize(("value", "expected"), [(True, "yes"), (False, "no")])
def test_ssh_pwauth_dropin(
    guest_root: Root, harness: MakeHarness, value: bool, expected: str
) -> None:
    report = harness(guest_root, f"#cloud-config\nssh_pwauth: {str(value).lower()}\n").run(
        "set_passwords"
    )
    assert (
        guest_root.read_text(sshd.DROPIN).splitlines()[-1] == f"PasswordAuthentication {expected}"
    )
    assert f"PasswordAuthentication {expected} in {sshd.DROPIN}" in report.changes
    assert any("not the live system" in c for c in report.changes)  # no restart of a tree


def test_ssh_pwauth_without_include_edits_sshd_config(
    guest_root: Root, harness: MakeHarness
) -> None:
    guest_root.write_file("/etc/ssh/sshd_config", "UsePAM yes\n#PasswordAuthentication yes\n")
    harness(guest_root, "#cloud-config\nssh_pwauth: false\n").run("set_passwords")
    assert guest_root.read_text("/etc/ssh/sshd_config") == (
        "UsePAM yes\n#PasswordAuthentication yes\n\nPasswordAuthentication no\n"
    )


def test_ssh_pwauth_without_sshd_is_a_warning(guest_root: Root, harness: MakeHarness) -> None:
    guest_root.remove("/etc/ssh/sshd_config")
    report = harness(guest_root, "#cloud-config\nssh_pwauth: true\n").run("set_passwords")
    assert "does not exist" in report.warnings[0]
    assert not guest_root.exists(sshd.DROPIN)


def test_ssh_pwauth_overridden_is_reported(guest_root: Root, harness: MakeHarness) -> None:
    guest_root.write_file("/etc/ssh/sshd_config.d/10-site.conf", "PasswordAuthentication yes\n")
    report = harness(guest_root, "#cloud-config\nssh_pwauth: false\n").run("set_passwords")
    assert "10-site.conf line 1 sets PasswordAuthentication yes" in report.warnings[0]


class PasswordAPI:
    """nova's password endpoint: GET returns what is stored, POST stores once (then 409)."""

    def __init__(self) -> None:
        self.stored = b""
        self.posts: list[bytes] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/openstack/latest/password":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(api.stored)))
                self.end_headers()
                self.wfile.write(api.stored)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                api.posts.append(body)
                if api.stored:
                    self.send_error(409)
                    return
                api.stored = body
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def password_api() -> Iterator[PasswordAPI]:
    api = PasswordAPI()
    thread = threading.Thread(target=api.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        api.server.shutdown()
        api.server.server_close()
        thread.join()


def decrypt(keypair: KeyPair, body: bytes, tmp_path: Path) -> str:
    blob = tmp_path / "cipher"
    blob.write_bytes(base64.b64decode(body))
    return subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-decrypt",
            "-inkey",
            str(keypair.private),
            "-in",
            str(blob),
            "-pkeyopt",
            "rsa_padding_mode:pkcs1",
        ],
        capture_output=True,
        check=True,
        text=True,
    ).stdout


def test_publish_password(
    guest_root: Root,
    harness: MakeHarness,
    keypairs: dict[str, KeyPair],
    password_api: PasswordAPI,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    make_users(guest_root, harness)
    caplog.set_level(logging.DEBUG)
    instance = instance_data(
        public_keys=[keypairs["operator"].public, keypairs["alice"].public],
        service_url=password_api.url,
        source="OpenStack",
    )
    h = harness(guest_root, "#cloud-config\npublish_password: true\n", instance=instance)
    report = h.run("set_passwords")
    assert len(password_api.posts) == 1
    password = decrypt(keypairs["operator"], password_api.stored, tmp_path)
    assert len(password) == 20
    assert verify(rows(guest_root, "shadow")["debian"][1], password)
    assert password not in caplog.text + repr(report) + "".join(h.console)
    # Once the platform holds a password, a new run changes nothing (no second POST).
    before = rows(guest_root, "shadow")["debian"][1]
    report = harness(guest_root, "#cloud-config\npublish_password: true\n", instance=instance).run(
        "set_passwords"
    )
    assert len(password_api.posts) == 1
    assert rows(guest_root, "shadow")["debian"][1] == before
    assert "already holds a password" in report.changes[0]


def test_publish_reuses_a_random_chpasswd_password(
    guest_root: Root,
    harness: MakeHarness,
    keypairs: dict[str, KeyPair],
    password_api: PasswordAPI,
    tmp_path: Path,
) -> None:
    make_users(guest_root, harness)
    h = harness(
        guest_root,
        "#cloud-config\npublish_password: {enabled: true, user: alice}\n"
        "chpasswd:\n  expire: false\n  users:\n    - {name: alice, type: RANDOM}\n",
        instance=instance_data(
            public_keys=[keypairs["operator"].public], service_url=password_api.url
        ),
    )
    h.run("set_passwords")
    shown = h.console[0].splitlines()[1].split(":", 1)[1]
    assert decrypt(keypairs["operator"], password_api.stored, tmp_path) == shown
    assert verify(rows(guest_root, "shadow")["alice"][1], shown)


def test_publish_needs_rsa_key_and_service(
    guest_root: Root, harness: MakeHarness, keypairs: dict[str, KeyPair], password_api: PasswordAPI
) -> None:
    make_users(guest_root, harness)
    before = rows(guest_root, "shadow")["debian"][1]
    doc = "#cloud-config\npublish_password: true\n"
    report = harness(
        guest_root, doc, instance=instance_data(public_keys=[keypairs["operator"].public])
    ).run("set_passwords")
    assert "nowhere to send" in report.warnings[0]
    with pytest.raises(ConfigError, match="only ssh-rsa keys"):
        harness(
            guest_root,
            doc,
            instance=instance_data(
                public_keys=[keypairs["alice"].public], service_url=password_api.url
            ),
        ).run("set_passwords")
    assert password_api.posts == []
    assert rows(guest_root, "shadow")["debian"][1] == before


def test_publish_to_a_service_without_password_api(
    guest_root: Root, harness: MakeHarness, keypairs: dict[str, KeyPair], password_api: PasswordAPI
) -> None:
    make_users(guest_root, harness)
    with pytest.raises(ConfigError, match="no password API"):
        harness(
            guest_root,
            "#cloud-config\npublish_password: true\n",
            instance=instance_data(
                public_keys=[keypairs["operator"].public], service_url=password_api.url + "/nowhere"
            ),
        ).run("set_passwords")
