"""The ip commands derived from the model come in an order the kernel accepts."""

from __future__ import annotations

from metaboot.guest.network.iproute import ip_commands
from metaboot.guest.network.model import Problems
from metaboot.guest.network.nics import Nic, bind
from metaboot.guest.network.openstack import parse_network_data
from tests.guest.network.netcases import CASES, NICS


def commands(case: str) -> list[str]:
    model, _ = parse_network_data(CASES[case])
    network = bind(model, [Nic(n, m) for n, m in NICS.items()], Problems())
    return [" ".join(argv) for argv in ip_commands(network)]


def test_bond_then_members_then_vlan_then_addresses_and_routes() -> None:
    lines = commands("bond_vlan")
    bond = lines.index(
        "ip link add bond0 type bond mode 802.3ad miimon 100 xmit_hash_policy layer3+4"
    )
    enslave = lines.index("ip link set ens4 master bond0")
    assert lines[enslave - 1] == "ip link set ens4 down"  # a NIC must be down to be enslaved
    vlan = lines.index("ip link add link bond0 name bond0.100 type vlan id 100")
    up_bond = lines.index("ip link set bond0 up")
    up_vlan = lines.index("ip link set bond0.100 up")
    address = lines.index("ip address add 172.16.100.5/24 dev bond0.100")
    route = lines.index("ip -4 route add 0.0.0.0/0 via 172.16.100.1 dev bond0.100")
    assert bond < enslave < vlan < up_bond < up_vlan < address < route
    assert "ip link set bond0.100 address fa:16:3e:00:00:04" in lines


def test_mtu_and_onlink() -> None:
    lines = commands("mtu_routes")
    assert "ip link set ens3 mtu 1450" in lines
    assert "ip -4 route add 192.168.77.9/32 via 203.0.113.126 dev ens3" in lines
    assert not any("onlink" in line for line in lines)  # every gateway is on a subnet
