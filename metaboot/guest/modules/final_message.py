"""final_message: one line on the console when the final stage is done, and ``boot-finished``.

The message may use cloud-init's variables, ``$version``, ``$timestamp``, ``$datasource`` and
``$uptime`` (also as ``${name}`` or ``{{ name }}``).
"""

from __future__ import annotations

import re
import time

from metaboot import __version__
from metaboot.guest.modules._cfg import get_str
from metaboot.guest.modules._schemas import top
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage

DEFAULT = "metaboot $version finished at $timestamp. Datasource $datasource. Up $uptime seconds"


def uptime(ctx: ModuleContext) -> str:
    if not ctx.root.is_live:
        return "unknown"
    try:
        with open("/proc/uptime", encoding="ascii") as handle:
            return handle.read().split()[0]
    except (OSError, IndexError):
        return "unknown"


# string.Template's syntax and its safe_substitute, written out: ``import string`` would cost
# every final stage more than this module does (tests/guest/modules/test_module_system.py
# holds the two to the same answers).
_PLACEHOLDER = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<named>(?a:[_a-z][_a-z0-9]*))|\{(?P<braced>(?a:[_a-z][_a-z0-9]*))\})",
    re.IGNORECASE,
)


def render(template: str, values: dict[str, str]) -> str:
    """Fill ``$name``, ``${name}`` and ``{{ name }}``; unknown names are left as written (pure)."""
    jinja_like = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: "${" + m.group(1) + "}", template)

    def fill(match: re.Match[str]) -> str:
        if match.group("escaped") is not None:
            return "$"
        name = match.group("named") or match.group("braced")
        return str(values[name]) if name in values else match.group(0)

    return _PLACEHOLDER.sub(fill, jinja_like)


def handle(ctx: ModuleContext) -> None:
    template = get_str(ctx.cfg, "final_message") or DEFAULT
    source = ctx.instance.source + (
        f" [{ctx.instance.subplatform}]" if ctx.instance.subplatform else ""
    )
    values = {
        "version": __version__,
        "timestamp": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
        "datasource": source,
        "uptime": uptime(ctx),
    }
    message = render(template, values)
    ctx.console(message + "\n")
    ctx.log.info("%s", message)
    ctx.root.write_file(
        f"{ctx.state_dir}/boot-finished",
        f"{values['uptime']} - {values['timestamp']} - v. {__version__}\n",
        mode=0o644,
    )
    ctx.report.changed("final message shown")


MODULE = Module(
    name="final_message",
    stage=Stage.FINAL,
    frequency=Frequency.ALWAYS,
    keys=(),
    handle=handle,
    schema=top({"final_message": {"type": "string"}}),
)
