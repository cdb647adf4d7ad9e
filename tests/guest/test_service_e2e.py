"""The agent against the real ``metaboot serve`` on loopback (the instance is bound to
127.0.0.1, so the service identifies the agent's requests by their source address)."""

from __future__ import annotations

from pathlib import Path

from metaboot.guest.modules.base import Frequency, Stage
from metaboot.guest.status import summarize
from metaboot.metadata import parse_spec
from metaboot.registry import Registry
from tests.guest.helpers import (
    KEY,
    UUID,
    UUID2,
    agent_config,
    http_only,
    loopback_spec,
    make_root,
    metaboot_serve,
    reboot,
    recording_module,
    run_agent,
    runs,
    status,
)
from tests.guest.helpers import (
    Registry as ModuleRegistry,
)


def modules() -> ModuleRegistry:
    return ModuleRegistry(
        [
            recording_module("hostname_mod", Stage.NETWORK, keys=("hostname",)),
            recording_module("always_mod", Stage.FINAL, Frequency.ALWAYS),
        ]
    )


def test_first_boot_from_the_service_then_reboot_then_a_new_instance(tmp_path: Path) -> None:
    user_data = "#cloud-config\nhostname: served\n"
    with metaboot_serve(tmp_path, [loopback_spec(user_data=user_data)]) as (url, db):
        root = make_root(tmp_path / "root")
        agent_config(root, http_only(url))
        code, out, _ = run_agent(root, modules())
        assert code == 0, out
        record = status(root)
        assert (record["source"], record["instance_id"]) == ("OpenStack", UUID)
        assert record["subplatform"] == f"metadata ({url})"
        assert runs(root, "hostname_mod") == [{"instance": UUID, "values": {"hostname": "served"}}]
        instance_data = root.read_text("/run/metaboot/instance-data.json")
        assert KEY in instance_data and url in instance_data

        reboot(root)
        run_agent(root, modules())
        assert len(runs(root, "hostname_mod")) == 1 and len(runs(root, "always_mod")) == 2

        # The platform replaces the VM behind the address: a new instance-id.
        with Registry.open(db) as registry:
            registry.delete(UUID)
            registry.add(
                parse_spec(loopback_spec(uuid=UUID2, user_data="#cloud-config\nhostname: new\n"))
            )
        reboot(root)
        for _ in range(50):
            run_agent(root, modules())
            if status(root)["instance_id"] == UUID2:
                break
            reboot(root)
        assert status(root)["new_instance"] is True
        assert runs(root, "hostname_mod")[-1] == {"instance": UUID2, "values": {"hostname": "new"}}
        assert summarize(status(root)).status == "done"


def test_ec2_source_against_the_service_with_tokens_required(tmp_path: Path) -> None:
    spec = loopback_spec(metadata_options={"http_tokens": "required"})
    with metaboot_serve(tmp_path, [spec]) as (url, _):
        root = make_root(tmp_path / "root")
        agent_config(root, http_only(url, sources=["Ec2"]))
        code, out, _ = run_agent(root, modules())
    assert code == 0, out
    record = status(root)
    assert record["source"] == "Ec2" and record["instance_id"].startswith("i-")
    assert runs(root, "hostname_mod")[0]["values"] == {"hostname": "from-user-data"}
