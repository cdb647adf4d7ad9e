"""``metaboot instance`` and ``metaboot router`` end to end, in a subprocess, against a database
and against the admin API served on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from metaboot.admin.api import AdminApp
from metaboot.metadata.instance import instance_to_spec
from metaboot.registry import Registry
from tests.admin.harness import TOKEN, serve
from tests.registry.specs import spec


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
    full_env = {**os.environ, **(env or {})}
    for name in ("METABOOT_DB", "METABOOT_ADMIN_URL", "METABOOT_ADMIN_TOKEN"):
        if env is None or name not in env:
            full_env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "metaboot.cli", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=stdin,
        timeout=120,
    )


def ok(*args: str, **kw: Any) -> str:
    proc = run(*args, **kw)
    assert proc.returncode == 0, proc.stderr
    return str(proc.stdout)


@pytest.fixture(params=["db", "api"])
def where(request: pytest.FixtureRequest, registry: Registry, db_url: str) -> Iterator[list[str]]:
    """The CLI options that point at the registry: ``--db URL`` or ``--api URL`` (token in the
    environment, as an operator would keep it)."""
    if request.param == "db":
        yield ["--db", db_url]
    else:
        with serve(AdminApp(registry, TOKEN)) as url:
            os.environ["METABOOT_ADMIN_TOKEN"] = TOKEN
            try:
                yield ["--api", url]
            finally:
                del os.environ["METABOOT_ADMIN_TOKEN"]


def write_spec(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_add_list_show_update_delete(where: list[str], registry: Registry, tmp_path: Path) -> None:
    (tmp_path / "boot.sh").write_text("#!/bin/sh\necho booted\n")
    data = spec("web-1", ports=[("net-a", "10.0.0.5")], user_data_file="boot.sh")
    vm = write_spec(tmp_path / "vm.yaml", data)
    env = {"METABOOT_ADMIN_TOKEN": TOKEN}
    out = ok("instance", "add", str(vm), *where, env=env)
    assert out.startswith(f"added {data['uuid']}  web-1")
    # user_data_file was read here, relative to the spec, in both modes
    assert registry.get(data["uuid"]).user_data == b"#!/bin/sh\necho booted\n"

    listed = json.loads(ok("instance", "list", "--format", "json", *where, env=env))
    assert [(i["uuid"], i["addresses"]) for i in listed] == [
        (data["uuid"], [{"network_id": "net-a", "ip": "10.0.0.5"}])
    ]
    table = ok("instance", "list", *where, env=env).splitlines()
    assert table[0].split() == [
        "UUID",
        "NAME",
        "HOSTNAME",
        "PROJECT",
        "ADDRESSES",
        "GEN",
        "PASSWORD",
    ]
    assert table[1].split() == [data["uuid"], "web-1", "web-1", "p-1", "net-a/10.0.0.5", "1", "no"]

    # show --spec is a spec again: edit it and update from it
    shown = ok("instance", "show", "web-1", "--spec", *where, env=env)
    edited = yaml.safe_load(shown)
    assert edited["user_data"] == "#!/bin/sh\necho booted\n"  # readable, not base64
    edited["meta"] = {"role": "db"}
    out = ok("instance", "update", str(write_spec(tmp_path / "v2.yaml", edited)), *where, env=env)
    assert "updated" in out and "generation 2" in out
    assert dict(registry.get(data["uuid"]).meta) == {"role": "db"}
    assert instance_to_spec(registry.get(data["uuid"]))["user_data_b64"] is not None

    detail = json.loads(ok("instance", "show", data["uuid"], "--format", "json", *where, env=env))
    assert detail["generation"] == 2 and detail["spec"]["meta"] == {"role": "db"}

    out = ok("instance", "delete", "web-1", *where, env=env)
    assert out.strip() == f"deleted {data['uuid']}"
    assert registry.list() == []


def test_a_bad_spec_names_the_field_and_the_file_and_adds_nothing(
    where: list[str], registry: Registry, tmp_path: Path
) -> None:
    good = write_spec(tmp_path / "good.yaml", spec("good"))
    broken = spec("bad")
    broken["ports"] = [{"network_id": "n", "mac": "not-a-mac", "fixed_ips": []}]
    bad = write_spec(tmp_path / "bad.yaml", broken)
    proc = run("instance", "add", str(good), str(bad), *where, env={"METABOOT_ADMIN_TOKEN": TOKEN})
    assert proc.returncode == 1
    assert "ports[0].mac" in proc.stderr and "bad.yaml" in proc.stderr
    assert proc.stderr.startswith("metaboot instance: error: ")
    assert registry.list() == []
    (tmp_path / "junk.yaml").write_text("uuid: [unclosed\n")
    proc = run("instance", "add", str(tmp_path / "junk.yaml"), *where)
    assert proc.returncode == 1 and "junk.yaml (line 2" in proc.stderr


def test_conflicts_and_missing_instances_are_errors(
    where: list[str], registry: Registry, tmp_path: Path
) -> None:
    env = {"METABOOT_ADMIN_TOKEN": TOKEN}
    data = spec("one")
    vm = write_spec(tmp_path / "vm.yaml", data)
    ok("instance", "add", str(vm), *where, env=env)
    proc = run("instance", "add", str(vm), *where, env=env)
    assert proc.returncode == 1 and "already exists" in proc.stderr and "vm.yaml" in proc.stderr
    proc = run("instance", "show", "nobody", *where, env=env)
    assert proc.returncode == 1 and "no instance with uuid or name 'nobody'" in proc.stderr
    proc = run("instance", "update", str(vm), "--if-generation", "5", *where, env=env)
    assert proc.returncode == 1 and "generation 1, not 5" in proc.stderr
    write_spec(tmp_path / "twin.yaml", spec("one"))
    ok("instance", "add", str(tmp_path / "twin.yaml"), *where, env=env)
    proc = run("instance", "delete", "one", *where, env=env)
    assert proc.returncode == 1 and "ambiguous" in proc.stderr
    assert len(registry.list()) == 2


def test_duplicate_address_warning_goes_to_stderr(where: list[str], tmp_path: Path) -> None:
    env = {"METABOOT_ADMIN_TOKEN": TOKEN}
    ok(
        "instance",
        "add",
        str(write_spec(tmp_path / "a.yaml", spec("a", ports=[("n", "10.0.0.5")]))),
        *where,
        env=env,
    )
    proc = run(
        "instance",
        "add",
        str(write_spec(tmp_path / "b.yaml", spec("b", ports=[("n", "10.0.0.5")]))),
        *where,
        env=env,
    )
    assert proc.returncode == 0
    assert "warning: " in proc.stderr and "b.yaml" in proc.stderr and "10.0.0.5" in proc.stderr
    assert proc.stderr.count("10.0.0.5") == 1, proc.stderr  # once, not again as a log line


def test_a_reader_that_leaves_is_no_error(db_url: str) -> None:
    """``metaboot instance list | head``: the pipe's reader is gone before the output is
    written; the command ends quietly with the shell's SIGPIPE status, no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "metaboot.cli", "instance", "list", "--db", db_url],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""


