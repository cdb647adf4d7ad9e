"""final_message: one line on the console when the final stage is done, and ``boot-finished``.

The message may use cloud-init's variables, ``$version``, ``$timestamp``, ``$datasource`` and
``$uptime`` (also as ``${name}`` or ``{{ name }}``).
"""

from __future__ import annotations

import time

from metaboot import __version__
from metaboot.guest.charsets import ASCII_ALNUM, ASCII_LETTERS
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


# string.Template's syntax and its safe_substitute, written out with string methods: ``import
# string`` would cost every final stage more than this module does, and so would compiling
# the patterns (tests/guest/modules/test_module_system.py holds both to the same answers).
_NAME_START = frozenset(ASCII_LETTERS + "_")
_NAME_REST = frozenset(ASCII_ALNUM + "_")


def _name_end(text: str, start: int) -> int:
    """Where the identifier starting at ``start`` ends (``start`` when there is none)."""
    if text[start : start + 1] not in _NAME_START:
        return start
    end = start + 1
    while end < len(text) and text[end] in _NAME_REST:
        end += 1
    return end


def _jinja_to_dollar(text: str) -> str:
    """``{{ name }}`` (any word characters, blanks optional) written as ``${name}``."""
    out: list[str] = []
    start = search = 0
    while (at := text.find("{{", search)) >= 0:
        first = at + 2
        while first < len(text) and text[first].isspace():
            first += 1
        end = first
        while end < len(text) and (text[end].isalnum() or text[end] == "_"):
            end += 1
        close = end
        while close < len(text) and text[close].isspace():
            close += 1
        if end > first and text.startswith("}}", close):
            out += [text[start:at], "${", text[first:end], "}"]
            start = search = close + 2
        else:
            search = at + 1
    out.append(text[start:])
    return "".join(out)


def render(template: str, values: dict[str, str]) -> str:
    """Fill ``$name``, ``${name}`` and ``{{ name }}``; unknown names are left as written, and
    ``$$`` is ``$`` (pure)."""
    text = _jinja_to_dollar(template)
    out: list[str] = []
    start = search = 0
    while (at := text.find("$", search)) >= 0:
        name = end = None
        if text[at + 1 : at + 2] == "$":
            out += [text[start:at], "$"]
            start = search = at + 2
            continue
        if (stop := _name_end(text, at + 1)) > at + 1:
            name, end = text[at + 1 : stop], stop
        elif text[at + 1 : at + 2] == "{":
            stop = _name_end(text, at + 2)
            if stop > at + 2 and text[stop : stop + 1] == "}":
                name, end = text[at + 2 : stop], stop + 1
        if name is None or end is None:
            search = at + 1
            continue
        out += [text[start:at], str(values[name]) if name in values else text[at:end]]
        start = search = end
    out.append(text[start:])
    return "".join(out)


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
