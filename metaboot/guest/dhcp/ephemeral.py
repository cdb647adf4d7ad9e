"""One bounded episode: pick the NIC, lease an address, do the work, put everything back.

The NIC is the first physical one with a link (carrier once up), in the same natural name
order the fallback configuration uses. The episode waits for udev to have named it (udev
cannot rename a link that is up, so bringing it up too early would leave it ``eth0`` while the
rendered configuration says ``ens3``) — bounded, like every other wait here.

Whatever the outcome — lease or none, work done or failed — the interface ends as it was found:
address and routes removed, the link down again if it was down.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable

from metaboot.guest.dhcp import client, link
from metaboot.guest.dhcp.message import Reply
from metaboot.guest.records import dataclass, field

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import TypeVar

    T = TypeVar("T")

UDEV_DB = "/run/udev/data"
POLL = 0.05


@dataclass
class Episode:
    """What happened, for the stage's events and status (never secrets)."""

    interface: str | None = None
    address: str | None = None
    outcome: str = "not tried"  # "leased", "no NIC", "no lease", "failed"
    detail: str = ""
    problems: list[str] = field(default_factory=list)  # cleanup or route failures
    seconds: float = 0.0


@dataclass(frozen=True)
class Candidate:
    name: str
    mac: bytes
    hardware: bool  # has a ``device`` link: a NIC udev names (veths and bridges have none)


def candidates(sys_net: str = link.SYS_NET) -> list[Candidate]:
    """Physical-looking NICs of the running kernel, as the renderers' NIC list has them: an
    Ethernet MAC, not loopback, bond or bridge; those with a ``device`` link where any has one."""
    found: list[Candidate] = []
    try:
        names = sorted(os.listdir(sys_net), key=_natural)
    except OSError:
        return []
    for name in names:
        base = f"{sys_net}/{name}"
        if name == "lo" or os.path.exists(f"{base}/bonding") or os.path.exists(f"{base}/bridge"):
            continue
        if link.read_sys(name, "type") not in (None, "1"):  # ARPHRD_ETHER
            continue
        address = link.read_sys(name, "address") or ""
        try:
            mac = bytes.fromhex(address.replace(":", ""))
        except ValueError:
            continue
        if len(mac) == 6 and mac != bytes(6):
            found.append(Candidate(name, mac, os.path.exists(f"{base}/device")))
    if any(c.hardware for c in found):
        found = [c for c in found if c.hardware]
    return found


def _natural(name: str) -> list[object]:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def udev_done(nic: Candidate) -> bool:
    """udev has processed the NIC (its database entry exists), or udev has nothing to do with
    it: no udev, or no device behind it (a veth in a namespace never reaches udev)."""
    if not nic.hardware or not os.path.isdir(UDEV_DB):
        return True
    index = link.read_sys(nic.name, "ifindex")
    return index is None or os.path.exists(f"{UDEV_DB}/n{index}")


def run_with_lease(
    work: Callable[[str, Reply], T],
    *,
    timeout: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    find: Callable[[], list[Candidate]] = candidates,
) -> tuple[T | None, Episode]:
    """Run ``work(interface, lease)`` under an ephemeral lease; ``timeout`` bounds everything
    before the work (finding the NIC, the link, the DHCP exchange). The work bounds itself."""
    started = clock()
    deadline = started + timeout
    episode = Episode()
    nics = _wait_for_nics(find, deadline, clock, sleep)
    if not nics:
        episode.outcome, episode.detail = "no NIC", "no network interface appeared"
        episode.seconds = clock() - started
        return None, episode
    applied: list[link.Applied] = []
    result: T | None = None
    try:
        chosen = _bring_up(nics, applied, deadline, clock, sleep)
        episode.interface = chosen.name
        ack = client.exchange(chosen.name, chosen.mac, deadline, clock=clock)
        mine = next(a for a in applied if a.ifname == chosen.name)
        mine.lease(ack)
        episode.address = ack.address
        episode.outcome = "leased"
        episode.detail = f"{ack.address}/{ack.prefix} on {chosen.name} from {ack.server_id}"
        try:
            result = work(chosen.name, ack)
        finally:
            client.release(chosen.name, chosen.mac, ack)
    except (client.DhcpError, link.LinkError) as err:
        episode.outcome = "no lease" if isinstance(err, client.DhcpError) else "failed"
        episode.detail = str(err)
    finally:
        for changes in reversed(applied):
            episode.problems += changes.undo()
        episode.problems += [p for changes in applied for p in changes.problems]
        episode.seconds = clock() - started
    return result, episode


def _wait_for_nics(
    find: Callable[[], list[Candidate]],
    deadline: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> list[Candidate]:
    """The NICs once at least one exists and udev is done with them (or the deadline)."""
    while True:
        nics = find()
        if nics and all(udev_done(n) for n in nics):
            return nics
        if clock() >= deadline:
            return nics
        sleep(POLL)


def _bring_up(
    nics: list[Candidate],
    applied: list[link.Applied],
    deadline: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> Candidate:
    """Up every candidate that is down, take the first with carrier (else the first), and
    put the others back at once."""
    for nic in nics:
        changes = link.Applied(nic.name)
        applied.append(changes)
        changes.link_up()
    # Carrier follows "up" within milliseconds on virtual NICs; a cable may take a second.
    carrier_deadline = min(deadline, clock() + 2.0)
    chosen = None
    while chosen is None:
        chosen = next((n for n in nics if link.has_carrier(n.name)), None)
        if chosen is None and clock() >= carrier_deadline:
            chosen = nics[0]
        elif chosen is None:
            sleep(POLL)
    for changes in applied:
        if changes.ifname != chosen.name:
            changes.problems += changes.undo()
    return chosen