def test_spec_from_stdin(where: list[str], registry: Registry) -> None:
    data = spec("piped")
    out = ok(
        "instance", "add", "-", *where, env={"METABOOT_ADMIN_TOKEN": TOKEN}, stdin=json.dumps(data)
    )
    assert "added" in out and registry.get(data["uuid"]).name == "piped"


def test_routers(where: list[str], registry: Registry) -> None:
    env = {"METABOOT_ADMIN_TOKEN": TOKEN}
    assert (
        ok("router", "add", "r-1", "net-b", "net-a", *where, env=env).strip()
        == "router r-1: net-a, net-b"
    )
    ok("router", "add", "r-1", "net-c", *where, env=env)
    ok("router", "set", "r-2", "net-z", *where, env=env)
    listed = json.loads(ok("router", "list", "--format", "json", *where, env=env))
    assert listed == [
        {"router_id": "r-1", "network_ids": ["net-a", "net-b", "net-c"]},
        {"router_id": "r-2", "network_ids": ["net-z"]},
    ]
    ok("router", "remove", "r-1", "net-b", *where, env=env)
    assert ok("router", "show", "r-1", *where, env=env).strip() == "router r-1: net-a, net-c"
    ok("router", "remove", "r-2", *where, env=env)
    assert registry.routers() == {"r-1": ["net-a", "net-c"]}
    proc = run("router", "show", "r-2", *where, env=env)
    assert proc.returncode == 1 and "no router r-2" in proc.stderr


def test_options_may_come_before_the_verb(registry: Registry, db_url: str) -> None:
    assert json.loads(ok("instance", "--db", db_url, "--format", "json", "list")) == []


def test_db_from_the_environment(registry: Registry, db_url: str) -> None:
    registry.add(load_spec_data(spec("env-db")))
    out = ok("instance", "list", env={"METABOOT_DB": db_url})
    assert "env-db" in out


def load_spec_data(data: dict[str, Any]) -> Any:
    from metaboot.metadata.instance import parse_spec

    return parse_spec(data)


def test_api_errors_reach_the_operator(registry: Registry) -> None:
    with serve(AdminApp(registry, TOKEN)) as url:
        proc = run("instance", "list", "--api", url, "--token", "wrong")
        assert proc.returncode == 1 and "refused the token: invalid bearer token" in proc.stderr
        proc = run("instance", "list", env={"METABOOT_ADMIN_URL": url})
        assert proc.returncode == 1 and "missing bearer token" in proc.stderr
    proc = run("instance", "list", "--api", url, "--token", TOKEN)
    assert proc.returncode == 1 and "cannot reach the admin API" in proc.stderr


