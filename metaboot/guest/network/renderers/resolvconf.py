"""A plain /etc/resolv.conf, for targets where nothing else writes one from the interfaces'
DNS settings (ifupdown without the resolvconf package, networkd without systemd-resolved)."""

from __future__ import annotations

from metaboot.guest.network.model import Network

PATH = "/etc/resolv.conf"
MAX_NAMESERVERS = 3  # glibc reads no more (MAXNS)


def render(network: Network) -> dict[str, bytes]:
    servers = network.all_dns()
    search = network.all_search()
    if not servers and not search:
        return {}
    lines = ["# Written by metaboot from the instance's network data."]
    lines += [f"nameserver {s}" for s in servers[:MAX_NAMESERVERS]]
    if search:
        lines.append("search " + " ".join(search))
    return {PATH: ("\n".join(lines) + "\n").encode()}
