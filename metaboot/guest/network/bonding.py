"""Bond options: one row per kernel option, with its name in every format we read or write.

The model stores kernel (sysfs) names, as ``BONDING_OPTS`` and ``nmcli`` use them; each renderer
looks up its own spelling here, so adding an option is one row.
"""

from __future__ import annotations

from metaboot.guest.records import dataclass

MODES = (
    "balance-rr",
    "active-backup",
    "balance-xor",
    "broadcast",
    "802.3ad",
    "balance-tlb",
    "balance-alb",
)


@dataclass(frozen=True)
class BondOption:
    kernel: str  # sysfs / BONDING_OPTS / NetworkManager [bond] name
    netplan: str  # netplan `parameters` key
    networkd: str | None  # [Bond] key in a .netdev (None: set elsewhere or unsupported)
    milliseconds: bool = False  # networkd wants a time span ("100ms")


OPTIONS = (
    BondOption("miimon", "mii-monitor-interval", "MIIMonitorSec", milliseconds=True),
    BondOption("xmit_hash_policy", "transmit-hash-policy", "TransmitHashPolicy"),
    BondOption("lacp_rate", "lacp-rate", "LACPTransmitRate"),
    BondOption("updelay", "up-delay", "UpDelaySec", milliseconds=True),
    BondOption("downdelay", "down-delay", "DownDelaySec", milliseconds=True),
    BondOption("ad_select", "ad-select", "AdSelect"),
    BondOption("arp_interval", "arp-interval", "ARPIntervalSec", milliseconds=True),
    BondOption("arp_ip_target", "arp-ip-targets", "ARPIPTargets"),
    BondOption("fail_over_mac", "fail-over-mac-policy", "FailOverMACPolicy"),
    BondOption("min_links", "min-links", "MinLinks"),
    BondOption("primary_reselect", "primary-reselect-policy", "PrimaryReselectPolicy"),
    BondOption("primary", "primary", None),  # networkd: PrimarySlave= on the member
)

BY_KERNEL = {o.kernel: o for o in OPTIONS}
BY_NETPLAN = {o.netplan: o for o in OPTIONS}


def kernel_name(raw: str) -> str | None:
    """Map any spelling (``bond_miimon``, ``bond-miimon``, ``mii-monitor-interval``, ``miimon``)
    to the kernel option name, or None if it is not one we know."""
    name = raw.strip().lower()
    if name in BY_NETPLAN:
        return BY_NETPLAN[name].kernel
    for prefix in ("bond_", "bond-"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    name = name.replace("-", "_")
    if name in BY_KERNEL:
        return name
    if name == "slaves" or name == "master":
        return None
    return None


def option_value(value: object) -> str:
    """Options are kept as text; YAML/JSON give ints, bools and lists too."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)
