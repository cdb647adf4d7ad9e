"""``metaboot schema FILE``: what the agent would make of a user-data file, before any boot.

The file goes through the same user-data processing as at boot (MIME, gzip, archives…), then
each cloud-config key is checked against the modules' schema fragments. Every finding names the
part and the line. ``#include`` URLs are not fetched here: checking a file must not reach out.
"""

from __future__ import annotations

from collections.abc import Iterable

from metaboot.guest import template, userdata, validation
from metaboot.guest.modules.base import Module
from metaboot.guest.records import dataclass


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.message}"


def check(
    raw: bytes, name: str, modules: Iterable[Module], max_bytes: int = 1024 * 1024
) -> list[Finding]:
    modules = list(modules)
    warnings: list[str] = []
    options = userdata.Options(
        max_bytes=max_bytes,
        fetch=None,
        render=template.make_renderer(dict, warnings),
    )
    processed = userdata.process(raw, name, options)
    findings = [Finding("error", p) for p in processed.problems]
    findings += [Finding("warning", w) for w in warnings]
    if not processed.parts:
        findings.append(Finding("error", f"{name}: empty; nothing to apply"))
        return findings
    merged = processed.merged()
    for key in validation.unknown_keys(merged, modules):
        origin = processed.origin_of((key,))
        label, line = origin if origin else (name, None)
        at = f" (line {line})" if line else ""
        shown = repr(key) if isinstance(key, str) else str(key)
        findings.append(
            Finding("warning", f"{label}: key {shown}{at} is not supported by metaboot; ignored")
        )
    for module in modules:
        for problem in validation.module_problems(module, merged):
            origin = processed.origin_of(problem.path)
            label, line = origin if origin else (name, None)
            at = f" (line {line})" if line else ""
            findings.append(
                Finding(
                    "error",
                    f"{label}: {problem.where}: {problem.message}{at} [module {module.name}]",
                )
            )
    return findings
