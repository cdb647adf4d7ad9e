from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from metaboot.errors import SpecError
from metaboot.metadata.instance import (
    eui64_link_local,
    instance_to_spec,
    load_spec,
    parse_spec,
    sanitize_hostname,
)
from tests.metadata.samples import UUID


def test_round_trip_through_canonical_spec(spec: dict[str, Any]) -> None:
    instance = parse_spec(spec)
    canonical = instance_to_spec(instance)
    json.dumps(canonical)  # storable as JSON
    assert parse_spec(canonical) == instance
    assert instance.ports[0].mac == "fa:16:3e:00:00:01"  # normalised
    assert instance.dedicated_cpus == (1, 3)


def test_defaults_for_a_minimal_spec() -> None:
    instance = parse_spec({"uuid": UUID.upper(), "name": "My VM"})
    assert instance.uuid == UUID
    assert instance.hostname == "my-vm"
    assert instance.user_data is None
    assert instance.security_groups == ("default",)
    assert instance.reservation_id == "r-d0f2a1c2"
    assert instance.metadata_options.http_tokens == "optional"


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"uuid": None}, "uuid", "required"),
        ({"uuid": "nope"}, "uuid", "not a UUID"),
        ({"hostname": "bad_host!"}, "hostname", "not a valid hostname"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"launch_index": "x"}, "launch_index", "integer"),
        ({"keys": [{"name": "a"}]}, "keys[0].data", "required"),
        ({"keys": [{"name": "a", "data": "k", "type": "pgp"}]}, "keys[0].type", "one of"),
        ({"meta": {"a": ["x"]}}, "meta.a", "string"),
        ({"ports": [{"network_id": "n", "mac": "zz:00"}]}, "ports[0].mac", "not a MAC"),
        (
            {"ports": [{"network_id": "n", "mac": "fa:16:3e:00:00:01", "fixed_ips": ["10.1.1.1"]}]},
            "ports[0].fixed_ips[0]",
            "none of the port's subnets",
        ),
        (
            {
                "ports": [
                    {
                        "network_id": "n",
                        "mac": "fa:16:3e:00:00:01",
                        "subnets": [{"cidr": "10.0.0.0/24", "gateway": "2001:db8::1"}],
                    }
                ]
            },
            "ports[0].subnets[0].gateway",
            "not an IPv4 address",
        ),
        ({"devices": [{"type": "nic"}]}, "devices[0].mac", "not a MAC"),
        ({"files": [{"path": "etc/motd"}]}, "files[0].path", "absolute"),
        ({"user_data": None, "user_data_b64": "***"}, "user_data_b64", "base64"),
        (
            {"metadata_options": {"http_tokens": "sometimes"}},
            "metadata_options.http_tokens",
            "one of",
        ),
    ],
)
def test_bad_specs_name_the_field(
    spec: dict[str, Any], change: dict[str, Any], field: str, words: str
) -> None:
    bad = copy.deepcopy(spec)
    bad.update(change)
    with pytest.raises(SpecError) as err:
        parse_spec(bad)
    assert err.value.field == field
    assert words in str(err.value)


def test_user_data_limit_is_on_the_base64_text() -> None:
    raw = b"x" * (65535 // 4 * 3)  # exactly 65532 bytes of base64
    assert parse_spec({"uuid": UUID, "user_data_b64": base64.b64encode(raw).decode()}).user_data
    with pytest.raises(SpecError) as err:
        parse_spec({"uuid": UUID, "user_data": "x" * (len(raw) + 3)})
    assert err.value.field == "user_data"
    assert "limit is 65535" in str(err.value)
    assert parse_spec({"uuid": UUID, "user_data": "x" * 100}, user_data_limit=200).user_data
    with pytest.raises(SpecError):
        parse_spec({"uuid": UUID, "user_data": "x" * 200}, user_data_limit=200)


def test_only_one_user_data_form() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec({"uuid": UUID, "user_data": "a", "user_data_b64": "YQ=="})
    assert "only one of" in str(err.value)


def test_load_spec_reads_yaml_and_user_data_file(tmp_path: Path) -> None:
    (tmp_path / "ud.sh").write_bytes(b"#!/bin/sh\necho hi\n")
    path = tmp_path / "vm.yaml"
    path.write_text(f"uuid: {UUID}\nhostname: a.b\nuser_data_file: ud.sh\n")
    instance = load_spec(path)
    assert instance.user_data == b"#!/bin/sh\necho hi\n"
    assert instance.hostname == "a.b"


def test_load_spec_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "vm.yaml"
    path.write_text(f"uuid: {UUID}\nmeta: [unclosed\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert str(path) in str(err.value) and "line" in str(err.value)
    path.write_text("hostname: x\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert err.value.field == "uuid" and str(path) in str(err.value)


def test_addresses_for_identification(spec: dict[str, Any]) -> None:
    instance = parse_spec(spec)
    assert instance.addresses() == [("net-a", "10.0.0.5"), ("net-a", "2001:db8::5")]
    # EUI-64 from fa:16:3e:00:00:01
    assert instance.link_local_addresses() == [("net-a", "fe80::f816:3eff:fe00:1")]


def test_link_local_from_mac() -> None:
    assert eui64_link_local("52:54:00:12:34:56") == "fe80::5054:ff:fe12:3456"
    assert eui64_link_local("02:00:00:00:00:00") == "fe80::ff:fe00:0"  # the U/L bit flips


def test_fixed_ip_with_prefix_brings_its_subnet() -> None:
    instance = parse_spec(
        {
            "uuid": UUID,
            "ports": [
                {"network_id": "n", "mac": "fa:16:3e:00:00:09", "fixed_ips": ["192.0.2.10/24"]}
            ],
        }
    )
    assert instance.ports[0].fixed_ips == ("192.0.2.10",)
    assert instance.ports[0].subnets[0].cidr == "192.0.2.0/24"


@pytest.mark.parametrize(
    ("name", "host"),
    [
        ("Web Server 1", "web-server-1"),
        ("a..b", "a.b"),
        ("!!!", "instance"),
        ("db_01.x", "db-01.x"),
    ],
)
def test_sanitize_hostname(name: str, host: str) -> None:
    assert sanitize_hostname(name) == host
