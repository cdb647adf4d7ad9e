"""publish_password against metaboot's own metadata service on loopback: the guest's ciphertext
is stored by the real password endpoint and decrypts, with the key pair's private key, to the
password now in the root's shadow file."""

from __future__ import annotations

import asyncio
import base64
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from metaboot.guest.system import Root
from metaboot.registry import Registry
from metaboot.service.config import Endpoint, ServiceConfig
from metaboot.service.server import Service, bind_endpoint, new_loop
from tests.guest.modules.modharness import KeyPair, MakeHarness, instance_data, rows
from tests.service.harness import instance


@dataclass
class LiveService:
    url: str
    registry: Registry


@pytest.fixture
def live_service(tmp_path: Path) -> Iterator[LiveService]:
    registry = Registry.open(f"sqlite:///{tmp_path / 'registry.db'}")
    sockets = bind_endpoint(Endpoint("127.0.0.1", 0), 1)
    port = sockets[0].getsockname()[1]
    service = Service(
        replace(ServiceConfig(), rate_limit_requests=0),
        registry,
        secrets.token_bytes(32),
        sockets,
        [],
    )
    loop = new_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(service.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)
    try:
        yield LiveService(f"http://127.0.0.1:{port}", registry)
    finally:
        asyncio.run_coroutine_threadsafe(service.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        registry.close()


def test_password_published_to_the_real_service(
    guest_root: Root,
    harness: MakeHarness,
    keypairs: dict[str, KeyPair],
    live_service: LiveService,
) -> None:
    operator = keypairs["operator"]
    me = instance(
        ips=("127.0.0.1",),
        keys=[{"name": "operator", "type": "ssh", "data": operator.public}],
    )
    live_service.registry.add(me)
    harness(guest_root).run("users_groups")
    guest = instance_data(
        instance_id=me.uuid,
        source="OpenStack",
        public_keys=[operator.public],
        service_url=live_service.url,
    )
    h = harness(guest_root, "#cloud-config\npublish_password: true\n", instance=guest)
    h.run("set_passwords")
    stored = live_service.registry.password_get(me.uuid)
    assert stored
    private = serialization.load_pem_private_key(operator.private.read_bytes(), password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    password = private.decrypt(base64.b64decode(stored), padding.PKCS1v15()).decode()
    salt = rows(guest_root, "shadow")["debian"][1].split("$")[2]
    again = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", salt, "-stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert rows(guest_root, "shadow")["debian"][1] == again
    # A clone of the image booting as the same instance leaves the published password alone.
    report = harness(guest_root, "#cloud-config\npublish_password: true\n", instance=guest).run(
        "set_passwords"
    )
    assert "already holds a password" in report.changes[0]
    assert live_service.registry.password_get(me.uuid) == stored
