"""An ephemeral DHCPv4 lease for the local stage, as cloud-init's OpenStackLocal takes one.

On a first boot with no config drive the instance's data is only on the metadata service, and
the OS network has not started yet. The agent leases an IPv4 address for a moment, reads the
metadata, gives the address back and renders the instance's own network configuration, so
the OS starts its network with the static address from ``network_data.json`` on this very boot.

- :mod:`~metaboot.guest.dhcp.message`: DHCP messages built and parsed (pure);
- :mod:`~metaboot.guest.dhcp.client`: DISCOVER/OFFER/REQUEST/ACK over a packet socket;
- :mod:`~metaboot.guest.dhcp.link`: the NIC's state and the lease applied and removed;
- :mod:`~metaboot.guest.dhcp.netlink`: the rtnetlink requests that do it;
- :mod:`~metaboot.guest.dhcp.ephemeral`: choosing the NIC and the whole bounded episode.

Standard library only: no ``ip``, no ``dhclient`` needed in the image.
"""
