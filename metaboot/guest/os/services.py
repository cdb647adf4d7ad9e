"""Restarting a service after its configuration changed, on the live system only.

A mounted image or a test tree has no running services; its daemons read the new files when
they first start.
"""

from __future__ import annotations

from metaboot.guest.os.tools import run_tool
from metaboot.guest.system import Root


def reload_if_running(root: Root, service: str) -> str:
    """Reload or restart ``service`` if it is running; returns what happened, for the report."""
    if not root.is_live:
        return f"{service} not restarted: {root.base} is not the live system"
    import shutil  # with bz2 and lzma: only on the live system

    if shutil.which("systemctl") is None:
        return f"{service} not restarted: no systemctl on this system"
    run_tool(
        root,
        ["systemctl", "try-reload-or-restart", f"{service}.service"],
        purpose=f"reload {service}",
    )
    return f"{service} reloaded if it was running"
