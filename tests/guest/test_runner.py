"""The stage runner end to end on temporary roots, with modules defined here.

Identity and frequency (first boot, reboot, a new instance-id, clean), failure isolation,
invalid settings, unknown keys, a broken agent config, stages in separate processes.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from metaboot.errors import ConfigError
from metaboot.guest.clean import clean
from metaboot.guest.modules.base import Frequency, ModuleContext, Stage
from metaboot.guest.status import summarize
from metaboot.guest.system import Root
from tests.guest.helpers import (
    UUID,
    UUID2,
    Registry,
    ServerState,
    add_shell,
    agent_config,
    dead_url,
    http_only,
    make_root,
    metadata_server,
    reboot,
    recording_module,
    run_agent,
    runs,
    spec,
    status,
    tree,
    write_drive_dir,
)

DRIVE = "/var/lib/metaboot/seed/config_drive"
STRING = {"type": "string"}


def standard_registry() -> Registry:
    return Registry(
        [
            recording_module(
                "hostname_mod",
                Stage.NETWORK,
                keys=("hostname",),
                schema={"type": "object", "properties": {"hostname": STRING}},
            ),
            recording_module("always_mod", Stage.NETWORK, Frequency.ALWAYS),
            recording_module("once_mod", Stage.CONFIG, Frequency.ONCE),
            recording_module(
                "tz_mod",
                Stage.CONFIG,
                keys=("timezone",),
                schema={"type": "object", "properties": {"timezone": STRING}},
            ),
            recording_module("final_mod", Stage.FINAL),
        ]
    )


def first_boot(tmp_path: Path, user_data: str | None = None, **changes: Any) -> Root:
    root = make_root(tmp_path)
    data = spec(**changes) if user_data is None else spec(user_data=user_data, **changes)
    write_drive_dir(root, DRIVE, tree(data))
    return root


def results(root: Root) -> dict[str, str]:
    record = status(root)
    return {m["name"]: m["result"] for stage in record["stages"].values() for m in stage["modules"]}


def test_fresh_root_is_configured_and_reported(tmp_path: Path) -> None:
    root = first_boot(tmp_path, "#cloud-config\nhostname: web-1\ntimezone: UTC\n")
    code, out, _ = run_agent(root, standard_registry())
    assert code == 0, out
    assert runs(root, "hostname_mod") == [{"instance": UUID, "values": {"hostname": "web-1"}}]
    assert runs(root, "tz_mod") == [{"instance": UUID, "values": {"timezone": "UTC"}}]
    for name in ("always_mod", "once_mod", "final_mod"):
        assert len(runs(root, name)) == 1
    record = status(root)
    assert record["source"] == "ConfigDrive" and record["new_instance"] is True
    assert summarize(record).status == "done" and summarize(record).exit_code == 0
    assert root.read_text("/var/lib/metaboot/data/instance-id") == UUID + "\n"
    data = json.loads(root.read_bytes("/run/metaboot/instance-data.json"))
    assert data["v1"]["instance_id"] == UUID and data["v1"]["distro"] == "debian"
    assert (root.path("/run/metaboot/instance-data-sensitive.json").stat().st_mode & 0o777) == 0o600
    assert root.exists(f"/var/lib/metaboot/instances/{UUID}/boot-finished")
    # network_data.json rendered in the local stage, for the image's network system.
    network = record["network"]
    assert network["renderer"] == "networkd" and not network["degraded"]
    assert network["written"] and all(root.exists(p) for p in network["written"])
    assert "10.0.0.5/24" in "".join(root.read_text(p) for p in network["written"])
    assert "metaboot finished: instance " + UUID in out
    assert "status: done" in out


def test_second_boot_does_no_per_instance_work(tmp_path: Path) -> None:
    root = first_boot(tmp_path)
    run_agent(root, standard_registry())
    reboot(root)
    code, _, _ = run_agent(root, standard_registry())
    assert code == 0
    assert len(runs(root, "hostname_mod")) == 1
    assert len(runs(root, "once_mod")) == 1
    assert len(runs(root, "final_mod")) == 1
    assert len(runs(root, "always_mod")) == 2
    assert results(root)["hostname_mod"] == "already-ran"
    assert status(root)["new_instance"] is False
    events = {e["name"]: e for e in status(root)["stages"]["local"]["events"]}
    assert events["network-config"]["detail"] == "already configured for this instance"


def test_a_new_instance_id_runs_per_instance_work_again(tmp_path: Path) -> None:
    root = first_boot(tmp_path)
    run_agent(root, standard_registry())
    reboot(root)
    write_drive_dir(
        root, DRIVE, tree(spec(uuid=UUID2, user_data="#cloud-config\nhostname: clone\n"))
    )
    run_agent(root, standard_registry())
    assert [r["instance"] for r in runs(root, "hostname_mod")] == [UUID, UUID2]
    assert runs(root, "hostname_mod")[1]["values"] == {"hostname": "clone"}
    assert len(runs(root, "once_mod")) == 1  # once means once, whatever the instance
    assert len(runs(root, "final_mod")) == 2
    assert root.read_text("/var/lib/metaboot/data/previous-instance-id") == UUID + "\n"
    assert status(root)["new_instance"] is True


def test_clean_returns_the_image_to_never_booted(tmp_path: Path) -> None:
    root = first_boot(tmp_path)
    root.write_file("/var/lib/metaboot/seed/nocloud/meta-data", "instance-id: keep\n")
    run_agent(root, standard_registry())
    root.write_file("/var/log/metaboot.log", "log\n")
    root.write_file("/etc/machine-id", "0123456789abcdef0123456789abcdef\n")
    root.write_file("/lib/systemd/systemd", "")
    report = clean(root, logs=True, machine_id=True)
    assert not root.exists("/var/lib/metaboot/instances")
    assert not root.exists("/var/lib/metaboot/data")
    assert not root.exists("/run/metaboot")
    assert root.exists("/var/lib/metaboot/seed/nocloud/meta-data")
    assert not root.exists("/var/log/metaboot.log")
    assert root.read_text("/etc/machine-id") == ""  # as image seal leaves it
    assert "/var/lib/metaboot/instances" in report.removed
    run_agent(root, standard_registry())
    assert len(runs(root, "hostname_mod")) == 2
    assert len(runs(root, "once_mod")) == 2
    clean(root, seed=True)
    assert not root.exists("/var/lib/metaboot/seed")


def test_a_failing_module_is_isolated(tmp_path: Path) -> None:
    def explode(ctx: ModuleContext) -> None:
        raise RuntimeError("disk on fire")

    def refuse(ctx: ModuleContext) -> None:
        raise ConfigError("users[0]: no such group 'wheel'")

    registry = Registry(
        [
            recording_module("first", Stage.NETWORK),
            recording_module("boom", Stage.NETWORK, action=explode),
            recording_module("clear", Stage.NETWORK, action=refuse),
            recording_module("after", Stage.NETWORK),
            recording_module("later", Stage.FINAL),
        ]
    )
    root = first_boot(tmp_path)
    code, out, _ = run_agent(root, registry)
    assert code == 1
    assert [len(runs(root, n)) for n in ("first", "boom", "clear", "after", "later")] == [1] * 5
    record = status(root)
    assert results(root) == {
        "first": "changed",
        "boom": "failed",
        "clear": "failed",
        "after": "changed",
        "later": "changed",
    }
    errors = summarize(record).errors
    assert errors == [
        "network: module boom failed: RuntimeError: disk on fire",
        "network: module clear failed: users[0]: no such group 'wheel'",
    ]
    assert summarize(record).status == "error" and summarize(record).exit_code == 1
    assert "ERROR: module boom failed: RuntimeError: disk on fire" in out
    # A failed per-instance module is not retried every boot (as in cloud-init).
    reboot(root)
    run_agent(root, registry)
    assert len(runs(root, "boom")) == 1


def test_invalid_settings_skip_only_that_module_and_name_the_line(tmp_path: Path) -> None:
    user_data = "#cloud-config\ntimezone: UTC\nhostname:\n  - not\n  - a string\n"
    root = first_boot(tmp_path, user_data)
    code, _, _ = run_agent(root, standard_registry())
    assert code == 1
    assert runs(root, "hostname_mod") == []
    assert runs(root, "tz_mod")[0]["values"] == {"timezone": "UTC"}
    assert results(root)["hostname_mod"] == "invalid"
    assert summarize(status(root)).errors == [
        "network: module hostname_mod: user-data part 1 (text/cloud-config): hostname: "
        "expected a string, got a list (line 3); not run"
    ]
    # Not marked as run: fixed user-data on the next boot of this instance applies.
    reboot(root)
    write_drive_dir(root, DRIVE, tree(spec(user_data="#cloud-config\nhostname: fixed\n")))
    run_agent(root, standard_registry())
    assert runs(root, "hostname_mod") == [{"instance": UUID, "values": {"hostname": "fixed"}}]


def test_unknown_keys_are_warned_with_their_line(tmp_path: Path) -> None:
    root = first_boot(tmp_path, "#cloud-config\nhostname: h\n\npackages: [nginx]\n")
    code, out, _ = run_agent(root, standard_registry())
    assert code == 0
    summary = summarize(status(root))
    assert summary.recoverable == [
        "network: user-data part 1 (text/cloud-config): key 'packages' (line 4) "
        "is not supported by metaboot; ignored"
    ]
    assert summary.extended == "degraded done" and summary.exit_code == 2
    assert "warning: user-data part 1 (text/cloud-config): key 'packages'" in out


def test_broken_agent_config_is_reported_and_defaults_apply(tmp_path: Path) -> None:
    root = first_boot(tmp_path)
    root.write_file("/etc/metaboot/agent.yaml", "datasource_list: [ConfigDrive\n  oops: : :\n")
    code, out, _ = run_agent(root, standard_registry())
    assert code == 1
    assert len(runs(root, "hostname_mod")) == 1  # the boot still configured the instance
    summary = summarize(status(root))
    assert summary.status == "error"
    assert summary.errors[0].startswith("config: /etc/metaboot/agent.yaml: invalid YAML at line 2")
    assert "agent config problem (defaults used): /etc/metaboot/agent.yaml" in out


def test_stages_as_separate_processes(tmp_path: Path) -> None:
    """What systemd does: one process per stage, sharing /run/metaboot."""
    root = first_boot(tmp_path, "#cloud-config\nhostname: split\ntimezone: UTC\n")
    for stage in (Stage.LOCAL, Stage.NETWORK, Stage.CONFIG, Stage.FINAL):
        code, _, _ = run_agent(root, standard_registry(), [stage])
        assert code == 0
    assert runs(root, "hostname_mod")[0]["values"] == {"hostname": "split"}
    assert runs(root, "tz_mod")[0]["values"] == {"timezone": "UTC"}
    assert len(runs(root, "final_mod")) == 1
    record = status(root)
    assert set(record["stages"]) == {"local", "network", "config", "final"}
    assert summarize(record).status == "done"


def test_metadata_service_found_in_the_network_stage(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    state = ServerState(tree(spec(user_data="#cloud-config\nhostname: over-http\n")))
    with metadata_server(state) as (url, _):
        agent_config(root, http_only(url))
        code, out, _ = run_agent(root, standard_registry())
    assert code == 0, out
    record = status(root)
    assert record["source"] == "OpenStack" and record["subplatform"] == f"metadata ({url})"
    assert [e["name"] for e in record["stages"]["local"]["events"]][:2] == [
        "search-ConfigDrive",
        "search-NoCloud",
    ]
    assert record["stages"]["network"]["events"][0]["name"] == "search-OpenStack"
    assert runs(root, "hostname_mod")[0]["values"] == {"hostname": "over-http"}
    # Nothing known locally: the DHCP fallback is left to the network stage, which this
    # process runs next and which writes the service's network_data.json instead.
    local, network = (record["stages"][s]["events"] for s in ("local", "network"))
    fallback = next(e for e in local if e["name"] == "network-config")
    assert fallback["detail"] == "fallback left to the network stage"
    assert [e["detail"][:8] for e in network if e["name"] == "network-config"] == ["networkd"]
    assert "10.0.0.5/24" in "".join(root.read_text(p) for p in record["network"]["written"])
    data = json.loads(root.read_bytes("/run/metaboot/instance-data.json"))
    assert data["v1"]["service_url"] == url


def test_the_local_stage_alone_writes_the_dhcp_fallback_the_network_stage_replaces(
    tmp_path: Path,
) -> None:
    """As the systemd units run it, one process per stage: the local stage gives the first
    NIC DHCP so the service can be reached, and the network stage replaces it."""
    root = make_root(tmp_path)
    state = ServerState(tree(spec()))
    with metadata_server(state) as (url, _):
        agent_config(root, http_only(url))
        run_agent(root, standard_registry(), [Stage.LOCAL])
        local = status(root)["stages"]["local"]["events"]
        assert next(e for e in local if e["name"] == "network-config")["detail"].startswith(
            "networkd: 1 written"
        )
        written = status(root)["network"]["written"]
        assert "DHCP=" in "".join(root.read_text(p) for p in written)
        run_agent(root, standard_registry(), [Stage.NETWORK])
    written = status(root)["network"]["written"]
    assert "10.0.0.5/24" in "".join(root.read_text(p) for p in written)


def test_a_boot_that_finds_nothing_still_leaves_the_dhcp_fallback(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    agent_config(root, http_only(dead_url(), max_wait=0))
    run_agent(root, standard_registry())
    record = status(root)
    network = record["stages"]["network"]["events"]
    assert next(e for e in network if e["name"] == "network-config")["detail"].startswith(
        "networkd: 1 written"
    )
    assert "DHCP=" in "".join(root.read_text(p) for p in record["network"]["written"])


def test_no_source_at_all_is_an_error_and_modules_wait(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    agent_config(root, http_only(dead_url(), max_wait=0))
    code, _, _ = run_agent(root, standard_registry())
    assert code == 1
    assert runs(root, "hostname_mod") == [] and runs(root, "final_mod") == []
    errors = summarize(status(root)).errors
    assert errors[0] == (
        "network: no instance data found (sources tried: ConfigDrive, NoCloud, OpenStack, Ec2)"
    )
    assert "no instance data this boot" in errors[1]


def test_module_lists_from_agent_config(tmp_path: Path) -> None:
    root = first_boot(tmp_path)
    agent_config(
        root,
        {
            "cloud_init_modules": [
                "migrator",
                ["hostname-mod", "always"],
                ["always_mod", "sometimes"],
            ],
            "cloud_config_modules": [],
            "cloud_final_modules": ["final_mod"],
        },
    )
    registry = standard_registry()
    run_agent(root, registry)
    reboot(root)
    run_agent(root, registry)
    assert len(runs(root, "hostname_mod")) == 2  # overridden to always
    assert runs(root, "once_mod") == []  # not listed
    record = status(root)
    network = {m["name"]: m for m in record["stages"]["network"]["modules"]}
    assert network["migrator"]["result"] == "unavailable"
    assert network["hostname_mod"]["frequency"] == "always"
    assert (
        "module always_mod: unknown frequency 'sometimes'; using always"
        in (record["stages"]["network"]["recoverable_errors"])
    )


def test_scripts_land_where_the_script_modules_look(tmp_path: Path) -> None:
    user_data = (
        'Content-Type: multipart/mixed; boundary="B"\nMIME-Version: 1.0\n\n'
        "--B\nContent-Type: text/x-shellscript\n\n#!/bin/sh\necho part\n\n"
        "--B\nContent-Type: text/x-shellscript-per-boot\n"
        'Content-Disposition: attachment; filename="b.sh"\n\n'
        "#!/bin/sh\necho boot\n\n--B--\n"
    )
    root = first_boot(tmp_path, user_data, vendor_data=None)
    write_drive_dir(
        root,
        DRIVE,
        tree(spec(user_data=user_data), vendor={"cloud-init": "#!/bin/sh\necho vendor\n"}),
    )
    run_agent(root, standard_registry())
    idir = f"/var/lib/metaboot/instances/{UUID}"
    assert root.read_text(f"{idir}/scripts/part-001") == "#!/bin/sh\necho part\n"
    assert root.read_text(f"{idir}/scripts/vendor/part-001") == "#!/bin/sh\necho vendor\n"
    assert root.read_text("/var/lib/metaboot/scripts/per-boot/b.sh") == "#!/bin/sh\necho boot\n"
    assert root.path(f"{idir}/scripts/part-001").stat().st_mode & 0o777 == 0o700
    assert root.read_bytes(f"{idir}/user-data.bin") == user_data.encode()


def test_vendor_data_applies_under_user_data(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    vendor = {"cloud-init": "#cloud-config\nhostname: vendor\ntimezone: Europe/Paris\n"}
    write_drive_dir(
        root, DRIVE, tree(spec(user_data="#cloud-config\nhostname: user\n"), vendor=vendor)
    )
    run_agent(root, standard_registry())
    assert runs(root, "hostname_mod")[0]["values"] == {"hostname": "user"}
    assert runs(root, "tz_mod")[0]["values"] == {"timezone": "Europe/Paris"}

    root2 = make_root(tmp_path / "off")
    opt_out = "#cloud-config\nhostname: user\nvendor_data: {enabled: false}\n"
    write_drive_dir(root2, DRIVE, tree(spec(user_data=opt_out), vendor=vendor))
    run_agent(root2, standard_registry())
    assert runs(root2, "tz_mod") == []


def test_jinja_template_without_jinja2_is_a_clear_degradation(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    from metaboot.guest import template

    if template.available():
        pytest.skip("jinja2 is installed here; covered by the CLI test under Debian's python3")
    user_data = (
        'Content-Type: multipart/mixed; boundary="B"\nMIME-Version: 1.0\n\n'
        "--B\nContent-Type: text/jinja2\n\n## template: jinja\n#cloud-config\n"
        "hostname: {{ v1.local_hostname }}\n"
        "--B\nContent-Type: text/cloud-config\n\n#cloud-config\ntimezone: UTC\n--B--\n"
    )
    root = first_boot(tmp_path, user_data)
    run_agent(root, standard_registry())
    assert runs(root, "tz_mod")[0]["values"] == {"timezone": "UTC"}
    assert summarize(status(root)).recoverable == [
        "network: user-data part 1 (text/jinja2): templates need jinja2, which is not installed "
        "(python3-jinja2); ignored"
    ]


def test_boothooks_run_every_boot_inside_the_root(tmp_path: Path) -> None:
    hook = '#cloud-boothook\n#!/bin/sh\necho "$INSTANCE_ID" >> /boothook.log\n'
    root = first_boot(tmp_path, hook)
    add_shell(root)
    run_agent(root, standard_registry())
    reboot(root)
    run_agent(root, standard_registry())
    assert root.read_text("/boothook.log") == f"{UUID}\n{UUID}\n"
    events = status(root)["stages"]["network"]["events"]
    assert any(e["name"] == "boothook-part-001" and e["detail"] == "exit 0" for e in events)


def test_boothooks_never_run_on_the_host_for_a_foreign_root(tmp_path: Path) -> None:
    marker = tmp_path / "host-marker"
    hook = f"#cloud-boothook\n#!/bin/sh\ntouch {marker}\n"
    root = first_boot(tmp_path / "root", hook)  # no /bin/sh in this tree
    run_agent(root, standard_registry())
    assert not marker.exists()
    recoverable = summarize(status(root)).recoverable
    assert recoverable[0].startswith(
        "network: boothook part-001 (user-data part 1 (text/cloud-boothook)) not run:"
    )


def test_a_new_boot_never_reuses_what_an_earlier_boot_found(tmp_path: Path) -> None:
    """/run survives in a mounted image or a test tree: a new local stage starts afresh."""
    root = first_boot(tmp_path)
    agent_config(root, http_only(dead_url(), max_wait=0))
    run_agent(root, standard_registry())
    assert status(root)["source"] == "ConfigDrive"
    import shutil

    shutil.rmtree(root.path(DRIVE))
    code, _, _ = run_agent(root, standard_registry())
    assert code == 1
    assert status(root)["source"] is None
    assert "no instance data found" in summarize(status(root)).errors[0]


def test_semaphores_are_written_for_each_frequency_and_synced_per_process(tmp_path: Path) -> None:
    """Semaphores are written in place (as cloud-init's) without an fsync each; State.sync
    commits every directory written since the last call, and the runner calls it before it
    exits."""
    from metaboot.guest.state import State

    root = make_root(tmp_path)
    state = State(root)
    state.mark("users-groups", Frequency.INSTANCE, "i-1", "changed")
    state.mark("scripts_per_once", Frequency.ONCE, "i-1", "ok")
    state.mark("bootcmd", Frequency.ALWAYS, "i-1", "ok")  # every boot: leaves nothing
    assert state.has_run("users_groups", Frequency.INSTANCE, "i-1")
    assert state.has_run("scripts_per_once", Frequency.ONCE, "i-2")
    assert not state.has_run("bootcmd", Frequency.ALWAYS, "i-1")
    assert len(state._unsynced) == 2
    state.sync()
    assert state._unsynced == set()
    sem = root.path("/var/lib/metaboot/instances/i-1/sem/users_groups")
    assert json.loads(sem.read_text())["result"] == "changed"
    assert stat.S_IMODE(sem.stat().st_mode) == 0o600
    assert [p.name for p in sem.parent.iterdir()] == ["users_groups"]  # no temporary left
    os.chmod(sem, 0o644)  # marked again: rewritten in place, private again
    state.mark("users_groups", Frequency.INSTANCE, "i-1", "failed")
    assert json.loads(sem.read_text())["result"] == "failed"
    assert stat.S_IMODE(sem.stat().st_mode) == 0o600
    # A link planted where a semaphore goes is refused, never written through.
    os.symlink(tmp_path / "elsewhere", root.path("/var/lib/metaboot/instances/i-1/sem/ssh"))
    with pytest.raises(OSError):
        state.mark("ssh", Frequency.INSTANCE, "i-1", "ok")
    assert not (tmp_path / "elsewhere").exists()

    # A directory that vanished before the sync is a problem the runner reports, not a crash.
    state.mark("ssh", Frequency.INSTANCE, "i-3", "ok")
    shutil.rmtree(root.path("/var/lib/metaboot/instances/i-3"))
    problems = state.sync()
    assert len(problems) == 1
    assert "cannot sync /var/lib/metaboot/instances/i-3/sem" in problems[0]


def test_one_process_saves_each_stage_end_with_the_next_stage_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--stage all`` leaves the status a stage's end would leave, in /run and on disk, while
    rewriting it once per stage fewer (the next stage's start carries the end)."""
    from metaboot.guest import volatile

    root = first_boot(tmp_path, "#cloud-config\nhostname: web-1\n")
    writes: list[dict[str, Any]] = []
    real_write = volatile.write

    def spy(root_: Root, guest_path: str, content: bytes | str, mode: int = 0o644) -> None:
        if guest_path in ("/run/metaboot/status.json", "/var/lib/metaboot/data/status.json"):
            writes.append({"path": guest_path, "record": json.loads(content)})
        real_write(root_, guest_path, content, mode)

    real_write_host = volatile.write_host

    def spy_host(target: str, content: bytes | str, mode: int = 0o644) -> None:
        # The copies on disk are written behind the boot, to the path mapped in the root.
        if target.endswith("/var/lib/metaboot/data/status.json"):
            writes.append(
                {"path": "/var/lib/metaboot/data/status.json", "record": json.loads(content)}
            )
        real_write_host(target, content, mode)

    monkeypatch.setattr(volatile, "write", spy)
    monkeypatch.setattr(volatile, "write_host", spy_host)
    code, _, _ = run_agent(root, standard_registry())
    assert code == 0
    copies = [w["record"] for w in writes if w["path"].startswith("/var/lib")]
    # One copy on disk per finished stage: each names every stage finished so far.
    finished = [
        [name for name, stage in copy["stages"].items() if stage["end"] is not None]
        for copy in copies
    ]
    assert finished == [
        ["local"],
        ["local", "network"],
        ["local", "network", "config"],
        ["local", "network", "config", "final"],
    ]
    run_writes = [w for w in writes if w["path"].startswith("/run")]
    stages = [w["record"]["stage"] for w in run_writes if w["record"]["stage"] is not None]
    assert stages[0] == "local"  # the first write is the first stage's start
    assert len(run_writes) <= 7  # 4 stage starts, the instance found, the final end, progress
    on_disk = json.loads(root.read_bytes("/var/lib/metaboot/data/status.json"))
    assert on_disk == status(root) and on_disk["stage"] is None


def test_boot_finished_is_final_messages_when_it_ran_else_the_runners(tmp_path: Path) -> None:
    root = first_boot(tmp_path)
    finished = f"/var/lib/metaboot/instances/{UUID}/boot-finished"
    registry = standard_registry()
    message = recording_module(
        "final_message",
        Stage.FINAL,
        Frequency.ALWAYS,
        action=lambda ctx: ctx.root.write_file(f"{ctx.state_dir}/boot-finished", "cloud-init's\n"),
    )
    registry.modules[message.name] = message
    assert run_agent(root, registry)[0] == 0
    assert root.read_text(finished) == "cloud-init's\n"  # not overwritten by the runner

    other = first_boot(tmp_path / "other")
    assert run_agent(other, standard_registry())[0] == 0
    float(other.read_text(finished))  # no final_message: the runner's own time stamp
