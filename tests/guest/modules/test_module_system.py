"""timezone, locale, final_message and power_state_change."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pytest
import yaml

from metaboot import __version__
from metaboot.errors import ConfigError
from metaboot.guest.modules import final_message, power_state_change
from metaboot.guest.modules.set_locale import enable_in_locale_gen, set_variable
from metaboot.guest.os import power
from metaboot.guest.system import Root
from tests.guest.modules.modharness import STATE_DIR, Harness, MakeHarness, instance_data
from tests.guest.modules.schemacheck import SchemaChecker


def test_timezone(guest_root: Root, harness: MakeHarness) -> None:
    report = harness(guest_root, "#cloud-config\ntimezone: Europe/Berlin\n").run("timezone")
    assert os.readlink(guest_root.path("/etc/localtime")) == "/usr/share/zoneinfo/Europe/Berlin"
    assert guest_root.read_text("/etc/timezone") == "Europe/Berlin\n"
    assert len(report.changes) == 2


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus_Mons", "../../etc/passwd", "Europe/../../x", "/Etc/UTC", "Etc//UTC"]
)
def test_unknown_timezone_changes_nothing(
    guest_root: Root, harness: MakeHarness, zone: str
) -> None:
    with pytest.raises(ConfigError, match="timezone"):
        harness(guest_root, f"#cloud-config\ntimezone: '{zone}'\n").run("timezone")
    assert os.readlink(guest_root.path("/etc/localtime")) == "/usr/share/zoneinfo/Etc/UTC"


def test_locale_written_and_generated_inside_the_root(
    chroot_root: Root, harness: MakeHarness
) -> None:
    # A stand-in locale-gen in the root records that it ran there, with the list it saw.
    chroot_root.write_file(
        "/bin/locale-gen", "#!/bin/sh\ncat /etc/locale.gen > /root/locale-gen.saw\n", mode=0o755
    )
    chroot_root.write_file("/etc/default/locale", "# system locale\nLANG=C.UTF-8\nLC_TIME=C\n")
    report = harness(chroot_root, "#cloud-config\nlocale: de_DE.UTF-8\n").run("locale")
    assert (
        chroot_root.read_text("/etc/default/locale")
        == "# system locale\nLC_TIME=C\nLANG=de_DE.UTF-8\n"
    )
    assert "\nde_DE.UTF-8 UTF-8\n" in chroot_root.read_text("/root/locale-gen.saw")
    assert "generated de_DE.UTF-8" in report.changes


def test_locale_generation_skipped_on_plain_tree(guest_root: Root, harness: MakeHarness) -> None:
    report = harness(
        guest_root, "#cloud-config\nlocale: fr_FR.UTF-8\nlocale_configfile: /etc/locale.conf\n"
    ).run("locale")
    assert guest_root.read_text("/etc/locale.conf") == "LANG=fr_FR.UTF-8\n"
    assert "locale-gen not run" in report.warnings[0]


def test_locale_gen_editing() -> None:
    gen = "# en_US ISO-8859-1\n# en_US.UTF-8 UTF-8\n"
    assert enable_in_locale_gen(gen, "en_US.UTF-8", "") == "# en_US ISO-8859-1\nen_US.UTF-8 UTF-8\n"
    assert enable_in_locale_gen("en_US.UTF-8 UTF-8\n", "en_US.UTF-8", "") == "en_US.UTF-8 UTF-8\n"
    assert enable_in_locale_gen("", "sr_RS@latin", "sr_RS@latin UTF-8\n") == "sr_RS@latin UTF-8\n"
    assert set_variable("A=1\nLANG=x\n", "LANG", "y") == "A=1\nLANG=y\n"


def test_bad_locale(guest_root: Root, harness: MakeHarness) -> None:
    with pytest.raises(ConfigError, match="not a locale name"):
        harness(guest_root, "#cloud-config\nlocale: 'en_US; rm -rf /'\n").run("locale")


def test_final_message(guest_root: Root, harness: MakeHarness) -> None:
    h = harness(
        guest_root,
        "#cloud-config\nfinal_message: 'up: $version from ${datasource} {{ uptime }} $unknown'\n",
    )
    h.run("final_message")
    assert h.console == [
        f"up: {__version__} from ConfigDrive [config-disk (/dev/sr0)] unknown $unknown\n"
    ]
    finished = guest_root.read_text(f"{STATE_DIR}/boot-finished")
    assert finished.startswith("unknown - ") and finished.endswith(f" - v. {__version__}\n")
    h = harness(guest_root, instance=instance_data(subplatform=""))
    h.run("final_message")
    assert h.console[0].startswith(f"metaboot {__version__} finished at ")
    assert "Datasource ConfigDrive." in h.console[0]


@pytest.mark.parametrize(
    "template",
    [
        "$version $$version $$$version ${version}s $versions ${ver sion} $ at end $",
        "{{ uptime }} {{uptime}} {{ nope }} ${nope} $nope $_x $9 $Version ${VERSION}",
        "$$ $ {} ${} ${version $version}",
        "{{{ version }}} {{ version}}} {{ver sion}} {{ }} {{}} {{\u0663}}",
        "{{ \u0142\u00f3d\u017a }} {{ {{ version }} }}",
        "${\u00fc} $\u00fc $v\u00fc $version\u00fc ${_x}${_x} $$$$ $${version} {{ uptime\t}}",
        "$ \n$version\n {{\nuptime\n}} ${version",
    ],
)
def test_final_message_placeholders_as_string_template(template: str) -> None:
    import re
    import string

    values = {"version": "1.0", "uptime": "12.5", "_x": "under", "Version": "cap"}
    jinja_like = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: "${" + m.group(1) + "}", template)
    expected = string.Template(jinja_like).safe_substitute(values)
    assert final_message.render(template, values) == expected


def test_power_state_on_a_tree_only_says_what_it_would_do(
    guest_root: Root, harness: MakeHarness
) -> None:
    h = harness(
        guest_root,
        "#cloud-config\npower_state:\n  mode: reboot\n  delay: 5\n  message: Rebooting now\n"
        "  timeout: 60\n  condition: true\n",
    )
    report = h.run("power_state_change")
    assert report.warnings == [
        f"power_state: {guest_root.base} is not the live system; would run: "
        "shutdown -r +5 Rebooting now"
    ]
    assert power_state_change.plan(h.cfg) == power_state_change.PowerPlan(
        ["shutdown", "-r", "+5", "Rebooting now"], 60.0, True
    )


def test_power_state_live_starts_the_waiter(
    monkeypatch: pytest.MonkeyPatch, harness: MakeHarness
) -> None:
    """On the live system the module hands the command to the waiter; here the waiter is
    replaced so that nothing is powered off (its real behaviour is tested in tests/guest/os)."""
    started: list[tuple[Sequence[str], int, float]] = []
    monkeypatch.setattr(
        power, "launch_after_exit", lambda argv, pid, t: started.append((argv, pid, t))
    )
    h: Harness = harness(
        Root("/"), "#cloud-config\npower_state: {mode: poweroff, condition: false}\n"
    )
    report = h.run("power_state_change")
    assert started == [] and "condition not met" in report.changes[0]
    h = harness(Root("/"), "#cloud-config\npower_state: {mode: poweroff}\n")
    h.run("power_state_change")
    assert started == [(["shutdown", "-P", "now"], os.getpid(), 30.0)]


def test_power_state_condition_command_in_the_root(chroot_root: Root, harness: MakeHarness) -> None:
    ctx_ok = harness(chroot_root).ctx()
    assert power_state_change.condition_met(ctx_ok, ["sh", "-c", "exit 0"]) is True
    assert power_state_change.condition_met(ctx_ok, ["sh", "-c", "exit 1"]) is False


@pytest.mark.parametrize(
    "doc",
    [
        "#cloud-config\npower_state: {mode: sleep}\n",
        "#cloud-config\npower_state: {mode: reboot, delay: soon}\n",
        "#cloud-config\npower_state: {delay: now}\n",
    ],
)
def test_power_state_bad_values(guest_root: Root, schema_checker: SchemaChecker, doc: str) -> None:
    cfg = yaml.safe_load(doc)
    assert schema_checker.check(cfg).errors, "cloud-init rejects it too"
    with pytest.raises(ConfigError, match=r"power_state\.(mode|delay)"):
        Harness(guest_root, cfg, instance_data()).run("power_state_change")
