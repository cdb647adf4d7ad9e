"""cloud-init's own conversion and renderers (Debian's 22.4.2) on the same input."""

from __future__ import annotations

import json
from typing import Any

from tests import reference

SNIPPET = """
import os, tempfile
from cloudinit.sources.helpers import openstack
from cloudinit.net import network_state, eni, netplan, networkd, network_manager, sysconfig
network_data = json.loads({data!r})
macs = json.loads({macs!r})
v1 = openstack.convert_net_json(network_data, known_macs=macs)
state = network_state.parse_net_config_data(v1)
configs = {{
    "eni": (eni.Renderer, {{}}),
    "netplan": (netplan.Renderer, {{}}),
    "networkd": (networkd.Renderer, {{}}),
    "network-manager": (network_manager.Renderer, {{}}),
    # cloud-init's RHEL distro settings for the sysconfig renderer (distros/rhel.py).
    "sysconfig": (sysconfig.Renderer, {{
        "control": "etc/sysconfig/network",
        "iface_templates": "%(base)s/network-scripts/ifcfg-%(name)s",
        "route_templates": {{
            "ipv4": "%(base)s/network-scripts/route-%(name)s",
            "ipv6": "%(base)s/network-scripts/route6-%(name)s",
        }},
        "flavor": "rhel",
    }}),
}}
result = {{"v1": v1, "files": {{}}}}
for name, (cls, cfg) in configs.items():
    # 22.4.2's NetworkManager renderer reads a 'wakeonlan' key that not every interface of
    # network_state has (KeyError); an absent key means False. Renderers may rebuild the
    # state's dicts, so this is done before each one.
    for iface in state._network_state["interfaces"].values():
        iface.setdefault("wakeonlan", False)
    out = tempfile.mkdtemp()
    cls(cfg).render_network_state(state, target=out)
    files = {{}}
    for top, _, names in os.walk(out):
        for f in names:
            path = os.path.join(top, f)
            with open(path) as handle:
                files[os.path.relpath(path, out)] = handle.read()
    result["files"][name] = files
"""


def render_all(network_data: dict[str, Any], macs: dict[str, str]) -> dict[str, Any]:
    """{"v1": cloud-init's v1 config, "files": {renderer: {relative path: text}}}."""
    snippet = SNIPPET.format(data=json.dumps(network_data), macs=json.dumps(macs))
    result: dict[str, Any] = reference.run_cloudinit(snippet)
    return result
