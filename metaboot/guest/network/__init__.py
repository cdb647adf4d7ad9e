"""Guest network configuration: the instance's network data becomes the target's own files.

The agent calls :func:`configure` once in its local stage, before the OS brings the network
up. The steps are plain functions, each in its own module: parse (``openstack``, ``nocloud``)
→ bind to the NICs found in ``/sys/class/net`` (``nics``) → render for the chosen system
(``renderers``) → write, removing what an earlier instance left (``manifest``). Bad entries are
reported and skipped; when nothing usable remains, the first NIC gets DHCP so the VM stays
reachable. Nothing here raises for bad input.
"""

from __future__ import annotations

from collections.abc import Mapping

from metaboot.guest.network import manifest, nics, renderers
from metaboot.guest.network.model import Network, Problems
from metaboot.guest.records import dataclass, field
from metaboot.guest.system import Root

TYPE_CHECKING = False  # typing is for mypy only: see metaboot/guest/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from metaboot.guest.log import Logger

__all__ = ["NetworkReport", "configure", "select_source"]


@dataclass
class NetworkReport:
    renderer: str | None = None
    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    degraded: bool = False
    messages: list[str] = field(default_factory=list)
    skipped: str | None = None


def _network_settings(cfg: Mapping[str, Any]) -> Mapping[str, Any]:
    system_info = cfg.get("system_info")
    if isinstance(system_info, Mapping):
        network = system_info.get("network")
        if isinstance(network, Mapping):
            return network
    return {}


def select_source(
    cfg: Mapping[str, Any],
    network_data: dict[str, Any] | None,
    network_config: dict[str, Any] | None,
) -> tuple[str | None, Network | None, list[str]]:
    """The document to use, as cloud-init orders them: a ``network:`` config (v1/v2) in the
    agent's own configuration, then network_data.json, then NoCloud network-config."""
    # Each parser is imported only for the document it reads.
    own = cfg.get("network")
    if isinstance(own, Mapping) and own.get("version") is not None:
        from metaboot.guest.network.nocloud import parse_network_config

        model, problems = parse_network_config(dict(own))
        return "agent config network:", model, problems
    if network_data:
        from metaboot.guest.network.openstack import parse_network_data

        model, problems = parse_network_data(network_data)
        if network_config:
            problems.append("network-config: ignored, network_data.json takes precedence")
        return "network_data.json", model, problems
    if network_config:
        from metaboot.guest.network.nocloud import parse_network_config

        model, problems = parse_network_config(network_config)
        return "network-config", model, problems
    return None, None, []


def configure(
    root: Root,
    *,
    network_data: dict[str, Any] | None,
    network_config: dict[str, Any] | None,
    cfg: Mapping[str, Any],
    instance_id: str,
    log: Logger,
) -> NetworkReport:
    """Render and write the target's network configuration; see docs/network.md."""
    report = NetworkReport()
    own = cfg.get("network")
    if isinstance(own, Mapping) and own.get("config") == "disabled":
        report.skipped = "network: {config: disabled}"
        log.info("network configuration disabled by network: {config: disabled}")
        return report
    try:
        _configure(root, network_data, network_config, cfg, instance_id, report)
    except Exception as err:  # a bug or an unwritable target: report it, the boot goes on
        log.exception("network configuration failed")
        report.degraded = True
        report.messages.append(f"network configuration failed: {type(err).__name__}: {err}")
    for message in report.messages:
        log.warning("network: %s", message)
    if report.renderer:
        log.info(
            "network: rendered for %s (%d written, %d removed%s)",
            report.renderer,
            len(report.written),
            len(report.removed),
            ", degraded" if report.degraded else "",
        )
    return report


def _configure(
    root: Root,
    network_data: dict[str, Any] | None,
    network_config: dict[str, Any] | None,
    cfg: Mapping[str, Any],
    instance_id: str,
    report: NetworkReport,
) -> None:
    settings = _network_settings(cfg)
    source, model, problems = select_source(cfg, network_data, network_config)
    report.messages.extend(problems)
    found = nics.read_nics(root)
    bound: Network | None = None
    if model is not None:
        binding = Problems()
        bound = nics.bind(model, found, binding)
        report.messages.extend(binding.messages)
    if problems or (
        bound is not None and len(bound.interfaces) < len(model.interfaces if model else ())
    ):
        report.degraded = True
    if bound is None or not any(i.has_l3 for i in bound.interfaces):
        first = nics.first_nic(found)
        if first is None:
            report.degraded = True
            report.skipped = "no network interface found in /sys/class/net"
            return
        if source is not None:
            report.degraded = True
            report.messages.append(
                f"{source}: nothing usable for this machine's NICs; "
                f"falling back to DHCP on {first.name}"
            )
        else:
            report.messages.append(f"no network data; DHCP on {first.name}")
        bound = nics.fallback(found)

    name, choose_messages = renderers.choose(root, _string_list(settings.get("renderers")))
    report.messages.extend(choose_messages)
    if name is None:
        report.degraded = True
        report.skipped = "no supported network configuration system on the target"
        return
    report.renderer = name
    files = renderers.render(name, bound)
    if renderers.wants_resolv_conf(root, name, settings.get("resolv_conf", "auto")):
        files.update(renderers.render_resolv_conf(bound))
    if name == "eni" and "interfaces.d" not in root.read_text("/etc/network/interfaces", ""):
        report.degraded = True
        report.messages.append(
            "/etc/network/interfaces does not source /etc/network/interfaces.d; "
            "ifupdown will not read the configuration written there"
        )
    modes = {path: renderers.file_mode(path) for path in files}
    outcome = manifest.apply(root, instance_id, name, files, modes)
    report.written, report.removed = outcome.written, outcome.removed
    report.messages.extend(outcome.messages)


def _string_list(value: object) -> list[str] | None:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return None
