"""locale: the system locale (``LANG``) in the distribution's file, generated when needed.

Debian keeps it in ``/etc/default/locale`` and generates locales listed in ``/etc/locale.gen``
with ``locale-gen`` (run inside the root, by the command policy); systemd-only systems read
``/etc/locale.conf``. ``locale_configfile`` names the file explicitly. Unlike cloud-init, an
absent ``locale`` key changes nothing (generating en_US.UTF-8 on every image costs seconds).
"""

from __future__ import annotations

import re

from metaboot.errors import ConfigError
from metaboot.guest.modules._cfg import get_str
from metaboot.guest.modules._schemas import ROOT_COMMANDS, top
from metaboot.guest.modules._shell import runner_for
from metaboot.guest.modules.base import Frequency, Module, ModuleContext, Stage

# Compiled on first use, through re's own cache: most boots set no locale.
_LOCALE = r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_-]+)?(@[A-Za-z0-9_]+)?$"
_BUILTIN = {"C", "POSIX", "C.UTF-8", "C.utf8"}


def set_variable(text: str, name: str, value: str) -> str:
    """``text`` (a KEY=value file) with ``name`` set to ``value`` (pure)."""
    lines = [line for line in text.splitlines() if not re.match(rf"^\s*{name}=", line)]
    return "\n".join([*lines, f"{name}={value}"]) + "\n"


def enable_in_locale_gen(text: str, locale: str, supported: str) -> str:
    """``/etc/locale.gen`` with the line for ``locale`` uncommented or added (pure)."""
    charset = locale.split(".", 1)[1] if "." in locale else None
    wanted = None
    for line in supported.splitlines():
        fields = line.split()
        if fields and fields[0] == locale:
            wanted = line.strip()
            break
    if wanted is None:
        wanted = f"{locale} {charset or 'ISO-8859-1'}"
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip("# ").split()[:1] == [locale]:
            if not line.lstrip().startswith("#"):
                return text
            lines[i] = line.lstrip("# ")
            return "\n".join(lines) + "\n"
    return "\n".join([*lines, wanted]) + "\n"


def handle(ctx: ModuleContext) -> None:
    locale = get_str(ctx.cfg, "locale")
    if not locale:
        return
    if not re.match(_LOCALE, locale):
        raise ConfigError(f"locale: {locale!r} is not a locale name like 'en_US.UTF-8'")
    configfile = get_str(ctx.cfg, "locale_configfile")
    if configfile is None:
        debian = ctx.root.exists("/etc/locale.gen") or ctx.root.exists("/etc/debian_version")
        configfile = "/etc/default/locale" if debian else "/etc/locale.conf"
    if not configfile.startswith("/"):
        raise ConfigError(f"locale_configfile: expected an absolute path, got {configfile!r}")
    current = ctx.root.read_text(configfile, default="")
    updated = set_variable(current, "LANG", locale)
    if updated != current:
        ctx.root.write_file(configfile, updated, mode=0o644)
        ctx.report.changed(f"LANG={locale} in {configfile}")
    if locale in _BUILTIN or not ctx.root.exists("/etc/locale.gen"):
        return
    gen = ctx.root.read_text("/etc/locale.gen")
    supported = ctx.root.read_text("/usr/share/i18n/SUPPORTED", default="")
    new_gen = enable_in_locale_gen(gen, locale, supported)
    if new_gen == gen:
        return
    ctx.root.write_file("/etc/locale.gen", new_gen, mode=None)
    ctx.report.changed(f"{locale} enabled in /etc/locale.gen")
    runner = runner_for(ctx)
    refusal = runner.refusal()
    if refusal is not None:
        ctx.report.warn(f"locale-gen not run: {refusal}")
        return
    status = runner.run(["locale-gen"], label="locale-gen")
    if status != 0:
        from metaboot.guest.os.commands import CommandFailed  # on use

        raise CommandFailed(
            f"locale-gen exited with status {status} (output in {runner.output_log})"
        )
    ctx.report.changed(f"generated {locale}")


MODULE = Module(
    name="locale",
    stage=Stage.CONFIG,
    frequency=Frequency.INSTANCE,
    keys=("locale",),
    handle=handle,
    schema=top(
        {"locale": {"type": "string"}, "locale_configfile": {"type": "string"}, **ROOT_COMMANDS}
    ),
)
