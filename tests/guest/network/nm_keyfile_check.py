"""Run under Debian's python3: read keyfiles with libnm (NetworkManager's own keyfile reader),
verify each connection, and print what NetworkManager understood, as JSON."""

import json
import sys

import gi

gi.require_version("NM", "1.0")
from gi.repository import NM, GLib  # noqa: E402


def read(path):
    keyfile = GLib.KeyFile()
    keyfile.load_from_file(path, GLib.KeyFileFlags.NONE)
    warnings = []

    def handler(_keyfile, _connection, handler_type, handler_data, _user_data):
        if handler_type == NM.KeyfileHandlerType.WARN:
            warnings.append(str(handler_data.warn_get()))
        return False

    connection = NM.keyfile_read(
        keyfile,
        "/etc/NetworkManager/system-connections",
        NM.KeyfileHandlerFlags.NONE,
        handler,
        None,
    )
    connection.verify()  # raises GLib.GError naming the property
    out = {
        "type": connection.get_connection_type(),
        "interface": connection.get_interface_name(),
        "warnings": warnings,
        "addresses": [],
        "gateways": [],
        "dns": [],
        "routes": [],
    }
    for setting in (connection.get_setting_ip4_config(), connection.get_setting_ip6_config()):
        if setting is None:
            continue
        for i in range(setting.get_num_addresses()):
            address = setting.get_address(i)
            out["addresses"].append(f"{address.get_address()}/{address.get_prefix()}")
        if setting.get_gateway():
            out["gateways"].append(setting.get_gateway())
        out["dns"] += [setting.get_dns(i) for i in range(setting.get_num_dns())]
        for i in range(setting.get_num_routes()):
            route = setting.get_route(i)
            out["routes"].append([f"{route.get_dest()}/{route.get_prefix()}", route.get_next_hop()])
    wired = connection.get_setting_wired()
    out["mtu"] = wired.get_mtu() if wired else 0
    bond = connection.get_setting_bond()
    out["bond_mode"] = bond.get_option_by_name("mode") if bond else None
    vlan = connection.get_setting_vlan()
    out["vlan"] = [vlan.get_id(), vlan.get_parent()] if vlan else None
    out["master"] = connection.get_setting_connection().get_master()
    return out


result = {}
for path in sys.argv[1:]:
    try:
        result[path] = read(path)
    except GLib.Error as err:
        result[path] = {"error": err.message}
print(json.dumps(result))
