"""The instances the VM tests boot, and what each must look like afterwards.

One instance per scenario ({cloud-init, metaboot} × {service, ISO drive, VFAT drive}). They all
have the same port address (169.254.169.42, inside QEMU's slirp network so traffic still flows
after the static configuration replaces the DHCP lease) on different networks: the service
tells them apart by the network id the proxy stamps, as it does for overlapping tenant ranges.

The checks read two independent records of the same boot: the serial console (what the guest
printed) and the powered-off disk (what it left behind), each through its own path.
"""

from __future__ import annotations

import json
import re
import uuid as uuidlib
import warnings
from dataclasses import dataclass
from typing import Any

from tests.e2e.e2e_vm import SLIRP_DHCP_START, BootResult, Disk

PORT_IP = "169.254.169.42"
GATEWAY = "169.254.169.2"  # slirp's own address
DEFAULT_USER = "debian"
PASSWORD = "e2e-Chpasswd-7f3a"  # a test password, set through chpasswd
AGENTS = ("cloud-init", "metaboot")
TRANSPORTS = ("service", "iso", "vfat")


@dataclass(frozen=True)
class Scenario:
    agent: str  # "cloud-init" or "metaboot"
    transport: str  # "service", "iso" or "vfat"
    variant: str = ""  # e.g. "bad-config"

    @property
    def id(self) -> str:
        return "-".join(p for p in (self.agent, self.transport, self.variant) if p)

    @property
    def uuid(self) -> str:
        return str(uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"metaboot-e2e:{self.id}"))

    @property
    def network_id(self) -> str:
        return f"net-{self.id}"

    @property
    def mac(self) -> str:
        digest = uuidlib.uuid5(uuidlib.NAMESPACE_URL, f"mac:{self.id}").bytes
        return "fa:16:3e:" + ":".join(f"{b:02x}" for b in digest[:3])

    @property
    def hostname(self) -> str:
        return f"e2e-{self.id}"


ALL = [Scenario(a, t) for a in AGENTS for t in TRANSPORTS]
BAD_CONFIG = Scenario("metaboot", "iso", "bad-config")


def user_data(
    scenario: Scenario,
    power_off: bool = True,
    canary_port: int | None = None,
    linger: int = 0,
) -> str:
    """The cloud-config every scenario applies: the same text for both agents.

    ``canary_port``: a port the test listens on at the host's 127.0.0.1. Unrestricted slirp
    would carry a guest connection to its gateway address there; with ``restrict=on`` it must
    not, and the guest reports what happened (``e2e-egress: blocked``)."""
    lines = [
        "#cloud-config",
        "chpasswd:",
        "  expire: false",
        "  users:",
        f"    - {{name: {DEFAULT_USER}, password: {PASSWORD}, type: text}}",
        "write_files:",
        "  - path: /etc/e2e/written",
        f"    content: 'written by write_files for {scenario.id}'",
        "    permissions: '0640'",
        "  - path: /home/debian/deferred.txt",
        "    content: 'deferred until the user exists'",
        f"    owner: '{DEFAULT_USER}:{DEFAULT_USER}'",
        "    permissions: '0600'",
        "    defer: true",
        "runcmd:",
        # Printed through the kernel log (at error level, so the console shows it whatever
        # kernel.printk says): a write to /dev/ttyS0 can be lost when the serial getty starts
        # and hangs up the line at the same moment.
        "  - [sh, -c, 'echo \"e2e-runcmd: host=$(hostname) addrs=$(ip -4 -o addr show scope global"
        ' | tr -s " " | cut -d" " -f4 | tr "\\n" " ")" > /var/lib/e2e-runcmd;'
        ' echo "<3>$(cat /var/lib/e2e-runcmd)" > /dev/kmsg\']',
    ]
    if canary_port is not None:
        lines.append(
            f'  - [bash, -c, \'if timeout 5 bash -c "exec 3<>/dev/tcp/{GATEWAY}/{canary_port}"'
            ' 2>/dev/null; then r=open; else r=blocked; fi; echo "<3>e2e-egress: $r" > /dev/kmsg\']'
        )
    if linger:
        # No power_state: a process left behind powers off after the guest idled a while
        # (`shutdown +N` needs systemd-logind, which the minimal images lack).
        lines.append(
            f'  - [sh, -c, \'setsid sh -c "sleep {linger}; systemctl poweroff"'
            " </dev/null >/dev/null 2>&1 &']"
        )
    elif power_off:
        lines += [
            "power_state:",
            "  mode: poweroff",
            f"  message: 'e2e: {scenario.id} powering off'",
            "  timeout: 60",
            "  condition: true",
        ]
    return "\n".join(lines) + "\n"