def test_token_file(registry: Registry, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with serve(AdminApp(registry, TOKEN)) as url:
        assert ok("instance", "list", "--api", url, "--token-file", str(token_file)).startswith(
            "UUID"
        )


# -- passwords ----------------------------------------------------------------------------


@pytest.fixture
def rsa_key(tmp_path: Path) -> tuple[Path, str]:
    """An operator's key made the usual way: ssh-keygen (OpenSSH private key format)."""
    key = tmp_path / "id_rsa"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(key)], check=True
    )
    return key, (tmp_path / "id_rsa.pub").read_text().strip()


def _openssl_encrypt(password: str, public_line: str, tmp_path: Path) -> str:
    """Encrypt as a guest would, with an independent implementation (openssl)."""
    pub = tmp_path / "pub.pem"
    (tmp_path / "pub.ssh").write_text(public_line + "\n")
    pem = subprocess.run(
        ["ssh-keygen", "-e", "-m", "PKCS8", "-f", str(tmp_path / "pub.ssh")],
        check=True,
        capture_output=True,
    ).stdout
    pub.write_bytes(pem)
    cipher = subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-encrypt",
            "-pubin",
            "-inkey",
            str(pub),
            "-pkeyopt",
            "rsa_padding_mode:pkcs1",
        ],
        input=password.encode(),
        check=True,
        capture_output=True,
    ).stdout
    import base64

    return base64.b64encode(cipher).decode()


def test_password_decrypts_with_the_operators_private_key(
    where: list[str], registry: Registry, tmp_path: Path, rsa_key: tuple[Path, str]
) -> None:
    env = {"METABOOT_ADMIN_TOKEN": TOKEN}
    key_file, public_line = rsa_key
    data = spec("win", keys=[{"name": "ops", "type": "ssh", "data": public_line}])
    registry.add(load_spec_data(data))
    proc = run("instance", "password", "win", *where, env=env)
    assert proc.returncode == 0 and proc.stdout == "" and "no password posted yet" in proc.stderr

    stored = _openssl_encrypt("Tr0ub4dor&3", public_line, tmp_path)
    assert registry.password_set_once(data["uuid"], stored)
    assert ok("instance", "password", "win", *where, env=env).strip() == stored
    out = ok("instance", "password", "win", "--private-key", str(key_file), *where, env=env)
    assert out == "Tr0ub4dor&3\n"
    # The same key as PEM (PKCS#1), as older tools write it.
    pem = tmp_path / "id_rsa.pem"
    pem.write_bytes(key_file.read_bytes())
    pem.chmod(0o600)
    subprocess.run(
        ["ssh-keygen", "-q", "-p", "-P", "", "-N", "", "-m", "PEM", "-f", str(pem)],
        check=True,
        capture_output=True,
    )
    assert pem.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")
    got = json.loads(
        ok(
            "instance",
            "password",
            data["uuid"],
            "--private-key",
            str(pem),
            "--format",
            "json",
            *where,
            env=env,
        )
    )
    assert got == {"uuid": data["uuid"], "password": "Tr0ub4dor&3", "decrypted": True}

    out = ok("instance", "password", "win", "--clear", *where, env=env)
    assert "cleared" in out and registry.password_get(data["uuid"]) == ""
    proc = run("instance", "password", "win", "--private-key", str(key_file), *where, env=env)
    assert proc.returncode == 1 and "no password posted yet" in proc.stderr


def test_password_with_the_wrong_key_says_so(
    registry: Registry, db_url: str, tmp_path: Path, rsa_key: tuple[Path, str]
) -> None:
    _, public_line = rsa_key
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", str(other / "id")],
        check=True,
    )
    data = spec("win", keys=[{"name": "ops", "type": "ssh", "data": public_line}])
    registry.add(load_spec_data(data))
    registry.password_set_once(data["uuid"], _openssl_encrypt("pw", public_line, tmp_path))
    proc = run("instance", "password", "win", "--private-key", str(other / "id"), "--db", db_url)
    assert proc.returncode == 1
    assert "is not the private half of instance" in proc.stderr and "'ops'" in proc.stderr
    ed = other / "ed"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ed)], check=True)
    proc = run("instance", "password", "win", "--private-key", str(ed), "--db", db_url)
    assert proc.returncode == 1 and "not RSA" in proc.stderr
    locked = other / "locked"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "passphrase", "-f", str(locked)],
        check=True,
    )
    proc = run("instance", "password", "win", "--private-key", str(locked), "--db", db_url)
    assert proc.returncode == 1 and "is encrypted" in proc.stderr