def instance_spec(
    scenario: Scenario,
    public_key: str,
    power_off: bool = True,
    canary_port: int | None = None,
    linger: int = 0,
) -> dict[str, Any]:
    """The instance record (metaboot's spec format), network derived from its port as nova does."""
    return {
        "uuid": scenario.uuid,
        "name": scenario.hostname,
        "hostname": scenario.hostname,
        "project_id": "e2e",
        "keys": [{"name": "e2e", "type": "ssh", "data": public_key}],
        "meta": {"scenario": scenario.id},
        "user_data": user_data(scenario, power_off, canary_port, linger),
        "ports": [
            {
                "network_id": scenario.network_id,
                "mac": scenario.mac,
                "fixed_ips": [PORT_IP],
                "subnets": [{"cidr": "169.254.169.0/24", "gateway": GATEWAY, "dhcp": False}],
            }
        ],
    }


# ---- checks ------------------------------------------------------------------------------------


def shadow_hash(disk: Disk, user: str) -> str:
    for line in disk.read_text("/etc/shadow").splitlines():
        fields = line.split(":")
        if fields[0] == user:
            return fields[1]
    raise AssertionError(f"{user} is not in the guest's /etc/shadow")


def password_matches(hashed: str, password: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt  # the system's libcrypt: yescrypt, SHA-512, … as the guest hashed it

    return bool(hashed) and crypt.crypt(password, hashed) == hashed


def passwd_entry(disk: Disk, user: str) -> list[str]:
    for line in disk.read_text("/etc/passwd").splitlines():
        if line.split(":")[0] == user:
            return line.split(":")
    raise AssertionError(f"{user} is not in the guest's /etc/passwd")


def sshd_settings(disk: Disk) -> dict[str, str]:
    """sshd's effective settings as sshd reads them: the first value of a keyword wins, and
    drop-ins are included where sshd_config says ``Include``."""
    settings: dict[str, str] = {}

    def read(text: str) -> None:
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.lower().startswith("match "):
                break
            key, _, value = line.partition(" ")
            if key.lower() == "include":
                directory, _, pattern = value.strip().rpartition("/")
                regex = re.compile(re.escape(pattern).replace(r"\*", ".*") + "$")
                for name in disk.listdir(directory):
                    if regex.match(name):
                        read(disk.read_text(f"{directory}/{name}"))
                continue
            settings.setdefault(key.lower(), value.strip())

    read(disk.read_text("/etc/ssh/sshd_config"))
    return settings


def check_login_with_key(disk: Disk, public_key: str) -> None:
    """The default user can log in with the key: sshd would accept it, by the rules sshd uses."""
    entry = passwd_entry(disk, DEFAULT_USER)
    uid, gid, home, shell = int(entry[2]), int(entry[3]), entry[5], entry[6]
    assert shell in disk.read_text("/etc/shells").split(), f"{DEFAULT_USER}'s shell {shell}"
    keys_path = f"{home}/.ssh/authorized_keys"
    authorized = disk.read_text(keys_path)
    key_body = " ".join(public_key.split()[:2])
    assert any(" ".join(line.split()[:2]) == key_body for line in authorized.splitlines()), (
        f"the instance key is not in {keys_path}: {authorized!r}"
    )
    # StrictModes: the home, ~/.ssh and the file belong to the user and are not group/world
    # writable, else sshd ignores the file.
    for path, mode_mask in ((home, 0o022), (f"{home}/.ssh", 0o077), (keys_path, 0o022)):
        inode = disk.stat(path)
        assert inode is not None, path
        assert inode.uid == uid, f"{path} belongs to uid {inode.uid}, not {uid}"
        assert inode.mode & mode_mask == 0, f"{path} has mode {inode.mode:o}"
    del gid
    sshd = sshd_settings(disk)
    assert sshd.get("pubkeyauthentication", "yes").lower() == "yes", sshd
    files = sshd.get("authorizedkeysfile", ".ssh/authorized_keys .ssh/authorized_keys2").split()
    assert ".ssh/authorized_keys" in files or "%h/.ssh/authorized_keys" in files, files
    for deny in ("denyusers", "denygroups"):
        assert DEFAULT_USER not in sshd.get(deny, "").split(), sshd
    if "allowusers" in sshd:
        assert DEFAULT_USER in sshd["allowusers"].split(), sshd
    # An expired or disabled account is refused even with a valid key.
    for line in disk.read_text("/etc/shadow").splitlines():
        fields = line.split(":")
        if fields[0] == DEFAULT_USER:
            assert fields[7] in ("", "-1"), f"{DEFAULT_USER}'s account expires: {fields[7]}"
    # sshd needs host keys to start at all.
    host_keys = [
        n for n in disk.listdir("/etc/ssh") if n.startswith("ssh_host_") and n.endswith("_key")
    ]
    assert host_keys, "no SSH host keys: sshd cannot start"


AGENT_LOGS = {"cloud-init": "/var/log/cloud-init.log", "metaboot": "/var/log/metaboot.log"}


def check_common(result: BootResult, scenario: Scenario, public_key: str) -> None:
    """What both agents must have done, from the console and from the disk."""
    console, disk = result.console, result.disk
    assert result.powered_off, (
        f"{scenario.id}: the guest did not power itself off "
        f"(exit {result.exit_code}, timed out {result.timed_out})\n{console[-4000:]}"
    )
    # A clean power-off that power_state asked for: systemd went through poweroff.target, and
    # the agent recorded the shutdown it scheduled, with the user-data's message.
    assert "Reached target poweroff.target" in console
    message = f"e2e: {scenario.id} powering off"
    agent_log = (
        disk.read_text(AGENT_LOGS[scenario.agent])
        if disk.exists(AGENT_LOGS[scenario.agent])
        else ""
    )
    assert message in agent_log or message in console, f"power_state's {message!r} is nowhere"
    # Hostname.
    assert disk.read_text("/etc/hostname").strip() == scenario.hostname
    # runcmd ran, after the hostname was set (what the guest had as addresses then is checked
    # by check_live_static).
    match = re.search(r"e2e-runcmd: host=(\S+) addrs=", console)
    assert match, f"runcmd's line is not on the console\n{console[-3000:]}"
    assert match.group(1) == scenario.hostname
    assert disk.read_text("/var/lib/e2e-runcmd").startswith(
        f"e2e-runcmd: host={scenario.hostname} "
    )
    # write_files, with its mode, and the deferred one owned by the default user.
    written = disk.stat("/etc/e2e/written")
    assert written is not None and written.mode & 0o777 == 0o640 and written.uid == 0
    assert disk.read_text("/etc/e2e/written") == f"written by write_files for {scenario.id}"
    entry = passwd_entry(disk, DEFAULT_USER)
    deferred = disk.stat("/home/debian/deferred.txt")
    assert deferred is not None and deferred.mode & 0o777 == 0o600
    assert (deferred.uid, deferred.gid) == (int(entry[2]), int(entry[3]))
    # The password set through chpasswd.
    assert password_matches(shadow_hash(disk, DEFAULT_USER), PASSWORD)
    # The default user's SSH key, and sshd would accept it.
    check_login_with_key(disk, public_key)
    # disable_root (the default): root's key entry only tells people to log in as the user.
    root_keys = (
        disk.read_text("/root/.ssh/authorized_keys")
        if disk.exists("/root/.ssh/authorized_keys")
        else ""
    )
    for line in root_keys.splitlines():
        if public_key.split()[1] in line:
            assert line.startswith(("no-port-forwarding", 'command="')) and DEFAULT_USER in line, (
                line
            )


def check_live_static(result: BootResult) -> None:
    """On this first boot already, the guest runs with the port's static address from
    network_data.json, and the DHCP lease it may have used to find its data is gone."""
    match = re.search(r"e2e-runcmd: host=\S+ addrs=([^\r\n]*)", result.console)
    assert match, "runcmd's line is not on the console"
    addrs = match.group(1).split()
    assert f"{PORT_IP}/24" in addrs, addrs
    assert not any(a.startswith(SLIRP_DHCP_START + "/") for a in addrs), addrs


def network_files(disk: Disk) -> dict[str, str]:
    """Every network configuration file the guest's renderers may have written."""
    files: dict[str, str] = {}
    for directory in ("/etc/network/interfaces.d", "/etc/systemd/network", "/etc/netplan"):
        if disk.exists(directory):
            for name in disk.listdir(directory):
                files[f"{directory}/{name}"] = disk.read_text(f"{directory}/{name}")
    files["/etc/network/interfaces"] = disk.read_text("/etc/network/interfaces")
    return files


def json_from(disk: Disk, path: str) -> Any:
    return json.loads(disk.read_text(path))
